"""Every private Lightning, argparse/jsonargparse and torch internal normlab relies on, used only here,
jsonargparse's error wording that lightning_app/bad_input.py reads, and the one Lightning warning the sweep
planner silences.

Private names change without notice between releases. Every use goes through this module: attributes
and methods through the functions below, the one private method a subclass must override through the
mixin below (`UnseededCLI`); `PRIVATE_ATTRIBUTES` lists each, since an override of a method the base
class no longer has would silently never run. Where Lightning offers a public hook, normlab uses it
instead (the CLI's `parse_arguments`, `before_*` and `instantiate_trainer`; the CSV logger's public
`experiment`, whose writer is normlab's own).
Error wording changes without notice too: bad_input.py turns jsonargparse's multi-line parse errors into
one line by matching the patterns of `ERROR_WORDING`, and a reworded message would silently come out raw.
`tests/callbacks/test_compat.py` checks each attribute against the installed versions, provokes each
message from the installed jsonargparse, and names any attribute that is gone or pattern that no longer
matches.
It lives in callbacks/, the lowest layer that already builds on Lightning, so that callbacks/ (which must
not import lightning_app) and lightning_app/ share it.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

# Importable owner -> the private attributes of it that normlab uses.
PRIVATE_ATTRIBUTES = {
    "pytorch_lightning.cli.LightningCLI": ("_set_seed",),
    "pytorch_lightning.callbacks.ModelCheckpoint": ("_should_save_on_train_epoch_end",
                                                    "_should_skip_saving_checkpoint", "_save_last_checkpoint",
                                                    "_monitor_candidates"),
    "torch": ("_foreach_norm", "_foreach_copy_"),
    "pytorch_lightning.trainer.connectors.signal_connector._SignalConnector": ("_slurm_sigusr_handler_fn",),
    "pytorch_lightning.trainer.connectors.data_connector._DataConnector": ("_prepare_dataloader",),
    # models/logging_steps.py (models/ cannot import callbacks/): which steps Lightning writes to its loggers,
    # read as `trainer._logger_connector.should_update_logs` (the connector itself: tests/callbacks/test_compat.py)
    "pytorch_lightning.trainer.connectors.logger_connector.logger_connector._LoggerConnector": ("should_update_logs",),
}
# Attributes of instances (the Trainer's connectors, a strategy's layer sync, a parser's actions) exist
# only once built: the functions below reach them, and test_compat.py calls each on a real instance.


def layer_sync(strategy) -> object | None:
    """The strategy's batch-norm synchronisation plugin (`sync_batchnorm=True`); None without one."""
    return getattr(strategy, "_layer_sync", None)  # only parallel strategies have the attribute


def cluster_environment(trainer):
    """The cluster environment (SLURM, torchelastic, local) the Trainer detected."""
    return trainer._accelerator_connector.cluster_environment


def parser_actions(parser) -> list:
    """The argparse actions of a (jsonargparse) parser: one per accepted key."""
    return parser._actions


def subcommand_parsers(parser) -> dict:
    """Subcommand name -> its parser; empty for a parser without subcommands."""
    action = getattr(parser, "_subcommands_action", None)  # jsonargparse sets it only with subcommands
    return action._name_parser_map if action is not None else {}


def prepared_training_dataloader(trainer, loader):
    """The loader as Lightning hands it to the training loop (under DDP it may put a DistributedSampler
    in): normlab's loaders carry their own rank-aware sampler and must come back as they are."""
    from pytorch_lightning.trainer.states import RunningStage

    return trainer._data_connector._prepare_dataloader(loader, shuffle=True, mode=RunningStage.TRAINING)


def saves_at_train_epoch_end(checkpoint, trainer) -> bool:
    """Whether a ModelCheckpoint saves at the end of the training epoch (else after its validation)."""
    return checkpoint._should_save_on_train_epoch_end(trainer)


def save_last_checkpoint(checkpoint, trainer) -> None:
    """A ModelCheckpoint's `last.ckpt`, now, unless Lightning would not save at this moment (the sanity
    check, a step already saved, fast_dev_run)."""
    if not checkpoint._should_skip_saving_checkpoint(trainer):
        checkpoint._save_last_checkpoint(trainer, checkpoint._monitor_candidates(trainer))


class UnseededCLI:
    """A mixin for a LightningCLI that only parses and names runs (the sweep planner): LightningCLI seeds
    the process right after parsing (`_set_seed`: the global RNGs and PL_GLOBAL_SEED, which the runs it
    launches would inherit), and offers no public switch for it."""

    def _set_seed(self) -> None:
        pass


