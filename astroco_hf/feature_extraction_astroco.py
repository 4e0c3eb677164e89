"""AstroCoFeatureExtractor: light curves of any length in, the model's windows out.

The one owner of inference windowing. A light curve of n points becomes the data layer's sequential
windows (:func:`.windowing.window_bounds`: ``ceil(n / window_length)`` windows covering every point once, a
short tail re-balanced with the previous window); each window is centred on its own mean time and
mean magnitude (float64 arithmetic, :func:`.windowing.normalize_segments`) and padded
(:func:`.windowing.pad_segments`). Raw survey magnitudes (~15 mag) and pre-centred ones therefore give
the same model inputs: the model never sees the absolute magnitude.

:func:`pool_windows` is the way back: the point-weighted mean of per-window values gives one value per
curve (exact for anything linear in the pooled embedding, such as a linear classifier's logits).

This module imports only numpy, transformers and ``.windowing``, so ``save_pretrained`` ships it as Hub
remote code beside ``preprocessor_config.json``. Cleaning raw survey data (which needs pyarrow) stays in
the package: :func:`astroco_hf.evaluation.clean_inputs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin

from .windowing import default_min_tail, normalize_segments, pad_segments, window_bounds, window_points

__all__ = ["AstroCoFeatureExtractor", "FlatLightCurves", "pool_windows"]


@dataclass
class FlatLightCurves:
    """Many light curves as flat arrays: curve ``i`` is points ``offsets[i]:offsets[i+1]``.

    Attributes:
        time: (P,) float64 days. mag: (P,) float32. mag_err: (P,) float32.
        offsets: (N+1,) int64. names: how errors name each curve (``"3"`` or ``"3 ('OGLE-...')"``).
    """

    time: np.ndarray
    mag: np.ndarray
    mag_err: np.ndarray
    offsets: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.offsets) - 1


def _curve_names(count: int, ids: Sequence[Any] | None, first_index: int) -> list[str]:
    if ids is None:
        return [str(first_index + i) for i in range(count)]
    return [str(first_index + i) if name is None else f"{first_index + i} ({str(name)!r})" for i, name in enumerate(ids)]


def _is_series(value: Any) -> bool:
    """A 1-D run of numbers (one field of one curve), as opposed to a container of curves."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype != object
    if hasattr(value, "to_numpy") and hasattr(value, "dtype"):  # pandas Series
        return value.dtype != object
    return isinstance(value, (list, tuple)) and (len(value) == 0 or np.ndim(value[0]) == 0)


def pool_windows(values: np.ndarray, curve_index: np.ndarray, n_points: np.ndarray, n_curves: int) -> np.ndarray:
    """Point-weighted mean over each curve's windows: ``sum_w n_w v_w / sum_w n_w``.

    Args:
        values: (W, ...) one value per window, windows in curve order (as the feature extractor returns
            them); curve_index: (W,); n_points: (W,) observed points per window; n_curves: N, every
            curve with at least one window.

    Returns:
        (N, ...) float32, accumulated in float64.
    """
    first = np.searchsorted(curve_index, np.arange(n_curves))
    weights = np.asarray(n_points, dtype=np.float64).reshape(-1, *([1] * (values.ndim - 1)))
    sums = np.add.reduceat(values.astype(np.float64) * weights, first, axis=0)
    totals = np.add.reduceat(np.asarray(n_points, dtype=np.float64), first)
    return (sums / totals.reshape(-1, *([1] * (values.ndim - 1)))).astype(np.float32)


