"""Hand-crafted light-curve features: the classical baseline the embeddings are measured against.

Seven features per light curve, computed on the whole (cleaned) curve:

=================  ===============================================================================
``amplitude``      half the spread between the 95th and 5th magnitude percentiles (robust to a few
                   outliers, unlike max - min)
``std``            standard deviation of the magnitudes (ddof 0)
``skew``           Fisher-Pearson skewness (0 for a constant curve)
``kurtosis``       excess kurtosis (0 for a constant curve)
``mad``            median absolute deviation from the median
``ls_log10_period`` log10 of the period (days) at the highest Lomb-Scargle peak; log because periods
                   of variable stars span 0.1 d (RRc) to 1000 d (Miras)
``ls_power``       height of that peak (standard normalisation, in [0, 1])
=================  ===============================================================================

The moments and percentiles are vectorised over all curves (segment reductions on flat arrays).
The periodogram (astropy ``LombScargle``, ``fast`` method with Press & Rybicki extirpolation,
uncertainties as weights) runs per curve
on a grid from ``1 / baseline`` to ``max_frequency`` (default 10 / day, periods >= 2.4 h) with
``samples_per_peak`` points per peak width ``1 / baseline``. A curve with fewer than
``MIN_PERIODOGRAM_POINTS`` points or no time baseline gets NaN period and power; classifiers impute.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from astropy.timeseries import LombScargle
from tqdm.auto import tqdm

from .inputs import LightCurveArrays

FEATURE_NAMES: tuple[str, ...] = ("amplitude", "std", "skew", "kurtosis", "mad", "ls_log10_period", "ls_power")
MIN_PERIODOGRAM_POINTS = 5


def _segment_quantile(sorted_values: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated quantile of each segment of an array sorted within segments; (segments,)."""
    position = q * (counts - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, counts - 1)
    fraction = position - low
    return sorted_values[starts + low] * (1.0 - fraction) + sorted_values[starts + high] * fraction


def moment_features(curves: LightCurveArrays) -> np.ndarray:
    """Amplitude, std, skew, kurtosis and MAD of every curve, shape (curves, 5), float64."""
    counts = curves.lengths
    if (counts == 0).any():
        raise ValueError(f"light curve {curves.describe(int(np.flatnonzero(counts == 0)[0]))} is empty")
    segments = curves.segments()
    n = len(counts)
    mag = curves.mag.astype(np.float64)
    mean = np.bincount(segments, weights=mag, minlength=n) / counts
    centred = mag - mean[segments]
    moment = lambda power: np.bincount(segments, weights=centred**power, minlength=n) / counts  # noqa: E731
    variance, third, fourth = moment(2), moment(3), moment(4)
    std = np.sqrt(variance)
    flat = variance <= 1e-24 * np.maximum(mean**2, 1.0)  # constant curve: shape moments are 0, not NaN
    safe = np.where(flat, 1.0, variance)
    skew = np.where(flat, 0.0, third / safe**1.5)
    kurtosis = np.where(flat, 0.0, fourth / safe**2 - 3.0)

    starts = curves.offsets[:-1]
    sorted_mag = mag[np.lexsort((mag, segments))]
    median = _segment_quantile(sorted_mag, starts, counts, 0.5)
    amplitude = 0.5 * (_segment_quantile(sorted_mag, starts, counts, 0.95) - _segment_quantile(sorted_mag, starts, counts, 0.05))
    deviation = np.abs(mag - median[segments])
    mad = _segment_quantile(deviation[np.lexsort((deviation, segments))], starts, counts, 0.5)
    return np.stack([amplitude, std, skew, kurtosis, mad], axis=1)


def lomb_scargle_peak(
    time: np.ndarray,
    mag: np.ndarray,
    mag_err: np.ndarray | None = None,
    *,
    max_frequency: float = 10.0,
    samples_per_peak: int = 5,
) -> tuple[float, float]:
    """Period (days) and standard-normalised power of the highest Lomb-Scargle peak of one curve.

    Returns ``(nan, nan)`` for fewer than ``MIN_PERIODOGRAM_POINTS`` points or a zero baseline.
    """
    baseline = float(time[-1] - time[0]) if len(time) else 0.0
    if len(time) < MIN_PERIODOGRAM_POINTS or baseline <= 0.0:
        return float("nan"), float("nan")
    usable_err = mag_err is not None and bool(np.all(np.isfinite(mag_err) & (mag_err > 0)))
    periodogram = LombScargle(time, mag, mag_err if usable_err else None)
    minimum = 1.0 / baseline
    frequency, power = periodogram.autopower(
        method="fast",
        minimum_frequency=minimum,
        maximum_frequency=max(max_frequency, 2.0 * minimum),
        samples_per_peak=samples_per_peak,
        # Press & Rybicki extirpolation: the same peaks as astropy's default low-rank NUFFT on these
        # curves at a quarter of the cost (the periodogram dominates feature extraction).
        method_kwds={"algorithm": "fasper"},
    )
    best = int(np.nanargmax(power)) if np.isfinite(power).any() else -1
    if best < 0:
        return float("nan"), float("nan")
    return float(1.0 / frequency[best]), float(power[best])


def _cache_key(curves: LightCurveArrays, max_frequency: float, samples_per_peak: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for array in (curves.offsets.astype(np.int64), curves.time, curves.mag, curves.mag_err):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(repr((FEATURE_NAMES, max_frequency, samples_per_peak, "fasper")).encode())
    return digest.hexdigest()


def handcrafted_features(
    curves: LightCurveArrays,
    *,
    max_frequency: float = 10.0,
    samples_per_peak: int = 5,
    progress: bool = False,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of every curve, shape (curves, 7), float64 (NaN period/power for
    curves too short for a periodogram).

    Args:
        curves: light curves as flat arrays (see :func:`~astroco_hf.evaluation.inputs.as_arrays`).
        max_frequency: highest trial frequency in 1/day.
        samples_per_peak: grid oversampling relative to the peak width 1/baseline.
        progress: show a progress bar over curves.
        cache_dir: reuse features saved there for the same curves and settings (the periodograms
            take ~0.1 s per curve of a multi-year survey; the few-shot runs of every model share them).
    """
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"features-{_cache_key(curves, max_frequency, samples_per_peak)}.npy"
        if cache.exists():
            return np.load(cache)
    moments = moment_features(curves)
    periodogram = np.empty((len(curves), 2))
    for index in tqdm(range(len(curves)), desc="Lomb-Scargle", unit="curve", disable=not progress):
        time, mag, mag_err = curves.curve(index)
        period, power = lomb_scargle_peak(
            time, mag.astype(np.float64), mag_err.astype(np.float64),
            max_frequency=max_frequency, samples_per_peak=samples_per_peak,
        )
        periodogram[index] = (np.log10(period), power)
    features = np.concatenate([moments, periodogram], axis=1)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, features)
    return features
