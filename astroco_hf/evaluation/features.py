"""Hand-crafted light-curve features: the classical references the embeddings are measured against.

Two feature sets, each one public function:

* :func:`light_curve_features` (:data:`FEATURE_NAMES`, 50 columns): the ``light-curve`` package's
  extractors, the main reference (below).
* :func:`handcrafted_features` (:data:`HANDCRAFTED_FEATURE_NAMES`, 7 columns): the seven astropy
  features of the first few-shot tables (section at the end). Kept beside the 50 because they add
  information: a random forest on both sets beats either set alone on CRTS, and on the seven alone
  beats the 50 on the OGLE Cepheids (docs/results.md).

The ``light-curve`` set
-----------------------

``light-curve`` (Rust, the extractor used by alert brokers and variability studies) computes every
feature of a curve in one pass, over many curves in parallel threads (``n_jobs``). The set below
(:data:`FEATURE_NAMES`, 50 columns) describes the magnitude distribution, the variability relative to
the errors, the time structure and the periodicity of a curve; survey-specific quantities (number of
points, time span, cadence) are left out on purpose, so a classifier cannot learn the survey instead of
the class.

==========================  ======================================================================
distribution (16)           ``Amplitude``, ``PercentAmplitude``, ``StandardDeviation``,
                            ``MedianAbsoluteDeviation``, ``InterPercentileRange`` (2, 10, 25 %),
                            ``Skew``, ``Kurtosis``, ``BeyondNStd`` (1, 2 sigma),
                            ``MagnitudePercentageRatio`` (40/5, 20/5),
                            ``MedianBufferRangePercentage`` (10, 20 %), ``AndersonDarlingNormal``
robust scale, split (6)     ``QnScale``, ``BiweightScale``, ``OtsuSplit`` (4 outputs)
percentile spread (2)       ``PercentDifferenceMagnitudePercentile`` (5, 10 %)
variability vs errors (5)   ``ReducedChi2``, ``Chi2Pvar`` (chi2 p-value of constancy),
                            ``ExcessVariance``, ``StetsonK``, ``Roms``
time structure (10)         ``Eta`` (von Neumann), ``EtaE``, ``Cusum``, ``MaximumSlope``,
                            ``LinearTrend`` (3 outputs), ``LinearFit`` (3 outputs, error-weighted)
periodogram (6)             ``Periodogram(peaks=3)``: period and signal-to-noise of the three
                            highest Lomb-Scargle peaks (``fast`` Press-Rybicki algorithm)
folded at the best period   ``Amplitude``, ``LaflerKinmanStringLength``, ``Skew``, ``Eta``,
(5)                         ``InterPercentileRange`` (25 %) of the curve folded at period 0
==========================  ======================================================================

Periodogram grid: angular frequencies ``linspace(0, 2 pi f_max, 2**k + 1)`` (the grid the fast
algorithm needs) with ``f_max = max_frequency`` (default 10 / day: periods down to 2.4 h, as short as
contact binaries at half their period) and ``k`` the smallest integer giving at least
``samples_per_peak`` (default 5) grid points per peak width ``1 / baseline`` of *that* curve, so a
curve's features never depend on the other curves it is computed with. Features a curve is too short
for are NaN; the classifiers median-impute them.

The seven astropy features
--------------------------
===================  ============================================================================
``amplitude``        half the spread between the 95th and 5th magnitude percentiles (robust to a
                     few outliers, unlike max - min)
``std``              standard deviation of the magnitudes (ddof 0)
``skew``             Fisher-Pearson skewness (0 for a constant curve)
``kurtosis``         excess kurtosis (0 for a constant curve)
``mad``              median absolute deviation from the median
``ls_log10_period``  log10 of the period (days) at the highest Lomb-Scargle peak; log because
                     periods of variable stars span 0.1 d (RRc) to 1000 d (Miras)
``ls_power``         height of that peak (standard normalisation, in [0, 1])
===================  ============================================================================

The moments and percentiles are vectorised over all curves. The periodogram (astropy ``LombScargle``,
uncertainties as weights, ``fast`` method with Press & Rybicki extirpolation) runs per curve on the
grid from ``1 / baseline`` to ``max_frequency`` with ``samples_per_peak`` points per peak width
``1 / baseline``; it costs 7-12x the CPU of the whole ``light-curve`` set (three ~2**20-point FFTs
on a multi-year curve), so curves are spread over ``n_jobs`` processes: the same calls, the same numbers.
A curve with fewer than :data:`MIN_PERIODOGRAM_POINTS` points or no time baseline gets NaN period and
power.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import astropy
import light_curve as lc
import numpy as np
from astropy.timeseries import LombScargle
from tqdm.auto import tqdm

from .inputs import LightCurveArrays

EXTRACTOR = f"light-curve {lc.__version__}"  # what computed the features, for the records
DEFAULT_MAX_FREQUENCY = 10.0  # 1 / day
DEFAULT_SAMPLES_PER_PEAK = 5


def _point_features() -> list:
    """The extractors of the whole curve (module docstring), in column order."""
    return [
        lc.Amplitude(), lc.PercentAmplitude(), lc.StandardDeviation(), lc.MedianAbsoluteDeviation(),
        lc.InterPercentileRange(0.02), lc.InterPercentileRange(0.1), lc.InterPercentileRange(0.25),
        lc.Skew(), lc.Kurtosis(), lc.BeyondNStd(1.0), lc.BeyondNStd(2.0),
        lc.MagnitudePercentageRatio(0.4, 0.05), lc.MagnitudePercentageRatio(0.2, 0.05),
        lc.MedianBufferRangePercentage(0.1), lc.MedianBufferRangePercentage(0.2), lc.AndersonDarlingNormal(),
        lc.QnScale(), lc.BiweightScale(), lc.OtsuSplit(),
        lc.PercentDifferenceMagnitudePercentile(0.05), lc.PercentDifferenceMagnitudePercentile(0.1),
        lc.ReducedChi2(), lc.Chi2Pvar(), lc.ExcessVariance(), lc.StetsonK(), lc.Roms(),
        lc.Eta(), lc.EtaE(), lc.Cusum(), lc.MaximumSlope(), lc.LinearTrend(), lc.LinearFit(),
    ]


def feature_extractor(frequencies: np.ndarray | None = None) -> lc.Extractor:
    """All features as one ``light_curve.Extractor``; ``frequencies`` is the periodogram's angular grid
    ``linspace(0, w_max, 2**k + 1)`` (None: the package's own grid, for the names only)."""
    periodogram = lc.Periodogram(
        peaks=3, freqs=frequencies, fast=True,
        phase_features=[lc.Amplitude(), lc.LaflerKinmanStringLength(), lc.Skew(), lc.Eta(),
                        lc.InterPercentileRange(0.25)],
    )
    return lc.Extractor(*_point_features(), periodogram)


FEATURE_NAMES: tuple[str, ...] = tuple(feature_extractor().names)


def grid_exponent(baseline: np.ndarray, max_frequency: float, samples_per_peak: int) -> np.ndarray:
    """Per curve, the smallest ``k`` whose grid ``linspace(0, f_max, 2**k + 1)`` has at least
    ``samples_per_peak`` points per peak width ``1 / baseline``; (curves,) int."""
    points = max_frequency * np.maximum(baseline, 1e-9) * samples_per_peak
    return np.maximum(np.ceil(np.log2(np.maximum(points, 2.0))), 1).astype(np.int64)


def _cache_key(curves: LightCurveArrays, *settings) -> str:
    """Digest of the curves and the settings that determine their features (the cache file name)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (curves.offsets.astype(np.int64), curves.time, curves.mag, curves.mag_err):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(repr(settings).encode())
    return digest.hexdigest()


def light_curve_features(
    curves: LightCurveArrays,
    *,
    max_frequency: float = DEFAULT_MAX_FREQUENCY,
    samples_per_peak: int = DEFAULT_SAMPLES_PER_PEAK,
    n_jobs: int = -1,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of every curve, shape (curves, 50), float64 (NaN where a curve is too
    short for a feature).

    Args:
        curves: cleaned light curves as flat arrays (times sorted, finite values, positive errors; see
            :func:`~astroco_hf.evaluation.inputs.as_arrays`).
        max_frequency: highest periodogram frequency in 1/day.
        samples_per_peak: least grid points per peak width 1/baseline.
        n_jobs: threads of ``light_curve``'s extraction (-1: all cores).
        cache_dir: reuse features saved there for the same curves and settings.
    """
    cache = None
    if cache_dir is not None:
        key = _cache_key(curves, FEATURE_NAMES, max_frequency, samples_per_peak, lc.__version__)
        cache = Path(cache_dir) / f"lc-features-{key}.npy"
        if cache.exists():
            return np.load(cache)
    lengths = curves.lengths
    if (lengths == 0).any():
        raise ValueError(f"light curve {curves.describe(int(np.flatnonzero(lengths == 0)[0]))} is empty")
    starts, stops = curves.offsets[:-1], curves.offsets[1:]
    time = curves.time.astype(np.float64)
    baseline = time[stops - 1] - time[starts]
    exponent = grid_exponent(baseline, max_frequency, samples_per_peak)
    features = np.full((len(curves), len(FEATURE_NAMES)), np.nan)
    mag, err = curves.mag.astype(np.float64), curves.mag_err.astype(np.float64)
    # One extractor per grid size: curves with similar baselines share a grid, each keeps its own resolution.
    for k in np.unique(exponent):
        rows = np.flatnonzero(exponent == k)
        grid = np.linspace(0.0, 2.0 * np.pi * max_frequency, 2**int(k) + 1)
        batch = [(time[starts[i]:stops[i]], mag[starts[i]:stops[i]], err[starts[i]:stops[i]]) for i in rows]
        try:
            features[rows] = feature_extractor(grid).many(batch, sorted=None, fill_value=np.nan, n_jobs=n_jobs)
        except ValueError as error:  # light_curve names no curve: find the first one it rejects
            for i, curve in zip(rows, batch, strict=True):
                try:
                    feature_extractor(grid)(*curve, sorted=None, fill_value=np.nan)
                except ValueError as own:
                    raise ValueError(f"light curve {curves.describe(int(i))}: {own}") from error
            raise
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, features)
    return features