class AstroCoFeatureExtractor(FeatureExtractionMixin):
    """Turns light curves into AstroCo's model inputs: centred, padded windows of at most ``window_length`` points.

    Args:
        window_length: points per window; the model's ``max_sequence_length`` (200 for every preset).
            (Not ``window``: ``FeatureExtractionMixin.to_dict`` drops that name, an audio STFT window.)
        min_tail: shortest last window kept on its own (default ``window_length // 4``, the data
            layer's rule).
        padding_value: value at padded positions (ignored by the model through ``attention_mask``).
        time_column, mag_column, err_column, id_column: field names in mappings, DataFrames, datasets
            rows/batches and pyarrow tables.

    Calling it (see :meth:`__call__`) returns a :class:`~transformers.BatchFeature` with, for W windows
    padded to length L:

    * ``times``, ``magnitudes``, ``uncertainties``: (W, L) float32, centred per window;
    * ``attention_mask``: (W, L) int64, 1 at observed points;
    * ``curve_index``: (W,) int64, the input curve of each window (windows in curve order, then time);
    * ``window_index``, ``start``, ``n_points``: (W,) int64, position in the curve, first point, points;
    * ``t0``, ``m0``: (W,) float64, the subtracted mean time and magnitude (``t = times + t0``).

    The model reads ``model_input_names``: ``model(**{k: features[k] for k in fe.model_input_names})``.

    Example:
        >>> fe = AutoFeatureExtractor.from_pretrained("runs/astroco-tiny", trust_remote_code=True)
        >>> features = fe([(t1, m1, e1), (t2, m2, e2)], return_tensors="pt")   # any lengths
    """

    model_input_names = ["times", "magnitudes", "uncertainties", "attention_mask"]

    def __init__(
        self,
        window_length: int = 200,
        min_tail: int | None = None,
        padding_value: float = 0.0,
        time_column: str = "time",
        mag_column: str = "mag",
        err_column: str = "mag_err",
        id_column: str = "object_id",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        min_tail = default_min_tail(window_length) if min_tail is None else min_tail
        if window_length < 1 or not 0 <= min_tail <= window_length:
            raise ValueError(f"need window_length >= 1 and 0 <= min_tail <= window_length, got {window_length} "
                             f"and {min_tail}")
        self.window_length = int(window_length)
        self.min_tail = int(min_tail)
        self.padding_value = float(padding_value)
        self.time_column, self.mag_column, self.err_column, self.id_column = time_column, mag_column, err_column, id_column

    # ------------------------------------------------------------------------------------------
    # Containers -> flat arrays
    # ------------------------------------------------------------------------------------------

    def _fields(self) -> tuple[str, str, str]:
        return self.time_column, self.mag_column, self.err_column

    def _from_columns(self, columns: Mapping[str, Any]) -> tuple[list[tuple], list[Any] | None]:
        """A mapping of columns: one curve (series values) or a batch (one list per curve)."""
        if self.time_column not in columns:
            raise ValueError(f"light curves have no field {self.time_column!r} (fields: {list(columns)})")
        ids = columns.get(self.id_column)
        values = [columns.get(name) for name in self._fields()]
        if _is_series(values[0]):
            if ids is not None and not _is_series(ids) and np.ndim(ids) == 0:
                ids = [ids]  # a datasets row: one curve with its id
            elif ids is not None:  # long layout: one row per observation, grouped by id
                return self._group_long(values, np.asarray(ids))
            return [tuple(values)], ids
        if ids is not None and np.ndim(ids) == 0:  # one row (one id) whose times are not a 1-D series
            raise ValueError(f"light curve {ids!r}: field {self.time_column!r} is an array of shape "
                             f"{np.shape(values[0])}; give one 1-D array of values per field")
        count = len(values[0])
        if ids is not None and len(ids) != count:
            raise ValueError(f"light curves: field {self.id_column!r} has {len(ids)} values but "
                             f"{self.time_column!r} has {count} curves")
        return [tuple(None if v is None else v[i] for v in values) for i in range(count)], (
            None if ids is None else list(ids))

    @staticmethod
    def _group_long(values: list[Any], ids: np.ndarray) -> tuple[list[tuple], list[Any]]:
        """Observations of several curves in one table: one curve per id, in order of first appearance."""
        unique, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))  # id -> position by first appearance
        order = np.argsort(rank[inverse], kind="stable")
        cuts = np.cumsum(np.bincount(rank[inverse], minlength=len(unique)))[:-1]
        split = [None if v is None else np.split(np.asarray(v)[order], cuts) for v in values]
        curves = [tuple(None if s is None else s[i] for s in split) for i in range(len(unique))]
        return curves, list(unique[np.argsort(rank)])

    def _as_curves(self, data: Any) -> tuple[list[tuple], list[Any] | None]:
        """Any accepted input -> (list of (t, m, sigma-or-None), ids or None)."""
        if hasattr(data, "to_pydict"):  # pyarrow Table / RecordBatch
            return self._from_columns(data.to_pydict())
        if hasattr(data, "column_names") and hasattr(data, "features"):  # datasets.Dataset
            return self._from_columns(data[:])
        if hasattr(data, "columns") and hasattr(data, "iloc"):  # pandas DataFrame
            return self._from_columns({name: data[name].to_numpy() for name in data.columns})
        if isinstance(data, Mapping):
            return self._from_columns(data)
        if isinstance(data, (list, tuple, np.ndarray)):
            matrices = [] if isinstance(data, np.ndarray) else [  # an ndarray's rows are its curves or fields
                np.shape(item) for item in data if isinstance(item, np.ndarray) and item.ndim > 1]
            if matrices:
                raise ValueError(f"light-curve arrays must be 1-D, got one of shape {matrices[0]}: pass a (t, m, sigma) "
                                 "tuple of 1-D arrays per curve, or a list of them (curves of different lengths are "
                                 "not padded into a matrix)")
            if len(data) and _is_series(data[0]):  # one curve: (t, m[, sigma])
                data = [data]
            curves, ids = [], []
            for item in data:
                if isinstance(item, (list, tuple, np.ndarray)) and len(item) and _is_series(item[0]):
                    if len(item) not in (2, 3):
                        raise ValueError(f"a light curve tuple holds (t, m, sigma); got {len(item)} arrays")
                    curves.append((item[0], item[1], item[2] if len(item) == 3 else None))
                    ids.append(None)
                else:  # a row mapping or a one-curve DataFrame
                    inner, item_ids = self._as_curves(item)
                    if len(inner) != 1:
                        raise ValueError(f"item {len(curves)} of the batch holds {len(inner)} light curves, not one")
                    curves.append(inner[0])
                    ids.append(None if item_ids is None else item_ids[0])
            return curves, None if all(i is None for i in ids) else ids
        raise TypeError(f"cannot read light curves from a {type(data).__name__}; expected (t, m, sigma) arrays, a "
                        "list of them, a mapping of columns (a datasets row or batch), a pandas DataFrame, a "
                        "datasets.Dataset or a pyarrow Table")

    def is_single(self, data: Any) -> bool:
        """Whether ``data`` is one light curve (a ``(t, m, sigma)`` tuple or one row mapping), not a batch."""
        if isinstance(data, (list, tuple, np.ndarray)):
            return len(data) > 0 and _is_series(data[0])
        if isinstance(data, Mapping) and self.time_column in data:
            return _is_series(data[self.time_column]) and np.ndim(data.get(self.id_column)) == 0
        return False

    def flatten(self, data: Any, first_index: int = 0) -> FlatLightCurves:
        """Read light curves (see :meth:`__call__`) into :class:`FlatLightCurves` (checked by
        :meth:`window_curves`)."""
        curves, ids = self._as_curves(data)
        names = _curve_names(len(curves), ids, first_index)
        arrays: list[list[np.ndarray]] = [[], [], []]
        for curve, name in zip(curves, names, strict=True):
            length = None
            for field, values, dtype, out in zip(self._fields(), curve, (np.float64, np.float32, np.float32), arrays, strict=True):
                if values is None:
                    raise ValueError(f"light curve {name}: field {field!r} is missing (AstroCo needs times, "
                                     "magnitudes and 1-sigma uncertainties; impute missing ones with "
                                     "astroco_hf.evaluation.clean_inputs)")
                try:
                    values = np.asarray(values, dtype=dtype)
                except (TypeError, ValueError):
                    raise ValueError(f"light curve {name}: field {field!r} is not numeric") from None
                if values.ndim > 1:
                    raise ValueError(f"light curve {name}: field {field!r} is an array of shape {values.shape}; "
                                     "give one 1-D array of values per field")
                values = values.reshape(-1)  # a scalar: a one-point curve
                if length is not None and len(values) != length:
                    raise ValueError(f"light curve {name}: field {field!r} has {len(values)} values but "
                                     f"{self.time_column!r} has {length}")
                length = len(values)
                out.append(values)
        lengths = np.array([len(t) for t in arrays[0]], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        concat = [np.concatenate(a) if a else np.zeros(0, d) for a, d in zip(arrays, (np.float64, np.float32, np.float32), strict=True)]
        return FlatLightCurves(*concat, offsets, names)

    def validate(self, curves: FlatLightCurves) -> None:
        """Raise a ``ValueError`` naming the first bad curve and field.

        Rejected: no curves, an empty curve, NaN/inf anywhere, a non-positive uncertainty, times not
        strictly increasing (unsorted or duplicated). Raw survey data: clean it first
        (:func:`astroco_hf.evaluation.clean_inputs` removes, sorts, de-duplicates and counts).
        """
        if len(curves) == 0:
            raise ValueError("no light curves given")
        lengths = np.diff(curves.offsets)
        if (lengths == 0).any():
            raise ValueError(f"light curve {curves.names[int(np.argmax(lengths == 0))]}: field "
                             f"{self.time_column!r} is empty; every light curve needs at least one observation")
        hint = "; clean the data first (astroco_hf.evaluation.clean_inputs removes and counts such points)"

        def fail(bad: np.ndarray, problem: str, field: str) -> None:
            point = int(np.argmax(bad))
            curve = int(np.searchsorted(curves.offsets, point, side="right") - 1)
            raise ValueError(f"light curve {curves.names[curve]}: field {field!r} {problem} at point "
                             f"{point - curves.offsets[curve]}{hint}")

        for field, values in zip(self._fields(), (curves.time, curves.mag, curves.mag_err), strict=True):
            bad = ~np.isfinite(values)
            if bad.any():
                fail(bad, "has a non-finite value", field)
        if (curves.mag_err <= 0).any():
            fail(curves.mag_err <= 0, "has a non-positive uncertainty", self.err_column)
        # Compare each point with its predecessor inside the same curve (first points have none).
        step = np.diff(curves.time, prepend=-np.inf)
        step[curves.offsets[:-1]] = np.inf
        if (step < 0).any():
            fail(step < 0, "is not sorted (time decreases)", self.time_column)
        if (step == 0).any():
            fail(step == 0, "has a duplicate time", self.time_column)

    # ------------------------------------------------------------------------------------------
    # Flat arrays -> windows
    # ------------------------------------------------------------------------------------------

    def window_curves(
        self,
        curves: FlatLightCurves,
        *,
        padding: str = "longest",
        return_tensors: str | None = None,
    ) -> BatchFeature:
        """Sequential windows of flat light curves, after :meth:`validate` (what :meth:`__call__` returns)."""
        self.validate(curves)
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        curve, window_index, start, stop = window_bounds(np.diff(curves.offsets), self.window_length, self.min_tail)
        count = stop - start
        offsets, segments, points = window_points(curves.offsets[:-1], curve, start, count)
        times, mags, t0, m0 = normalize_segments(curves.time[points], curves.mag[points], segments, len(curve))
        length = self.window_length if padding == "max_length" else int(count.max())
        times, mags, errs, mask = pad_segments(offsets, times, mags, curves.mag_err[points], length=length,
                                               fill=self.padding_value)
        data = {
            "times": times, "magnitudes": mags, "uncertainties": errs, "attention_mask": mask,
            "curve_index": curve.astype(np.int64), "window_index": window_index.astype(np.int64),
            "start": start.astype(np.int64), "n_points": count.astype(np.int64), "t0": t0, "m0": m0,
        }
        return BatchFeature(data, tensor_type=return_tensors)

    def __call__(
        self,
        light_curves: Any,
        *,
        padding: str = "longest",
        return_tensors: str | None = None,
        first_index: int = 0,
    ) -> BatchFeature:
        """Window one light curve or a batch of any lengths.

        Args:
            light_curves: one curve as ``(t, m, sigma)`` arrays, or a batch: a list of such tuples, a
                mapping of columns (a ``datasets`` row, or a batch: one list per curve), a pandas
                DataFrame (nested: one row per curve; long: one row per observation, grouped by
                ``id_column``), a list of DataFrames, a ``datasets.Dataset`` or a pyarrow Table.
                Times in days (float64 kept); magnitudes raw or centred; uncertainties > 0.
            padding: ``"longest"`` (pad to the longest window) or ``"max_length"`` (to ``window_length``).
            return_tensors: ``"pt"``, ``"np"`` or None (numpy arrays).
            first_index: index of the first curve in error messages (for chunked sources).

        Raises:
            ValueError: naming the curve (index, and id when given) and the field, for an empty curve,
                fields of different lengths, NaN/inf, a non-positive uncertainty, or unsorted or
                duplicated times.
        """
        return self.window_curves(self.flatten(light_curves, first_index), padding=padding,
                                  return_tensors=return_tensors)
