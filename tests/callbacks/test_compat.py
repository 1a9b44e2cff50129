"""The private library internals normlab relies on (callbacks/compat.py) still exist in the installed
versions, and its patterns still match the installed jsonargparse's error messages: an upgrade that removes
an internal or rewords a message fails here, naming it, instead of somewhere deep in a run or as a raw
multi-line error."""
import importlib
import os
import re
import sys
import warnings
from types import SimpleNamespace
from typing import Literal, Optional

import pytest
import torch
from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser, set_parsing_settings
from lightning_fabric.plugins.environments import LightningEnvironment
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.cli import LightningCLI
from torch.utils.data import DataLoader, DistributedSampler

from callbacks.compat import (ARGS_BESIDE_ARGV_WARNING, ERROR_WORDING, PRIVATE_ATTRIBUTES, cluster_environment,
                              foreach_copy, foreach_norm, forward_hook_counts, layer_sync, parser_actions,
                              prepared_training_dataloader, slurm_requeue_handler, subcommand_parsers,
                              weights_in_memory)
from datamodules.sampling import EpochBatchSampler
from lightning_app.checkpoints import LastCheckpoint
from lightning_app.class_paths import restrict_class_paths
from lightning_app.cli import NormlabCLI
from lightning_app.sweep.cli_planner import RunPlanner
from models.logging_steps import is_logging_step
from tests.helpers import ROOT


def resolve(owner: str):
    """`"torch"` -> the module; `"pytorch_lightning.cli.LightningCLI"` -> the class."""
    module, _, name = owner.rpartition(".")
    return getattr(importlib.import_module(module), name) if module else importlib.import_module(owner)


@pytest.mark.parametrize("owner,name", [(o, n) for o, names in PRIVATE_ATTRIBUTES.items() for n in names])
def test_private_attribute_still_exists(owner, name):
    assert hasattr(resolve(owner), name), f"{owner}.{name} is gone in the installed version: update callbacks/compat.py"


def test_trainer_internals():
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)
    assert isinstance(cluster_environment(trainer), LightningEnvironment)
    assert layer_sync(trainer.strategy) is None
    synced = Trainer(accelerator="cpu", devices=1, strategy="ddp", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, sync_batchnorm=True)
    assert layer_sync(synced.strategy) is not None
    assert callable(slurm_requeue_handler(trainer))
    silent = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, log_every_n_steps=0,
                     enable_progress_bar=False, enable_model_summary=False)
    assert is_logging_step(trainer) and not is_logging_step(silent)  # outside a loop: every step, unless 0


def test_parser_internals():
    parser, fit = ArgumentParser(exit_on_error=False), ArgumentParser(exit_on_error=False)
    fit.add_argument("--lr", type=float)
    assert subcommand_parsers(parser) == {}
    parser.add_subcommands().add_subcommand("fit", fit)
    assert subcommand_parsers(parser) == {"fit": fit}
    assert "lr" in [action.dest for action in parser_actions(fit)]


def test_a_test_under_slurm_scores_the_weights_in_memory_not_a_requeue_checkpoint(tmp_path, monkeypatch):
    """Lightning's own behaviour first (the reason for weights_in_memory): under SLURM a test without
    ckpt_path loads the newest hpc_ckpt_*.ckpt over the model it is given; inside the block it does not."""
    model = torch.nn.Linear(3, 2)
    module = _TestedModule(model)
    trainer = Trainer(accelerator="cpu", devices=1, default_root_dir=tmp_path, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    torch.save({"state_dict": {k: torch.zeros_like(v) for k, v in module.state_dict().items()},
                "pytorch-lightning_version": "2.0.0"}, tmp_path / "hpc_ckpt_1.ckpt")  # the requeue moment
    final = {k: v.clone() for k, v in module.state_dict().items()}
    for name, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "job"}.items():
        monkeypatch.setenv(name, value)  # SLURMEnvironment.detect() is now true
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 3)), batch_size=4)
    with weights_in_memory(trainer):
        trainer.test(module, dataloaders=data, verbose=False)
    assert all(torch.equal(module.state_dict()[k], v) for k, v in final.items())
    trainer.test(module, dataloaders=data, verbose=False)  # without: Lightning loads the hpc checkpoint
    assert all(torch.equal(v, torch.zeros_like(v)) for v in module.state_dict().values())


class _TestedModule(LightningModule):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def test_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()


