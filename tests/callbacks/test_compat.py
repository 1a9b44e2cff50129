"""The private library internals normlab relies on (callbacks/compat.py) still exist in the installed
versions: an upgrade that removes one fails here, naming it, instead of somewhere deep in a run."""
import importlib

import pytest
import torch
from jsonargparse import ArgumentParser
from lightning_fabric.plugins.environments import LightningEnvironment
from pytorch_lightning import Trainer

from callbacks.compat import (PRIVATE_ATTRIBUTES, cluster_environment, foreach_norm, layer_sync, parser_actions,
                              subcommand_parsers)


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


def test_parser_internals():
    parser, fit = ArgumentParser(exit_on_error=False), ArgumentParser(exit_on_error=False)
    fit.add_argument("--lr", type=float)
    assert subcommand_parsers(parser) == {}
    parser.add_subcommands().add_subcommand("fit", fit)
    assert subcommand_parsers(parser) == {"fit": fit}
    assert "lr" in [action.dest for action in parser_actions(fit)]


def test_foreach_norm_matches_torch_norm():
    tensors = [torch.randn(3, 4), torch.randn(5)]
    assert torch.allclose(torch.stack(foreach_norm(tensors)), torch.stack([t.norm() for t in tensors]))
