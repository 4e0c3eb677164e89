"""Windows of a light curve and their normalisation (paper section 4, following Astromer v2).

* Pretraining: random contiguous crops of up to ``window`` points, one pipeline
  (:func:`crop_windows`) whose crop start and mask key are functions of ``(seed, epoch, sample
  index)`` alone: :class:`RandomCrops` (a torch dataset, ``crops_per_curve`` samples per curve; what
  pretraining trains on) and :func:`random_windows` (one crop per curve of a ``datasets.Dataset``,
  through ``with_transform``). Trainer checkpoints restore the sampler order and the torch RNG but not
  a data generator's state; with keyed draws a run resumed mid-epoch sees exactly the windows and
  masks of the uninterrupted run, and DDP ranks, which get different sample indices, draw different crops.
* Evaluation and embedding: :func:`sequential_windows` cuts every curve into non-overlapping
  windows that cover each point exactly once (:func:`~astroco_hf.windowing.window_bounds` says how
  the tail is handled).

Each window is normalised on its own: ``times = t - t0`` and ``magnitudes = m - m0`` with ``t0``,
``m0`` the window's mean time and magnitude, computed in float64 (at MJD ~ 5e4 d float32 resolves
only ~0.004 d); uncertainties are unchanged. ``t0`` and ``m0`` are kept, so ``t = times + t0``
and ``m = magnitudes + m0`` restore the values, and a prediction in window units maps back likewise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset, Features, List, Value

from ..windowing import default_min_tail, normalize_segments, window_bounds, window_points
from ._random import counter_bits, stable_seed, uniforms


def cut_windows(
    table: pa.Table, lengths: np.ndarray, curve: np.ndarray, start: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Gather and normalise windows of light curves held as Arrow lists.

    Window ``k`` is points ``start[k] : start[k] + counts[k]`` of row ``curve[k]`` of ``table``
    (columns ``time``, ``mag``, ``mag_err``; ``lengths`` are its rows' lengths).

    Returns:
        ``offsets`` ``(windows + 1,)`` into the flat float32 ``times``, ``magnitudes``,
        ``uncertainties`` ``(points,)``, and the float64 offsets ``t0``, ``m0`` ``(windows,)``.
    """
    offsets, segments, points = window_points(np.cumsum(lengths) - lengths, curve, start, counts)
    # One contiguous chunk first: a gathered table has a chunk per row, and flattening those one by
    # one costs more than the copy.
    series = table.select(["time", "mag", "mag_err"]).combine_chunks()
    flat = lambda name: pc.list_flatten(series[name]).to_numpy()[points]  # noqa: E731
    times, magnitudes, t0, m0 = normalize_segments(flat("time"), flat("mag"), segments, len(counts))
    return offsets, times, magnitudes, flat("mag_err").astype(np.float32), t0, m0