# torch is imported where it is used: bad_input.py reads this module's error wording in commands that never
# import torch (`lightning report`, `lightning sweep`), which would wait seconds for it.
def foreach_norm(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The 2-norm of each tensor in one fused call."""
    import torch

    return torch._foreach_norm(tensors)


def forward_hook_counts(module: torch.nn.Module) -> tuple[int, int]:
    """How many forward pre-hooks and forward hooks `module` itself holds (torch has no public count)."""
    return len(module._forward_pre_hooks), len(module._forward_hooks)


def foreach_copy(destinations: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    """`dst.copy_(src)` for each pair, in one fused call."""
    import torch

    torch._foreach_copy_(destinations, sources)


@contextmanager
def weights_in_memory(trainer) -> Iterator[None]:
    """`trainer.test(model)` / `validate(model)` inside the block score the model's own weights. Under
    SLURM, Lightning loads the newest `hpc_ckpt_*.ckpt` of default_root_dir into a test called without
    `ckpt_path` even when a model is given (`_CheckpointConnector._parse_ckpt_path`): after a requeued
    run, the final test would score the weights of the requeue moment. A user-managed empty path
    selects no checkpoint."""
    connector = trainer._checkpoint_connector
    saved = connector._user_managed, connector._ckpt_path
    connector._user_managed, connector._ckpt_path = True, None
    try:
        yield
    finally:
        connector._user_managed, connector._ckpt_path = saved


def slurm_requeue_handler(trainer):
    """Lightning's SIGUSR1 handler under SLURM (save `hpc_ckpt_*.ckpt`, requeue the job), to call it
    at a batch end rather than inside the signal."""
    return trainer._signal_connector._slurm_sigusr_handler_fn


# -- Lightning's warning wording ---------------------------------------------------------------------
# The start of the UserWarning LightningCLI.parse_arguments gives when it is handed `args` while the process
# has command-line arguments of its own: right for a script that mixes both, noise for the sweep planner
# (lightning_app/sweep/cli_planner.py), which parses each planned run's arguments inside `lightning sweep`.
# A `warnings.filterwarnings` message pattern (it matches the start of the message).
ARGS_BESIDE_ARGV_WARNING = "LightningCLI's args parameter is intended to run from within Python"


# -- jsonargparse's error wording --------------------------------------------------------------------
# Each pattern matches one piece of a parse error as jsonargparse (or argparse beneath it) writes it.

# argparse's "unrecognized arguments: --trainer.max_epohcs 3" (a command-line key no parser knows).
# Group 1: the first unknown argument as typed.
UNRECOGNIZED_ARGUMENTS = re.compile(r"unrecognized arguments: (\S+)")
# "Subcommand 'fit' does not accept option 'model.nrom'" (an unknown key in a config file).
# Group 1: the dotted key.
KEY_NOT_ACCEPTED = re.compile(r"does not accept option '([^']+)'")
# 'Parser key "config": File does not exist: '/x.yaml'' (a missing --config file). Group 1: the path.
CONFIG_FILE_MISSING = re.compile(r"Parser key \"config\": File does not exist: '([^']+)'")
# 'Parser key "model.lr":\n  <error>' heads every error about one key's value (a list's adds
# " element N" before the colon). Group 1: the dotted key; group 2: the error under it.
PARSER_KEY = re.compile(r'Parser key "([^"]+)"(?: element \d+)?:\s*(.*)', re.S)
# "Problem with given class_path 'datamodules.X':\n  <reason>" (a class_path that does not import, or
# init_args it refuses). Group 1: the class path; group 2: the reason, up to the next bullet or the
# "Given value" lines.
CLASS_PATH_PROBLEM = re.compile(
    r"Problem with given class_path '([^']+)':\s*(.*?)(?:\n\s*- |\n\s*Given value|\Z)", re.S)
# "Importing 'x.Y' is not allowed, denied by the '*' entry of the import path denylist. ...": the reason
# above for a class_path outside the packages lightning_app/class_paths.py lets a config import. Group 1:
# the import path.
IMPORT_DENIED = re.compile(r"Importing '([^']+)' is not allowed, denied by")
# "Option 'batch_sise' is not accepted": the reason above for an init argument the class does not take.
# Group 1: the argument.
OPTION_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
# A value no type of an Optional/Union takes: "Does not validate against any of the Union subtypes\n
# Subtypes: [...]\nErrors:\n  - <one error per subtype>\nGiven value type: ...\nGiven value: x".
# Group 1: the bulleted per-subtype errors.
UNION_ERRORS = re.compile(
    r"Does not validate against any of the Union subtypes.*?Errors:(.*?)(?:Given value type:|\Z)", re.S)
# The bullet before each per-subtype error.
ERROR_BULLET = re.compile(r"\n\s*- ")
# The per-subtype error of the None that every optional key's type allows.
NONE_ALTERNATIVE = re.compile(r"Expected a <class 'NoneType'>")
# The value given to a key: "Given value: x" (Union errors) or ". Got value: x" (single-type errors).
# Group 1: the value.
GIVEN_VALUE = re.compile(r"(?:Given|Got) value:\s*(.*)$", re.M)
# A type expected: "Expected a <class 'float'>. Got value: x" or a bullet's "- Expected a <class 'int'>".
# Group 1: the type as jsonargparse writes it.
EXPECTED_TYPE = re.compile(r"Expected a (.+?)(?:\. Got value|$)", re.M)
# A Literal type as jsonargparse writes it: "typing.Literal['sgd', 'adam']". Group 1: the allowed values.
LITERAL_TYPE = re.compile(r"typing\.Literal\[(.*)\]")
# Any other type as jsonargparse writes it, Python's repr of the class: "<class 'int'>". Group 1: its name.
CLASS_REPR = re.compile(r"<class '(?:builtins\.)?([\w.]+)'>")

# Name -> pattern for every pattern above (this module compiles no others), for the test to iterate over.
ERROR_WORDING = {name: value for name, value in dict(globals()).items() if isinstance(value, re.Pattern)}
