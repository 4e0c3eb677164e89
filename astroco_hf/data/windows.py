"""Windows of a light curve and their normalisation (paper section 4, following Astromer v2).

* Pretraining: :func:`random_windows` crops one random contiguous window of up to ``window``
  points from every light curve, anew at every access (so every epoch), through
  ``Dataset.with_transform``.
* Evaluation and embedding: :func:`sequential_windows` cuts every curve into non-overlapping
  windows that cover each point exactly once (:func:`window_bounds` says how the tail is handled).

Each window is normalised on its own: ``times = t - t0`` and ``magnitudes = m - m0`` with ``t0``,
``m0`` the window's mean time and magnitude, computed in float64 (at MJD ~ 5e4 d float32 resolves
only ~0.004 d); uncertainties are unchanged. ``t0`` and ``m0`` are kept, so ``t = times + t0``
and ``m = magnitudes + m0`` restore the values, and a prediction in window units maps back likewise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features, List, Value

from ..windowing import default_min_tail, normalize_segments, window_bounds, window_points
from ._random import ProcessRNG, stable_seed


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


class RandomWindowTransform:
    """``with_transform`` callable: a random contiguous crop of the light curves it is asked for.

    The batch it receives holds only ``curve_index`` (rows of ``source``); the curves are gathered
    from ``source`` as Arrow and cropped with vectorised numpy. (A transform over the light-curve
    columns themselves would first have ``datasets`` turn every point into a Python float: that
    conversion alone costs about as much as the rest of the pipeline, read to collated batch.)

    Returns, per example: ``times``, ``magnitudes``, ``uncertainties`` (float32 arrays of
    ``min(n, window)`` points), ``t0``, ``m0``, ``start`` (index of the first point),
    ``curve_index``, and the ``keep_columns`` of ``source``. The crop start is uniform over the
    ``n - window + 1`` possible positions and drawn at every access, so each epoch sees new windows;
    ``seed`` makes the sequence reproducible per DataLoader worker
    (:class:`~astroco_hf.data._random.ProcessRNG`).
    """

    def __init__(
        self, source: Dataset, window: int = 200, *, seed: int | None = None, keep_columns: Sequence[str] = ()
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.source = source.select_columns(["time", "mag", "mag_err", *keep_columns]).with_format("arrow")
        self.window = window
        self.keep_columns = tuple(keep_columns)
        self.rng = ProcessRNG(seed)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = batch["curve_index"]
        table = self.source[rows]
        size = len(rows)
        lengths = pc.list_value_length(table["time"]).to_numpy().astype(np.int64)
        starts = (self.rng().random(size) * np.maximum(lengths - self.window + 1, 1)).astype(np.int64)
        counts = np.minimum(lengths, self.window)
        offsets, t, m, e, t0, m0 = cut_windows(table, lengths, np.arange(size), starts, counts)
        bounds = list(zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True))
        pieces = lambda values: [values[a:b] for a, b in bounds]  # noqa: E731
        out = {
            "times": pieces(t),
            "magnitudes": pieces(m),
            "uncertainties": pieces(e),
            "t0": t0.tolist(),
            "m0": m0.tolist(),
            "start": starts.tolist(),
            "curve_index": list(rows),
        }
        return out | {name: table[name].to_pylist() for name in self.keep_columns}


def random_windows(
    dataset: Dataset, window: int = 200, *, seed: int | None = None, keep_columns: Sequence[str] = ()
) -> Dataset:
    """A dataset of one random window per light curve of ``dataset``, drawn anew at every access.

    Its stored column is ``curve_index`` (row of ``dataset``; shuffle, select or split it like any
    dataset); :class:`RandomWindowTransform` turns each row into a cropped, normalised window ready
    for :class:`~astroco_hf.data.collator.DataCollatorForMaskedReconstruction`. With
    ``transformers.Trainer`` set ``remove_unused_columns=False`` (Trainer would otherwise drop
    ``curve_index`` before the transform runs).
    """
    if len(dataset) == 0:
        raise ValueError("cannot draw windows from an empty dataset")
    rows = Dataset.from_dict({"curve_index": np.arange(len(dataset), dtype=np.int64)})
    return rows.with_transform(RandomWindowTransform(dataset, window, seed=seed, keep_columns=keep_columns))


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
