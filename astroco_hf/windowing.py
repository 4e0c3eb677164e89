"""Windows of light curves: the one owner of the windowing rule, in plain numpy.

AstroCo reads windows of at most ``window`` (200) points. Everything that cuts light curves into
windows uses this module: the data layer's datasets (``astroco_hf.data.windows``), the training crops
and the feature extractor that prepares inference inputs. It imports nothing but numpy, so it ships
beside ``feature_extraction_astroco.py`` as Hub remote code.

Flat layout: ``n`` curves are held as flat value arrays ``(points,)`` plus the first point of each
curve ``(n,)``; a set of windows is ``(curve, start, count)`` triples; a gathered set of windows is
flat again, with ``offsets`` ``(windows + 1,)`` into it.

Normalisation (paper section 4, following Astromer v2): each window is centred on its own mean time
and mean magnitude, computed in float64 (at MJD ~ 5e4 d float32 resolves only ~0.004 d); the
offsets ``t0`` and ``m0`` are returned so ``t = times + t0`` and ``m = magnitudes + m0``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "default_min_tail",
    "window_bounds",
    "window_points",
    "normalize_segments",
    "pad_segments",
]


def default_min_tail(window: int) -> int:
    """Shortest last window kept on its own: a quarter window (see :func:`window_bounds`)."""
    return window // 4


def window_bounds(lengths: np.ndarray, window: int, min_tail: int | None = None) -> tuple[np.ndarray, ...]:
    """Sequential non-overlapping windows covering every point of every curve exactly once.

    A curve of ``n`` points gives ``ceil(n / window)`` windows of ``window`` points, the last one
    holding the remaining ``r`` points. If ``r < min_tail`` (and there are at least two windows), the
    last full window and the tail are re-split into two halves of ``ceil((window + r) / 2)`` and
    ``floor((window + r) / 2)`` points: no window is longer than ``window`` (shapes stay fixed), none
    is a near-empty sliver, no point is duplicated or dropped. A curve shorter than ``window`` is a
    single window; an empty curve has none.

    Args:
        lengths: ``(curves,)`` points per curve.
        window: the longest window.
        min_tail: default :func:`default_min_tail`.

    Returns:
        ``curve, window_index, start, stop``, each ``(windows,)``: window ``k`` is points
        ``start[k]:stop[k]`` of curve ``curve[k]``; windows are in curve order, then time order.
    """
    min_tail = default_min_tail(window) if min_tail is None else min_tail
    if window < 1 or not 0 <= min_tail <= window:
        raise ValueError(f"need window >= 1 and 0 <= min_tail <= window, got {window} and {min_tail}")
    lengths = np.asarray(lengths, dtype=np.int64)
    n_windows = -(-lengths // window)
    curve = np.repeat(np.arange(len(lengths)), n_windows)
    first = np.cumsum(n_windows) - n_windows
    index = np.arange(len(curve)) - first[curve]
    start = index * window
    stop = np.minimum(start + window, lengths[curve])
    tail = lengths - (n_windows - 1) * window
    rebalance = np.flatnonzero((n_windows >= 2) & (tail < min_tail))
    last = first[rebalance] + n_windows[rebalance] - 1
    split = start[last - 1] + (window + tail[rebalance] + 1) // 2
    stop[last - 1] = split
    start[last] = split
    return curve, index, start, stop


def window_points(
    curve_first: np.ndarray, curve: np.ndarray, start: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices of the points of a set of windows.

    Args:
        curve_first: ``(curves,)`` index of each curve's first point in the flat value arrays.
        curve, start, count: ``(windows,)`` window ``k`` is ``count[k]`` points of curve ``curve[k]``
            from its point ``start[k]``.

    Returns:
        ``offsets`` ``(windows + 1,)``, ``segments`` ``(points,)`` (the window of each gathered point)
        and ``points`` ``(points,)``: gather ``values[points]`` to get the windows back to back.
    """
    count = np.asarray(count, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(count)])
    segments = np.repeat(np.arange(len(count)), count)
    base = np.asarray(curve_first, dtype=np.int64)[curve] + np.asarray(start, dtype=np.int64)
    points = np.arange(offsets[-1]) - offsets[segments] + base[segments]
    return offsets, segments, points


def normalize_segments(
    time: np.ndarray, mag: np.ndarray, segments: np.ndarray, n_segments: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Subtract each segment's mean time and magnitude (float64 arithmetic).

    Args:
        time, mag: flat values, ``(points,)``; segments: ``(points,)`` window id of each point.

    Returns:
        ``times`` and ``magnitudes`` (float32, ``(points,)``), offsets ``t0`` and ``m0``
        (float64, ``(n_segments,)``; NaN for an empty segment).
    """
    counts = np.bincount(segments, minlength=n_segments)
    with np.errstate(invalid="ignore", divide="ignore"):
        t0 = np.bincount(segments, weights=np.asarray(time, dtype=np.float64), minlength=n_segments) / counts
        m0 = np.bincount(segments, weights=np.asarray(mag, dtype=np.float64), minlength=n_segments) / counts
    times = (time - t0[segments]).astype(np.float32)
    magnitudes = (np.asarray(mag, dtype=np.float64) - m0[segments]).astype(np.float32)
    return times, magnitudes, t0, m0


def pad_segments(
    offsets: np.ndarray, *values: np.ndarray, length: int, fill: float = 0.0
) -> tuple[np.ndarray, ...]:
    """Back-to-back segments ``(points,)`` laid out as padded rows ``(segments, length)``.

    Args:
        offsets: ``(segments + 1,)`` segment ``k`` is ``values[offsets[k]:offsets[k+1]]``.
        values: flat arrays, each ``(points,)``; each keeps its dtype.
        length: row length; no segment may be longer.
        fill: value at padding positions.

    Returns:
        one ``(segments, length)`` array per input, then the ``attention_mask`` ``(segments, length)``
        int64, 1 at observed points and 0 at padding.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.diff(offsets)
    if len(counts) and counts.max() > length:
        raise ValueError(f"a segment of {int(counts.max())} points does not fit in rows of length {length}")
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.arange(offsets[-1]) - offsets[rows]
    padded = []
    for flat in values:
        out = np.full((len(counts), length), fill, dtype=np.asarray(flat).dtype)
        out[rows, cols] = flat
        padded.append(out)
    mask = np.zeros((len(counts), length), dtype=np.int64)
    mask[rows, cols] = 1
    return (*padded, mask)