class _Trained(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_last_checkpoint_saves_at_every_epoch_end_and_once_per_step(tmp_path):
    """LastCheckpoint decides through compat.saves_at_train_epoch_end and saves through
    compat.save_last_checkpoint: 4 batches per epoch, no mid-epoch trigger, 3 epochs -> steps 4, 8, 12,
    and the end of training (at step 12 again) adds no second save."""
    trainer = Trainer(accelerator="cpu", max_epochs=3, callbacks=[LastCheckpoint(str(tmp_path))], logger=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    saved, save = [], trainer.save_checkpoint
    trainer.save_checkpoint = lambda *args, **kwargs: (saved.append(trainer.global_step), save(*args, **kwargs))
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(16, 3)), batch_size=4)
    trainer.fit(_Trained(), data)
    assert saved == [4, 8, 12] and (tmp_path / "last.ckpt").is_file()


def test_the_sweep_planner_seeds_nothing(tmp_path, monkeypatch):
    """LightningCLI seeds the process after parsing (the control below); the planner (UnseededCLI) does not."""
    args = ["--config", str(ROOT / "configs/quickstart.yaml"), "--seed_everything", "7",
            "--trainer.default_root_dir", str(tmp_path)]
    monkeypatch.setenv("PL_GLOBAL_SEED", "unset")  # so that the teardown removes what the control sets
    monkeypatch.delenv("PL_GLOBAL_SEED")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    RunPlanner(args, "test")
    assert torch.equal(torch.rand(3), expected) and "PL_GLOBAL_SEED" not in os.environ

    class Seeding(NormlabCLI):
        def instantiate_classes(self):
            pass
    Seeding(args=args, run=False)
    assert os.environ["PL_GLOBAL_SEED"] == "7"


def test_forward_hook_counts_follow_registration_and_removal():
    layer = torch.nn.Linear(2, 2)
    assert forward_hook_counts(layer) == (0, 0)
    handles = [layer.register_forward_pre_hook(lambda m, args: None),
               layer.register_forward_hook(lambda m, args, out: None),
               layer.register_forward_hook(lambda m, args, out: None)]
    assert forward_hook_counts(layer) == (1, 2)
    for handle in handles:
        handle.remove()
    assert forward_hook_counts(layer) == (0, 0)


def test_foreach_copy_copies_each_pair():
    sources, destinations = [torch.randn(3, 4), torch.randn(5)], [torch.zeros(3, 4), torch.zeros(5)]
    foreach_copy(destinations, sources)
    assert all(torch.equal(d, s) for d, s in zip(destinations, sources))


def test_foreach_norm_matches_torch_norm():
    tensors = [torch.randn(3, 4), torch.randn(5)]
    assert torch.allclose(torch.stack(foreach_norm(tensors)), torch.stack([t.norm() for t in tensors]))


class Box:
    """A class for jsonargparse's subclass machinery (class_path + init_args), as the CLI's `--data`."""

    def __init__(self, size: int = 1):
        self.size = size


BOX = f"{Box.__module__}.Box"


@pytest.fixture(scope="module")
def wording_parser():
    """A `fit` subcommand with a key of each kind the CLI's error messages are about, under the CLI's
    import-path policy (lightning_app/class_paths.py), which also lets it import this module (pytest imports it
    as a top-level module, not as part of the repository's `tests` package)."""
    restrict_class_paths()
    set_parsing_settings(import_path_allowlist=[Box.__module__])
    fit = ArgumentParser(exit_on_error=False)
    fit.add_argument("--config", action=ActionConfigFile)
    fit.add_argument("--lr", type=float)
    fit.add_argument("--epochs", type=Optional[int])
    fit.add_argument("--optimizer", type=Literal["sgd", "adam"])
    fit.add_argument("--box", type=Optional[Box])
    fit.add_argument("--sizes", type=int, nargs="+")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subcommands().add_subcommand("fit", fit)
    return parser


