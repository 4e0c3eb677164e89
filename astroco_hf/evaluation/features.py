"""Light-curve features from the ``light-curve`` package: the classical reference for the embeddings.

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
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import light_curve as lc
import numpy as np

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


def _cache_key(curves: LightCurveArrays, max_frequency: float, samples_per_peak: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for array in (curves.offsets.astype(np.int64), curves.time, curves.mag, curves.mag_err):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(repr((FEATURE_NAMES, max_frequency, samples_per_peak, lc.__version__)).encode())
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
        cache = Path(cache_dir) / f"lc-features-{_cache_key(curves, max_frequency, samples_per_peak)}.npy"
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
            for i, curve in zip(rows, batch):
                try:
                    feature_extractor(grid)(*curve, sorted=None, fill_value=np.nan)
                except ValueError as own:
                    raise ValueError(f"light curve {curves.describe(int(i))}: {own}") from error
            raise
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, features)
    return features


def handcrafted_features(curves: LightCurveArrays, **kwargs) -> np.ndarray:
    """Deprecated name of :func:`light_curve_features` (the seven astropy features it computed are gone)."""
    warnings.warn("handcrafted_features is deprecated: use light_curve_features (the light-curve package's "
                  "features)", DeprecationWarning, stacklevel=2)
    return light_curve_features(curves, **kwargs)
