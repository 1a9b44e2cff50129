"""Counter-based randomness: a 32-bit integer hash of (seed, epoch[, sample index]).

The batch order and the augmentation draws are functions of these keys instead of the state of a
generator (the idea of Philox / JAX's PRNG keys), so they do not depend on what ran before: not on
the data path, the device, the worker or the DDP rank, nor on where a resumed run restarted.
"""
from __future__ import annotations

MASK32 = 0xFFFFFFFF


def _mul32(x, constant: int):
    """(x · constant) mod 2³² for x < 2³², with no int64 overflow: the constant in 16-bit halves."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & MASK32


def mix32(x):
    """A 32-bit bijective integer hash (the 'lowbias32' mixer of C. Wellons' hash-prospector), for
    Python ints and int64 tensors alike: every output bit depends on every input bit."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def epoch_key(seed: int, epoch: int) -> int:
    """A 32-bit key of (seed, epoch): for one seed, distinct epochs get distinct keys (a bijection)."""
    return mix32(mix32(seed & MASK32) ^ (epoch & MASK32))