# (test id, pattern name, `fit` arguments that make jsonargparse write the wording, what the pattern captures:
# its groups, or the whole match for a pattern without any; whitespace runs count as one space)
WORDING_CASES = [
    ("UNRECOGNIZED_ARGUMENTS", "UNRECOGNIZED_ARGUMENTS", ["--nope", "3"], ("--nope",)),
    ("KEY_NOT_ACCEPTED", "KEY_NOT_ACCEPTED", ["--config", "lrr: 3"], ("lrr",)),
    ("CONFIG_FILE_MISSING", "CONFIG_FILE_MISSING", ["--config", "/nowhere/x.yaml"], ("/nowhere/x.yaml",)),
    ("PARSER_KEY", "PARSER_KEY", ["--lr", "x"], ("lr", "Expected a <class 'float'>. Got value: x")),
    ("PARSER_KEY-list-element", "PARSER_KEY", ["--sizes", "1", "x"],
     ("sizes", "Expected a <class 'int'>. Got value: x")),
    ("CLASS_PATH_PROBLEM", "CLASS_PATH_PROBLEM", ["--box", f"{BOX}Nope"],
     (f"{BOX}Nope", f"module '{Box.__module__}' has no attribute 'BoxNope'")),
    ("IMPORT_DENIED", "IMPORT_DENIED", ["--box", "elsewhere.Box"], ("elsewhere.Box",)),
    ("OPTION_NOT_ACCEPTED", "OPTION_NOT_ACCEPTED", ["--box", BOX, "--box.sise", "2"], ("sise",)),
    ("UNION_ERRORS", "UNION_ERRORS", ["--epochs", "x"],
     ("- Expected a <class 'int'> - Expected a <class 'NoneType'>",)),
    ("ERROR_BULLET", "ERROR_BULLET", ["--epochs", "x"], ("-",)),
    ("NONE_ALTERNATIVE", "NONE_ALTERNATIVE", ["--epochs", "x"], ("Expected a <class 'NoneType'>",)),
    ("GIVEN_VALUE-union", "GIVEN_VALUE", ["--epochs", "x"], ("x",)),
    ("GIVEN_VALUE-single-type", "GIVEN_VALUE", ["--lr", "x"], ("x",)),
    ("EXPECTED_TYPE-union", "EXPECTED_TYPE", ["--epochs", "x"], ("<class 'int'>",)),
    ("EXPECTED_TYPE-single-type", "EXPECTED_TYPE", ["--lr", "x"], ("<class 'float'>",)),
    ("LITERAL_TYPE", "LITERAL_TYPE", ["--optimizer", "sgdd"], ("'sgd', 'adam'",)),
    ("CLASS_REPR", "CLASS_REPR", ["--lr", "x"], ("float",)),
]


@pytest.mark.parametrize("name,args,captured", [c[1:] for c in WORDING_CASES],
                         ids=[c[0] for c in WORDING_CASES])
def test_error_wording_still_matches(wording_parser, name, args, captured):
    with pytest.raises(ArgumentError) as info:
        wording_parser.parse_args(["fit", *args])
    message = str(info.value)
    match = ERROR_WORDING[name].search(message)
    assert match, f"callbacks.compat.{name} does not match the installed jsonargparse's wording:\n{message}"
    found = tuple(" ".join(g.split()) for g in (match.groups() or (match.group(0),)))
    assert found == captured, f"callbacks.compat.{name} captures {found}, not {captured}, from:\n{message}"


def test_every_wording_pattern_is_provoked():
    assert {c[1] for c in WORDING_CASES} == set(ERROR_WORDING)


def test_args_beside_argv_wording_still_matches_lightnings_warning(monkeypatch):
    """The installed LightningCLI's warning about `args` given beside a non-empty sys.argv, matched the way
    `warnings.filterwarnings` matches a message (from its start)."""
    monkeypatch.setattr(sys, "argv", ["lightning", "sweep"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LightningCLI.parse_arguments(SimpleNamespace(), ArgumentParser(exit_on_error=False), [])
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any(re.match(ARGS_BESIDE_ARGV_WARNING, m) for m in messages), messages


def test_the_training_loader_is_prepared_as_lightnings_training_loop_prepares_it():
    """Under DDP (no processes launched) a plain loader gets Lightning's shuffling DistributedSampler, the
    training loop's own preparation; a loader with its own batch sampler keeps it."""
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    plain = DataLoader(range(64), batch_size=8)
    prepared = prepared_training_dataloader(trainer, plain)
    assert isinstance(prepared.sampler, DistributedSampler) and prepared.sampler.shuffle is True
    assert list(prepared.sampler) != list(range(0, 64, 2))  # shuffled, not the rank's stride
    ours = DataLoader(range(64), batch_size=None, sampler=EpochBatchSampler(64, 8, seed=0, rank=1, world_size=2))
    assert prepared_training_dataloader(trainer, ours) is ours