# ------------------------------------------------------------------------------------------------
# The seven astropy features
# ------------------------------------------------------------------------------------------------

HANDCRAFTED_FEATURE_NAMES: tuple[str, ...] = (
    "amplitude", "std", "skew", "kurtosis", "mad", "ls_log10_period", "ls_power")
HANDCRAFTED_EXTRACTOR = f"astropy {astropy.__version__} LombScargle (fast, fasper) + moments"
MIN_PERIODOGRAM_POINTS = 5


def _segment_quantile(sorted_values: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated quantile of each segment of an array sorted within segments; (segments,)."""
    position = q * (counts - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, counts - 1)
    fraction = position - low
    return sorted_values[starts + low] * (1.0 - fraction) + sorted_values[starts + high] * fraction


def _moments(curves: LightCurveArrays) -> np.ndarray:
    """Amplitude, std, skew, kurtosis and MAD of every (non-empty) curve, shape (curves, 5), float64."""
    counts = curves.lengths
    segments = curves.segments()
    n = len(counts)
    mag = curves.mag.astype(np.float64)
    mean = np.bincount(segments, weights=mag, minlength=n) / counts
    centred = mag - mean[segments]
    variance, third, fourth = (np.bincount(segments, weights=centred**power, minlength=n) / counts
                               for power in (2, 3, 4))
    flat = variance <= 1e-24 * np.maximum(mean**2, 1.0)  # constant curve: shape moments are 0, not NaN
    safe = np.where(flat, 1.0, variance)
    skew = np.where(flat, 0.0, third / safe**1.5)
    kurtosis = np.where(flat, 0.0, fourth / safe**2 - 3.0)

    starts = curves.offsets[:-1]
    sorted_mag = mag[np.lexsort((mag, segments))]
    median = _segment_quantile(sorted_mag, starts, counts, 0.5)
    amplitude = 0.5 * (_segment_quantile(sorted_mag, starts, counts, 0.95)
                       - _segment_quantile(sorted_mag, starts, counts, 0.05))
    deviation = np.abs(mag - median[segments])
    mad = _segment_quantile(deviation[np.lexsort((deviation, segments))], starts, counts, 0.5)
    return np.stack([amplitude, np.sqrt(variance), skew, kurtosis, mad], axis=1)


def _lomb_scargle_peak(time: np.ndarray, mag: np.ndarray, mag_err: np.ndarray, max_frequency: float,
                       samples_per_peak: int) -> tuple[float, float]:
    """Period (days) and standard-normalised power of the highest error-weighted Lomb-Scargle peak of
    one curve; ``(nan, nan)`` for fewer than :data:`MIN_PERIODOGRAM_POINTS` points or a zero baseline."""
    baseline = float(time[-1] - time[0])
    if len(time) < MIN_PERIODOGRAM_POINTS or baseline <= 0.0:
        return float("nan"), float("nan")
    minimum = 1.0 / baseline
    frequency, power = LombScargle(time, mag, mag_err).autopower(
        method="fast",
        minimum_frequency=minimum,
        maximum_frequency=max(max_frequency, 2.0 * minimum),
        samples_per_peak=samples_per_peak,
        # Press & Rybicki extirpolation: the same peaks as astropy's default low-rank NUFFT on these
        # curves at a quarter of the cost.
        method_kwds={"algorithm": "fasper"},
    )
    if not np.isfinite(power).any():
        return float("nan"), float("nan")
    best = int(np.nanargmax(power))
    return float(1.0 / frequency[best]), float(power[best])


def _peaks(names: list[str], batch: list[tuple[np.ndarray, np.ndarray, np.ndarray]], max_frequency: float,
           samples_per_peak: int) -> np.ndarray:
    """(len(batch), 2) log10 period and power of each curve; runs in a worker process."""
    out = np.empty((len(batch), 2))
    for row, (name, (time, mag, mag_err)) in enumerate(zip(names, batch, strict=True)):
        try:
            period, power = _lomb_scargle_peak(time, mag, mag_err, max_frequency, samples_per_peak)
        except (ValueError, FloatingPointError) as error:
            raise ValueError(f"light curve {name}: Lomb-Scargle periodogram failed: {error}") from error
        out[row] = np.log10(period), power
    return out


def _check_curves(curves: LightCurveArrays) -> None:
    """Raise a ``ValueError`` naming the first empty curve, or the first curve and field with a non-finite
    value, a non-positive uncertainty (the periodogram weights) or times out of order."""
    lengths = curves.lengths
    if (lengths == 0).any():
        raise ValueError(f"light curve {curves.describe(int(np.flatnonzero(lengths == 0)[0]))} is empty")
    segments = curves.segments()
    problems = [("time", ~np.isfinite(curves.time), "a non-finite value"),
                ("mag", ~np.isfinite(curves.mag), "a non-finite value"),
                ("mag_err", ~(np.isfinite(curves.mag_err) & (curves.mag_err > 0)),
                 "a non-positive or non-finite value")]
    backwards = np.zeros(len(curves.time), dtype=bool)
    backwards[1:] = (np.diff(curves.time) < 0) & (segments[1:] == segments[:-1])
    problems.append(("time", backwards, "times out of order"))
    for field, bad, what in problems:
        if bad.any():
            point = int(np.flatnonzero(bad)[0])
            curve = int(segments[point])
            raise ValueError(f"light curve {curves.describe(curve)}: field '{field}' has {what} at point "
                             f"{point - curves.offsets[curve]}; clean the data first "
                             "(astroco_hf.data.clean_lightcurves)")


def handcrafted_features(
    curves: LightCurveArrays,
    *,
    max_frequency: float = DEFAULT_MAX_FREQUENCY,
    samples_per_peak: int = DEFAULT_SAMPLES_PER_PEAK,
    n_jobs: int = -1,
    progress: bool = False,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """The seven :data:`HANDCRAFTED_FEATURE_NAMES` of every curve, shape (curves, 7), float64 (NaN period
    and power for curves too short for a periodogram).

    The same function and numbers as before the ``light-curve`` features arrived (it briefly returned
    those 50 columns as a deprecated alias; use :func:`light_curve_features` for them).

    Args:
        curves: cleaned light curves as flat arrays (times sorted, finite values, positive errors; see
            :func:`~astroco_hf.evaluation.inputs.as_arrays`).
        max_frequency: highest trial frequency in 1/day.
        samples_per_peak: grid oversampling relative to the peak width 1/baseline.
        n_jobs: processes for the periodograms (-1: one per CPU; 1: in this process).
        progress: show a progress bar over curves.
        cache_dir: reuse features saved there for the same curves and settings.
    """
    cache = None
    if cache_dir is not None:
        # The file name of the original implementation: features it cached are reused (same calls, same numbers).
        key = _cache_key(curves, HANDCRAFTED_FEATURE_NAMES, max_frequency, samples_per_peak, "fasper")
        cache = Path(cache_dir) / f"features-{key}.npy"
        if cache.exists():
            return np.load(cache)
    if n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be -1 (one process per CPU) or a positive number of processes, got {n_jobs}")
    _check_curves(curves)
    time, mag, err = curves.time.astype(np.float64), curves.mag.astype(np.float64), curves.mag_err.astype(np.float64)
    starts, stops = curves.offsets[:-1], curves.offsets[1:]
    # Chunks of similar total cost: curves dealt round-robin in order of baseline (the FFT length).
    workers = min((os.cpu_count() or 1) if n_jobs == -1 else n_jobs, len(curves))
    order = np.argsort(time[starts] - time[stops - 1], kind="stable")
    chunks = [order[i::4 * workers] for i in range(min(4 * workers, len(curves)))]
    tasks = [([curves.describe(int(i)) for i in rows],
              [(time[starts[i]:stops[i]], mag[starts[i]:stops[i]], err[starts[i]:stops[i]]) for i in rows],
              max_frequency, samples_per_peak) for rows in chunks]
    periodogram = np.empty((len(curves), 2))
    with (ProcessPoolExecutor(workers) if workers > 1 else nullcontext()) as pool, \
            tqdm(total=len(curves), desc="Lomb-Scargle", unit="curve", disable=not progress) as bar:
        for rows, result in zip(chunks, (pool.map if pool else map)(_peaks, *zip(*tasks, strict=True)), strict=True):
            periodogram[rows] = result
            bar.update(len(rows))
    features = np.concatenate([_moments(curves), periodogram], axis=1)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, features)
    return features
