"""Randomness that is reproducible and safe under DataLoader workers.

Two sources, used by the window sampler and the masking collator:

* :class:`ProcessRNG`: a ``numpy.random.Generator`` seeded from ``(seed, worker id)``, re-created
  after a fork, so DataLoader workers never replay each other's stream (the convention of
  ``transformers.DataCollatorForLanguageModeling``).
* counter-based uniforms (:func:`uniforms`): SplitMix64 evaluated at ``(key, position)``. A window's
  mask then depends on its own key only, never on which batch or worker it lands in, and a whole
  ``(batch, length)`` matrix is one vectorised expression.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (a bijection on uint64 with full avalanche); wraps modulo 2**64."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def counter_bits(keys: np.ndarray, positions: np.ndarray | int, stream: int) -> np.ndarray:
    """64 random bits (uint64) per broadcast pair of ``keys`` (uint64) and ``positions`` (non-negative
    ints), a function of ``(key, stream, position)`` only; ``stream`` separates independent draws
    made from the same key."""
    with np.errstate(over="ignore"):
        state = _mix64(np.asarray(keys, dtype=np.uint64) ^ _mix64(np.uint64(stream) + _GOLDEN))
        return _mix64(state + (np.asarray(positions, dtype=np.uint64) + np.uint64(1)) * _GOLDEN)


def uniforms(keys: np.ndarray, positions: np.ndarray | int, stream: int) -> np.ndarray:
    """Uniform ``[0, 1)`` floats from :func:`counter_bits`. E.g. ``uniforms(keys[:, None],
    np.arange(T), 0)`` is a ``(B, T)`` matrix whose row ``b`` is fixed by ``keys[b]`` alone."""
    return (counter_bits(keys, positions, stream) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def stable_seed(*parts: object) -> int:
    """A non-negative int63 derived from ``parts`` (stable across processes and Python versions,
    unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class ProcessRNG:
    """A per-process ``numpy`` Generator: seeded with ``seed`` in the main process and with
    ``(seed, worker_id)`` inside a DataLoader worker; ``seed=None`` draws fresh OS entropy."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self._generator: np.random.Generator | None = None
        self._pid: int | None = None

    def __call__(self) -> np.random.Generator:
        if self._generator is None or self._pid != os.getpid():
            import torch.utils.data

            worker = torch.utils.data.get_worker_info()
            entropy = None if self.seed is None else (self.seed if worker is None else [self.seed, worker.id])
            self._generator, self._pid = np.random.default_rng(entropy), os.getpid()
        return self._generator

    def __getstate__(self) -> dict:
        # A pickled copy (spawned worker, deepcopy) restarts from the seed, like a forked one.
        return {"seed": self.seed, "_generator": None, "_pid": None}
