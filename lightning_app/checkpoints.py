"""Checkpoint files: when they are written, how (atomically), and the check before a run trusts one.

Writing: Lightning's `TorchCheckpointIO` writes through an fsspec transaction whose temporary file
lives in the system temp folder, then `shutil.move`s it: when that folder is another file system
(a node's /tmp under an NFS run directory) the move is a plain copy, and a kill during it leaves a
truncated `last.ckpt`. `AtomicCheckpointIO` writes beside the target, fsyncs, then `os.replace`s,
so the file is always either the old or the new checkpoint.

Reading: `check_checkpoint(path, model)` loads the file once before a run uses it and turns the two
ways it can be unusable into one line naming the file: unreadable (truncated, corrupt, not a
checkpoint) or saved from another architecture (names the differing hyper-parameters and tensors).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

# Model hyper-parameters that decide the tensors' names and shapes: named first when they differ.
ARCHITECTURE_KEYS = ("backbone", "norm", "norm_groups", "norm_options", "backbone_options", "num_classes",
                     "in_channels", "image_size")


class MidEpochCheckpoint(ModelCheckpoint):
    """`last.ckpt` every `every_n_train_steps` steps, except on an epoch's last batch: a checkpoint taken
    there resumes as a finished epoch, and Lightning then skips that epoch's validation (its val/acc
    would never be recorded). The epoch-end checkpoint, after validation, follows a moment later."""

    def __init__(self, dirpath: str, every_n_train_steps: int):
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0, every_n_train_steps=every_n_train_steps,
                         enable_version_counter=False)  # share last.ckpt with the epoch-end checkpoint

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


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
