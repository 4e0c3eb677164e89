"""Windows: sequential windows cover every point once with zero-mean normalisation and restorable
offsets; random crops are contiguous, fresh at every access and seeded."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA
from datasets import Dataset

from astroco_hf.data import (
    clean_lightcurves,
    random_windows,
    read_source,
    sequential_windows,
    to_dataset,
    window_bounds,
)


@pytest.fixture(scope="module")
def curves() -> Dataset:
    """Real light curves of three surveys with different lengths (~6 to ~1000 points)."""
    paths = [SHARED_DATA / "lightcurves" / name for name in ("crts.parquet", "ps1_rrlyrae.parquet", "misc.parquet")]
    if not all(path.is_file() for path in paths):
        pytest.skip("shared light curves not found")
    tables = [read_source(path) for path in paths]
    import pyarrow as pa

    table, _ = clean_lightcurves(pa.concat_tables(tables))
    return to_dataset(table)


@pytest.mark.parametrize("window,min_tail", [(200, 50), (7, 3), (1, 0), (200, 0)])
def test_window_bounds_cover_each_point_exactly_once(window: int, min_tail: int) -> None:
    lengths = np.array([0, 1, 5, 199, 200, 201, 230, 249, 250, 400, 401, 1000, 1030])
    curve, index, start, stop = window_bounds(lengths, window, min_tail)
    for c, n in enumerate(lengths):
        mine = curve == c
        covered = np.concatenate(
            [np.arange(a, b) for a, b in zip(start[mine], stop[mine], strict=True)] or [np.empty(0, int)]
        )
        np.testing.assert_array_equal(covered, np.arange(n))  # in order, no gap, no duplicate
        assert (index[mine] == np.arange(mine.sum())).all()
        sizes = stop[mine] - start[mine]
        assert (sizes <= window).all() and (sizes >= 1).all()
        if mine.sum() >= 2:
            assert sizes.min() >= min(min_tail, window)  # no sliver at the tail


def test_window_bounds_tail_rules() -> None:
    _, _, start, stop = window_bounds(np.array([230]), 200, 50)  # tail 30 < 50: two halves of 115
    assert (stop - start).tolist() == [115, 115]
    _, _, start, stop = window_bounds(np.array([460]), 200, 50)  # tail 60 >= 50: kept as a short window
    assert (stop - start).tolist() == [200, 200, 60]
    _, _, start, stop = window_bounds(np.array([421]), 200, 50)  # tail 21: last full window shares it
    assert (stop - start).tolist() == [200, 111, 110]


def test_sequential_windows_on_real_data(curves: Dataset) -> None:
    windows = sequential_windows(curves, 200)
    assert len(windows) > len(curves)
    columns = windows.with_format("numpy", columns=["curve_index", "start"])[:]
    per_curve = np.bincount(columns["curve_index"], minlength=len(curves))
    assert (per_curve >= 1).all()
    # Every point of every curve exactly once, and values restored from the offsets.
    for row in range(0, len(curves), max(1, len(curves) // 60)):
        curve = curves[row]
        mine = windows.select(np.flatnonzero(columns["curve_index"] == row))
        t = np.concatenate([np.asarray(w["times"], np.float64) + w["t0"] for w in mine])
        m = np.concatenate([np.asarray(w["magnitudes"], np.float64) + w["m0"] for w in mine])
        e = np.concatenate([np.asarray(w["uncertainties"]) for w in mine])
        assert len(t) == curve["n_obs"]
        np.testing.assert_allclose(t, curve["time"], rtol=0, atol=1e-3)  # float32 times of ~|300| d: < 1e-4 d
        np.testing.assert_allclose(m, curve["mag"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(e, np.asarray(curve["mag_err"], np.float32))
    # Window means of time and magnitude are zero (relative to the window's scale).
    flat = windows.with_format("numpy", columns=["times", "magnitudes"])[:2000]
    for times, mags in zip(flat["times"], flat["magnitudes"], strict=True):
        assert abs(np.mean(times, dtype=np.float64)) <= 1e-6 * max(1.0, np.abs(times).max())
        assert abs(np.mean(mags, dtype=np.float64)) <= 1e-6 * max(1.0, np.abs(mags).max())


def test_sequential_window_masks_are_named_by_the_window(curves: Dataset) -> None:
    forward = sequential_windows(curves.select(range(50)), 200)
    backward = sequential_windows(curves.select(range(49, -1, -1)), 200)

    def seeds(windows: Dataset) -> dict[tuple, int]:
        names = zip(windows["object_id"], windows["band"], windows["start"], strict=True)
        return dict(zip(names, windows["mask_seed"], strict=True))

    assert seeds(forward) == seeds(backward)
    assert len(set(forward["mask_seed"])) == len(forward)


def test_random_windows_are_contiguous_fresh_and_seeded(curves: Dataset) -> None:
    train = random_windows(curves, 200, seed=3)
    rows = list(range(0, len(curves), 97))
    first = train.__getitems__(rows)
    for example in first:
        source = curves[example["curve_index"]]
        n = len(source["time"])
        assert len(example["times"]) == min(n, 200) and 0 <= example["start"] <= max(n - 200, 0)
        span = slice(example["start"], example["start"] + len(example["times"]))
        np.testing.assert_allclose(
            np.asarray(example["times"], np.float64) + example["t0"], source["time"][span], atol=1e-3
        )
        assert abs(np.mean(example["magnitudes"], dtype=np.float64)) < 1e-5
    second = train.__getitems__(rows)
    long = [i for i, e in enumerate(first) if len(curves[e["curve_index"]]["time"]) > 250]
    assert long and any(first[i]["start"] != second[i]["start"] for i in long)  # a new crop at every access
    again = random_windows(curves, 200, seed=3).__getitems__(rows)
    assert [e["start"] for e in again] == [e["start"] for e in first]  # same seed, same sequence
    assert train.shuffle(seed=0)[0]["curve_index"] in range(len(curves))
