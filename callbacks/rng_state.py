"""`RNGState`: the random number generators travel with the checkpoint (always on).

The batch order and augmentation come from (seed, epoch) and need no generator state, but anything
else that draws random numbers during training (dropout, a stochastic layer) reads the global
generators. Their states (Python, NumPy, torch CPU and every CUDA device) are saved with each
checkpoint and put back just before the first training batch after a resume, so the resumed run
draws the same numbers the uninterrupted one would have.

`rng_states` / `set_rng_states` are the project's one capture and restore of the global generators
(the step probes replay a training step's state with them too).
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from pytorch_lightning import Callback, LightningModule, Trainer


def rng_states() -> dict[str, Any]:
    """Every global generator's state, in types `torch.load(weights_only=True)` accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "numpy": (name, torch.from_numpy(keys.copy()), pos, has_gauss, cached),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class RNGState(Callback):
    def __init__(self):
        self._to_restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Not now: restoring, sanity validation and building loaders happen between here and training.
        self._to_restore = state_dict

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        if self._to_restore is not None:
            set_rng_states(self._to_restore)
            self._to_restore = None
