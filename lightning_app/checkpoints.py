"""Checkpoint files: when they are written, how (atomically), and the check before a run trusts one.

Writing: Lightning's `TorchCheckpointIO` writes through an fsspec transaction whose temporary file
lives in the system temp folder, then `shutil.move`s it: when that folder is another file system
(a node's /tmp under an NFS run directory) the move is a plain copy, and a kill during it leaves a
truncated `last.ckpt`. `AtomicCheckpointIO` writes beside the target, fsyncs, then `os.replace`s,
so the file is always either the old or the new checkpoint. A Ctrl-C during the write takes effect
when the file is complete (`signals_deferred`).

Reading: `check_checkpoint(path, model)` loads the file once before a run uses it and turns the two
ways it can be unusable into one line naming the file: unreadable (truncated, corrupt, not a
checkpoint) or saved from another architecture (names the differing hyper-parameters and tensors).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from callbacks.compat import save_last_checkpoint, saves_at_train_epoch_end
from callbacks.run_files import atomic_open
from lightning_app.run.interrupt import signals_deferred

# Model hyper-parameters that decide the tensors' names and shapes: named first when they differ.
ARCHITECTURE_KEYS = ("backbone", "norm", "norm_groups", "norm_options", "backbone_options", "num_classes",
                     "in_channels", "image_size")


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt`, the file a relaunch resumes from: every `every_n_train_steps` steps (0: never
    mid-epoch), at every epoch end (after validation), and when training stops.

    pytorch_lightning 2.6.6's `ModelCheckpoint(save_top_k=0, save_last=True)` writes `last.ckpt` at an
    epoch end only if it also wrote a top-k file at that step, so without top-k files it writes it once,
    when training ends: a run killed before has nothing to resume from. Here the epoch end always
    saves. The step trigger skips an epoch's last batch: a checkpoint taken there resumes as a finished
    epoch and Lightning skips that epoch's validation; the epoch-end save follows a moment later.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int = 0):
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps,
                         enable_version_counter=False)  # a relaunch overwrites last.ckpt, never last-v1.ckpt

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if saves_at_train_epoch_end(self, trainer):
            save_last_checkpoint(self, trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not saves_at_train_epoch_end(self, trainer):
            save_last_checkpoint(self, trainer)

    def on_train_end(self, trainer, pl_module) -> None:  # stopped between triggers: max_steps, max_time, ...
        save_last_checkpoint(self, trainer)


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with signals_deferred(), atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """The checkpoint's dict, or ValueError naming the file when it cannot be one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as error:  # zip, pickle, EOF errors: all mean the same thing to a user
        detail = " ".join(str(error).split()).split(". ")[0][:200]  # its first sentence
        raise ValueError(f"checkpoint {path} is truncated or corrupt ({type(error).__name__}: {detail}); "
                         "delete it to start over, or pass another --ckpt_path") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"checkpoint {path} is not a Lightning checkpoint (no 'state_dict' in it)")
    return checkpoint


def check_checkpoint(path: str | os.PathLike, model: torch.nn.Module) -> dict:
    """Load `path` and verify that its weights fit `model` name for name and shape for shape."""
    checkpoint = load_checkpoint_file(path)
    saved, expected = checkpoint["state_dict"], model.state_dict()
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    mismatched = [k for k in expected if k in saved and tuple(saved[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or mismatched):
        return checkpoint
    theirs = checkpoint.get("hyper_parameters") or {}
    ours = dict(getattr(model, "hparams", {}))
    differs = [f"model.{k}: checkpoint {theirs.get(k)!r}, config {ours.get(k)!r}"
               for k in ARCHITECTURE_KEYS if k in theirs and k in ours and theirs[k] != ours[k]]
    examples = [f"{k} {list(saved[k].shape)} vs {list(expected[k].shape)}" for k in mismatched[:2]]
    examples += [f"missing {k}" for k in missing[:2]] + [f"unexpected {k}" for k in unexpected[:2]]
    raise ValueError(f"checkpoint {path} was saved from another architecture"
                     + (f" ({'; '.join(differs)})" if differs else "")
                     + f": {len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} differently "
                     f"shaped tensors (e.g. {', '.join(examples[:3])}); use a checkpoint of this model")
