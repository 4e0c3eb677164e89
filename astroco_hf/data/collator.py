"""BERT-style masking of light-curve windows for masked reconstruction (paper sections 3.1 and 4).

Per window of ``n`` valid points, positions are ranked in a random order; with the cumulative
fractions (defaults 0.3 / 0.4 / 0.5) the first ``floor(0.3 n + u)`` ranks are *hidden* (marked in
``masked_positions``; the model, not the collator, replaces their magnitude and uncertainty by
``config.mask_value``), the next ones up to ``floor(0.4 n + u)`` *random*
(magnitude replaced by the true magnitude of another point of the same window), the next ones up to
``floor(0.5 n + u)`` *unchanged*; all of them are *probed* (in the loss). ``u ~ U[0, 1)`` is one draw
per window: the counts are exact for ``n = 200`` and unbiased in expectation for shorter windows
(plain rounding would bias short windows). Padding ranks last, so it is never probed.

Reproducibility: the random numbers of a window are counter-based functions of one 64-bit key
(:mod:`~astroco_hf.data._random`). The key is drawn from a generator seeded with ``seed`` (per
DataLoader worker), so the same seed and the same examples give the same batch; or, where an example
carries an integer ``mask_seed`` (as :func:`~astroco_hf.data.windows.sequential_windows` adds), the
key is ``mask_seed`` itself: that window's mask is then fixed, whatever batch, order, worker or
collator seed it meets. One collator thus serves random training crops and fixed evaluation masks.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import torch
from transformers.data.data_collator import DataCollatorMixin

from ..windowing import pad_segments
from ._random import ProcessRNG, uniforms


class ProbeKind(IntEnum):
    """What happened to a position (``probe_kind`` output)."""

    NONE = 0
    HIDDEN = 1
    RANDOM = 2
    UNCHANGED = 3


_KIND_OF_DEPTH = np.array([ProbeKind.NONE, ProbeKind.UNCHANGED, ProbeKind.RANDOM, ProbeKind.HIDDEN], dtype=np.int8)


def _describe(features: Sequence[Mapping[str, Any]], index: int) -> str:
    object_id = features[index].get("object_id")
    return f"example {index}" + (f" (object_id {object_id!r})" if object_id is not None else "")


@dataclass
class DataCollatorForMaskedReconstruction(DataCollatorMixin):
    """Pads normalised windows to ``window`` and masks them for ``AstroCoForMaskedReconstruction``.

    Each example is a mapping with ``times``, ``magnitudes``, ``uncertainties`` (1-D, equal lengths
    ``n <= window``, already normalised: see :mod:`~astroco_hf.data.windows`) and optionally an
    integer ``mask_seed``; other keys are ignored. The batch (shapes ``(B, window)``, padding at
    the end, identical shapes for every batch) is:

    * ``times`` float32: window-mean-subtracted days, 0 at padding;
    * ``magnitudes`` float32: window-mean-subtracted, random replacements applied, 0 at padding;
    * ``uncertainties`` float32: as given, 0 at padding;
    * ``attention_mask`` int64: 1 observation, 0 padding;
    * ``masked_positions`` bool: hidden positions (the model replaces their magnitude and
      uncertainty by ``config.mask_value``: hiding has that one owner);
    * ``labels`` float32: the true normalised magnitudes, 0 at padding;
    * ``probed_positions`` bool: positions in the loss (hidden, random and unchanged);
    * ``probe_kind`` int8 (:class:`ProbeKind`), only with ``return_probe_kind=True`` (off by
      default since Trainer passes every key to ``forward``).

    Raises:
        ValueError: an example lacks a key, has arrays of different lengths, is empty, longer than
            ``window`` or holds non-finite values (naming the example and the field).
    """

    window: int = 200
    probe_fraction: float = 0.5
    mask_fraction: float = 0.3
    random_fraction: float = 0.1
    unchanged_fraction: float = 0.1
    seed: int | None = None
    return_probe_kind: bool = False
    return_tensors: str = "pt"
    window_size: InitVar[int | None] = None  # the old name of `window`
    _rng: ProcessRNG = field(init=False, repr=False, compare=False)

    def __post_init__(self, window_size: int | None) -> None:
        if window_size is not None:
            warnings.warn("DataCollatorForMaskedReconstruction(window_size=...) is deprecated; use window=...",
                          FutureWarning, stacklevel=3)
            self.window = window_size
        fractions = (self.probe_fraction, self.mask_fraction, self.random_fraction, self.unchanged_fraction)
        if not all(0.0 <= f <= 1.0 for f in fractions):
            raise ValueError(f"fractions must lie in [0, 1], got {fractions}")
        if not np.isclose(self.mask_fraction + self.random_fraction + self.unchanged_fraction, self.probe_fraction):
            raise ValueError(
                f"mask_fraction + random_fraction + unchanged_fraction must equal probe_fraction, got "
                f"{self.mask_fraction} + {self.random_fraction} + {self.unchanged_fraction} != {self.probe_fraction}"
            )
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        self._rng = ProcessRNG(self.seed)

    def _flat(self, features: Sequence[Mapping[str, Any]], key: str, lengths: np.ndarray) -> np.ndarray:
        """``features[i][key]`` back to back, float32 ``(points,)``, checked against ``lengths``."""
        try:
            sizes = np.fromiter((len(example[key]) for example in features), np.int64, len(features))
            flat = np.concatenate([example[key] for example in features], dtype=np.float32, casting="unsafe")
        except (KeyError, TypeError, ValueError):
            flat, sizes = None, None
        if flat is None or flat.ndim != 1 or not np.array_equal(sizes, lengths):
            self._raise_for(features, key, lengths)
        finite = np.isfinite(flat)
        if not finite.all():
            row = int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(~finite)[0], side="right"))
            raise ValueError(f"{_describe(features, row)}: field '{key}' holds NaN or inf")
        return flat

    @staticmethod
    def _raise_for(features: Sequence[Mapping[str, Any]], key: str, lengths: np.ndarray) -> None:
        """Find the example that broke the vectorised path and say what is wrong with it."""
        for i, example in enumerate(features):
            if key not in example:
                raise ValueError(f"{_describe(features, i)} has no '{key}'")
            try:
                array = np.asarray(example[key], dtype=np.float32)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{_describe(features, i)}: field '{key}' is not numeric ({error})") from None
            if array.shape != (lengths[i],):
                raise ValueError(
                    f"{_describe(features, i)}: field '{key}' has shape {array.shape}, 'times' has {lengths[i]} values"
                )
        raise ValueError(f"field '{key}' could not be collated")

    def _keys(self, features: Sequence[Mapping[str, Any]]) -> np.ndarray:
        keys = self._rng().integers(0, 2**64, size=len(features), dtype=np.uint64)
        for i, example in enumerate(features):
            if example.get("mask_seed") is not None:
                keys[i] = np.uint64(int(example["mask_seed"]) % 2**64)
        return keys

    def probe_kinds(self, keys: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Kind (:class:`ProbeKind`) of every position, ``(B, window)`` int8, for windows with
        random keys ``keys`` ``(B,)`` and ``lengths`` ``(B,)`` valid points."""
        size, length = len(keys), self.window
        valid = np.arange(length) < lengths[:, None]
        # Rank valid positions by a random priority (padding ranks last); the k lowest-priority
        # positions are those below the k-th smallest priority of the row.
        priority = np.where(valid, uniforms(keys[:, None], np.arange(length), stream=0), 2.0)
        ordered = np.concatenate([np.sort(priority, axis=1), np.full((size, 1), 3.0)], axis=1)
        jitter = uniforms(keys[:, None], 0, stream=1)
        # Nested sets (probed ⊇ hidden-or-random ⊇ hidden): a position's depth is how many it is in.
        depth = np.zeros((size, length), dtype=np.int8)
        for fraction in (self.probe_fraction, self.mask_fraction + self.random_fraction, self.mask_fraction):
            count = np.floor(fraction * lengths[:, None] + jitter).astype(np.int64)
            depth += priority < np.take_along_axis(ordered, count, axis=1)
        kind = _KIND_OF_DEPTH[depth]
        if (lengths < 2).any():  # a single point has no other point to borrow a magnitude from
            kind[(kind == ProbeKind.RANDOM) & (lengths[:, None] < 2)] = ProbeKind.UNCHANGED
        return kind

    def random_sources(
        self, keys: np.ndarray, lengths: np.ndarray, rows: np.ndarray, columns: np.ndarray
    ) -> np.ndarray:
        """For random positions ``(rows, columns)``: the index of another valid point of the same
        window, uniform over the ``n - 1`` candidates."""
        draw = uniforms(keys[rows], columns, stream=2)
        source = np.floor(draw * (lengths[rows] - 1)).astype(np.int64)
        return source + (source >= columns)  # skip the position itself

    def numpy_call(self, features: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        if not features:
            raise ValueError("cannot collate an empty list of examples")
        for i, example in enumerate(features):
            if "times" not in example:
                raise ValueError(f"{_describe(features, i)} has no 'times'")
        lengths = np.fromiter((len(example["times"]) for example in features), np.int64, len(features))
        for i in np.flatnonzero((lengths < 1) | (lengths > self.window)):
            raise ValueError(
                f"{_describe(features, int(i))} has {lengths[i]} points; windows need 1..{self.window} "
                "(crop with random_windows or sequential_windows first)"
            )
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        flat = (self._flat(features, key, lengths) for key in ("times", "magnitudes", "uncertainties"))
        times, labels, uncertainties, attention_mask = pad_segments(offsets, *flat, length=self.window)

        keys = self._keys(features)
        kind = self.probe_kinds(keys, lengths)
        magnitudes = labels.copy()
        rows, columns = np.nonzero(kind == ProbeKind.RANDOM)
        magnitudes[rows, columns] = labels[rows, self.random_sources(keys, lengths, rows, columns)]
        batch = {
            "times": times,
            "magnitudes": magnitudes,
            "uncertainties": uncertainties,
            "attention_mask": attention_mask,
            "masked_positions": kind == ProbeKind.HIDDEN,
            "labels": labels,
            "probed_positions": kind != ProbeKind.NONE,
        }
        if self.return_probe_kind:
            batch["probe_kind"] = kind
        return batch

    def torch_call(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(array) for name, array in self.numpy_call(features).items()}