def crop_draws(seed: int, epoch: int, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The random numbers of samples ``indices`` of ``epoch``: a uniform ``[0, 1)`` for the crop start
    and a non-negative int63 ``mask_seed`` for the collator, each ``(samples,)``, functions of
    ``(seed, epoch, index)`` alone (counter-based: one vectorised expression for a whole batch)."""
    key = np.uint64(stable_seed("crops", seed, epoch))
    positions = np.asarray(indices, dtype=np.int64)
    uniform = uniforms(key, positions, stream=0)
    return uniform, (counter_bits(key, positions, stream=1) >> np.uint64(1)).astype(np.int64)


def crop_windows(
    table: pa.Table, lengths: np.ndarray, window: int, *, seed: int, epoch: int, indices: Sequence[int]
) -> list[dict[str, Any]]:
    """One random contiguous crop of each row of ``table`` (row ``k`` is sample ``indices[k]``).

    The start is uniform over the ``n - window + 1`` positions of a curve of ``n`` points (a shorter
    curve is taken whole), drawn by :func:`crop_draws`. Returns per sample ``times``,
    ``magnitudes``, ``uncertainties`` (float32, ``min(n, window)`` points), ``t0``, ``m0``, ``start``
    and the ``mask_seed`` of its mask.
    """
    uniform, mask_seeds = crop_draws(seed, epoch, indices)
    starts = (uniform * np.maximum(lengths - window + 1, 1)).astype(np.int64)
    counts = np.minimum(lengths, window)
    offsets, t, m, e, t0, m0 = cut_windows(table, lengths, np.arange(len(lengths)), starts, counts)
    return [
        {"times": t[a:b], "magnitudes": m[a:b], "uncertainties": e[a:b], "t0": t0[k], "m0": m0[k],
         "start": int(starts[k]), "mask_seed": int(mask_seeds[k])}
        for k, (a, b) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True))
    ]


def _random_seed(seed: int | None) -> int:
    """``seed``, or fresh OS entropy (int63) for ``None``."""
    return int(np.random.SeedSequence().entropy % 2**63) if seed is None else seed


def _series(source: Dataset, keep_columns: Sequence[str] = ()) -> Dataset:
    return source.select_columns(["time", "mag", "mag_err", *keep_columns]).with_format("arrow")


class RandomCrops(torch.utils.data.Dataset):
    """Random crops of the light curves of ``curves`` (:func:`crop_windows`), per (seed, epoch, sample).

    Sample ``i`` of the epoch is a crop of curve ``curve_of_sample[i]``; each curve contributes
    ``crops_per_curve`` samples per epoch (default ``ceil(points / window)``, so an epoch covers about
    every point once, like the paper's pre-cut windows). Call :meth:`set_epoch` for new crops
    (:class:`~astroco_hf.training.callbacks.WindowEpochCallback` does it for Trainer). Samples also
    carry ``curve_index`` (row of ``curves``).
    """

    def __init__(self, curves: Dataset, window: int, *, seed: int, crops_per_curve: int | None = None) -> None:
        if len(curves) == 0:
            raise ValueError("no light curves: nothing to crop windows from")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.source = _series(curves)
        self.lengths = pc.list_value_length(self.source[:]["time"]).to_numpy().astype(np.int64)
        self.window = window
        self.seed = seed
        self.epoch = 0
        crops = -(-self.lengths // window) if crops_per_curve is None else np.full(len(self.lengths), crops_per_curve)
        self.curve_of_sample = np.repeat(np.arange(len(self.lengths)), crops)

    def __len__(self) -> int:
        return len(self.curve_of_sample)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        curves = self.curve_of_sample[np.asarray(indices, dtype=np.int64)]
        crops = crop_windows(self.source[curves.tolist()], self.lengths[curves], self.window,
                             seed=self.seed, epoch=self.epoch, indices=indices)
        return [crop | {"curve_index": int(curve)} for crop, curve in zip(crops, curves, strict=True)]


class RandomWindowTransform:
    """``with_transform`` callable of :func:`random_windows`: a random crop (:func:`crop_windows`) of
    each light curve it is asked for, keyed by ``(seed, epoch, curve_index)``.

    The batch it receives holds only ``curve_index`` (rows of ``source``); the curves are gathered
    from ``source`` as Arrow and cropped with vectorised numpy. (A transform over the light-curve
    columns themselves would first have ``datasets`` turn every point into a Python float: that
    conversion alone costs about as much as the rest of the pipeline, read to collated batch.)
    Returns, per example, the crop (``times``, ``magnitudes``, ``uncertainties``, ``t0``, ``m0``,
    ``start``, ``mask_seed``), ``curve_index`` and the ``keep_columns`` of ``source``. The same
    ``(seed, epoch)`` gives the same crops whatever the order or batch; :meth:`set_epoch` draws new ones.
    """

    def __init__(
        self, source: Dataset, window: int = 200, *, seed: int | None = None, keep_columns: Sequence[str] = ()
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.source = _series(source, keep_columns)
        self.window = window
        self.keep_columns = tuple(keep_columns)
        self.seed = _random_seed(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = list(batch["curve_index"])
        table = self.source[rows]
        lengths = pc.list_value_length(table["time"]).to_numpy().astype(np.int64)
        crops = crop_windows(table, lengths, self.window, seed=self.seed, epoch=self.epoch, indices=rows)
        out = {key: [crop[key] for crop in crops] for key in crops[0]} | {"curve_index": rows}
        return out | {name: table[name].to_pylist() for name in self.keep_columns}


def random_windows(
    dataset: Dataset,
    window: int = 200,
    *,
    seed: int | None = None,
    epoch: int = 0,
    keep_columns: Sequence[str] = (),
) -> Dataset:
    """A dataset of one random window per light curve of ``dataset`` (:class:`RandomWindowTransform`).

    Its stored column is ``curve_index`` (row of ``dataset``; shuffle, select or split it like any
    dataset); each row becomes a cropped, normalised window with its ``mask_seed``, ready for
    :class:`~astroco_hf.data.collator.DataCollatorForMaskedReconstruction`. The crops are those of
    ``(seed, epoch)``: call again with the next ``epoch`` for new ones (no data is copied);
    ``seed=None`` draws a seed from the OS. With
    ``transformers.Trainer`` set ``remove_unused_columns=False`` (Trainer would otherwise drop
    ``curve_index`` before the transform runs).
    """
    if len(dataset) == 0:
        raise ValueError("cannot draw windows from an empty dataset")
    rows = Dataset.from_dict({"curve_index": np.arange(len(dataset), dtype=np.int64)})
    transform = RandomWindowTransform(dataset, window, seed=seed, keep_columns=keep_columns)
    transform.set_epoch(epoch)
    return rows.with_transform(transform)


def window_features(source: Features) -> Features:
    """Features of :func:`sequential_windows` output (``label`` keeps the source's ``ClassLabel``)."""
    return Features(
        {
            "curve_index": Value("int64"),
            "window_index": Value("int32"),
            "object_id": source["object_id"],
            "survey": source["survey"],
            "band": source["band"],
            "label": source["label"],
            "start": Value("int32"),
            "t0": Value("float64"),
            "m0": Value("float64"),
            "times": List(Value("float32")),
            "magnitudes": List(Value("float32")),
            "uncertainties": List(Value("float32")),
            "mask_seed": Value("int64"),
        }
    )


def _windows_of_batch(batch: pa.Table, indices: list[int], window: int, min_tail: int, features: Features) -> pa.Table:
    lengths = pc.list_value_length(batch["time"]).to_numpy().astype(np.int64)
    curve, index, start, stop = window_bounds(lengths, window, min_tail)
    offsets, times, magnitudes, uncertainties, t0, m0 = cut_windows(batch, lengths, curve, start, stop - start)
    list_offsets = pa.array(offsets.astype(np.int32))
    meta = {name: batch[name].take(curve) for name in ("object_id", "survey", "band", "label")}
    # The masking seed names the window (not its row), so evaluation masks survive any reordering.
    mask_seed = [
        stable_seed(*key)
        for key in zip(
            *(meta[name].to_pylist() for name in ("survey", "object_id", "band")), start.tolist(), strict=True
        )
    ]
    columns = {
        "curve_index": pa.array(np.asarray(indices, dtype=np.int64)[curve]),
        "window_index": pa.array(index.astype(np.int32)),
        **meta,
        "start": pa.array(start.astype(np.int32)),
        "t0": pa.array(t0),
        "m0": pa.array(m0),
        "times": pa.ListArray.from_arrays(list_offsets, pa.array(times)),
        "magnitudes": pa.ListArray.from_arrays(list_offsets, pa.array(magnitudes)),
        "uncertainties": pa.ListArray.from_arrays(list_offsets, pa.array(uncertainties)),
        "mask_seed": pa.array(mask_seed, pa.int64()),
    }
    return pa.Table.from_arrays([columns[name] for name in features], schema=features.arrow_schema)


def sequential_windows(
    dataset: Dataset, window: int = 200, *, min_tail: int | None = None, batch_size: int = 1000
) -> Dataset:
    """Every light curve cut into normalised, non-overlapping windows (:func:`window_bounds`;
    ``min_tail`` defaults to :func:`~astroco_hf.windowing.default_min_tail`).

    Returns one row per window (:func:`window_features`): ``curve_index`` (row of ``dataset``) and
    ``window_index`` to aggregate windows back to curves, ``object_id``/``survey``/``band``/``label``,
    ``start`` (first point), offsets ``t0``/``m0``, the normalised ``times``/``magnitudes``/
    ``uncertainties``, and ``mask_seed``: a stable hash of (survey, object_id, band, start) that
    makes :class:`~astroco_hf.data.collator.DataCollatorForMaskedReconstruction` draw the same mask
    for this window whatever batch it is in.
    """
    features = window_features(dataset.features)
    return (
        dataset.with_format("arrow")
        .map(
            _windows_of_batch,
            batched=True,
            batch_size=batch_size,
            with_indices=True,
            remove_columns=dataset.column_names,
            features=features,
            fn_kwargs={
                "window": window,
                "min_tail": default_min_tail(window) if min_tail is None else min_tail,
                "features": features,
            },
            desc=f"windows of {window}",
        )
        .with_format(None)
    )
