"""Test helper: files as a hostile or unlucky user leaves them, written the way they really arise.

- a checkpoint whose pickle calls `os.system` when unpickled (what `torch.load(weights_only=False)` runs);
- a checkpoint with 8 bytes of one tensor overwritten in place (a disk or copy fault), so that the file
  still loads and only that tensor holds a NaN.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


class _RunsShellCommand:
    """Unpickled, it runs `command` (pickle calls os.system(command) to rebuild it)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def write_malicious_checkpoint(path: Path, marker: Path, like: Path | None = None) -> Path:
    """A Lightning-looking checkpoint (the tensors of `like`, if given) whose unpickling creates `marker`."""
    checkpoint = torch.load(like, map_location="cpu", weights_only=True) if like else {"state_dict": {}}
    checkpoint["callbacks"] = {**checkpoint.get("callbacks", {}), "payload": _RunsShellCommand(f"touch {marker}")}
    torch.save(checkpoint, path)
    return path


def overwrite_tensor_bytes(path: Path, tensor: str) -> None:
    """Overwrite the first 8 bytes of `tensor`'s data inside the checkpoint file with two float32 NaNs."""
    values = torch.load(path, map_location="cpu", weights_only=True)["state_dict"][tensor]
    data = values.contiguous().numpy().tobytes()
    raw = bytearray(path.read_bytes())
    offset = raw.find(data)
    assert offset >= 0 and raw.find(data, offset + 1) < 0, f"{tensor}'s bytes are not found once in {path}"
    raw[offset:offset + 8] = np.array([np.nan, np.nan], np.float32).tobytes()
    path.write_bytes(bytes(raw))
