"""`RNGState`: the generators a checkpoint saved are put back at the first training batch after the resume,
not when the checkpoint is loaded (sanity validation and the loaders draw in between), and only once."""
import random

import numpy as np
import torch

from callbacks.rng_state import RNGState


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_the_saved_generators_come_back_at_the_first_training_batch_only():
    saved = RNGState().state_dict()
    expected = draws()  # what the uninterrupted run drew next
    resumed = RNGState()
    resumed.load_state_dict(saved)
    draws()  # restoring, sanity validation, building loaders
    resumed.on_train_batch_start(None, None, None, 0)
    assert draws() == expected
    resumed.on_train_batch_start(None, None, None, 1)  # the next batch goes on from there
    assert draws() != expected
