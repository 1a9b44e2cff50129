"""Every private Lightning, argparse/jsonargparse and torch internal normlab relies on, named in one place.

Private names change without notice between releases. Attributes read from instances go through the
functions below; private methods that normlab's subclasses override or call (`LightningCLI`,
`ModelCheckpoint`, the CSV logger's `ExperimentWriter`) cannot, so `PRIVATE_ATTRIBUTES` lists them: an
override of a method the base class no longer has would silently never run.
`tests/callbacks/test_compat.py` checks each one against the installed versions and names any that is gone.
It lives in callbacks/, the lowest layer that already builds on Lightning, so that callbacks/ (which must
not import lightning_app) and lightning_app/ share it.
"""
from __future__ import annotations

import torch

# Importable owner -> the private attributes of it that normlab uses.
PRIVATE_ATTRIBUTES = {
    "pytorch_lightning.cli.LightningCLI": ("_parse_ckpt_path", "_run_subcommand", "_get", "_parser",
                                           "_instantiate_trainer"),
    "pytorch_lightning.callbacks.ModelCheckpoint": ("_should_save_on_train_epoch_end",
                                                    "_should_skip_saving_checkpoint", "_save_last_checkpoint",
                                                    "_monitor_candidates"),
    "pytorch_lightning.loggers.csv_logs.ExperimentWriter": ("_check_log_dir_exists", "_record_new_keys",
                                                            "_rewrite_with_new_header"),
    "torch": ("_foreach_norm",),
}


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


def foreach_norm(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The 2-norm of each tensor in one fused call."""
    return torch._foreach_norm(tensors)
