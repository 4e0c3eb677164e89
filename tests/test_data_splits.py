"""Object-level splits and the few-shot protocol on real labelled light curves (CRTS)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA
from datasets import Dataset

from astroco_hf.data import (
    clean_lightcurves,
    few_shot_splits,
    lightcurves_from_arrays,
    read_source,
    split_by_object,
    to_dataset,
)


@pytest.fixture(scope="module")
def labelled() -> Dataset:
    """CRTS periodic variables: EC 2,129, RRab 994, RRc 994, LPV 256, other 1,384 objects."""
    path = SHARED_DATA / "lightcurves" / "crts.parquet"
    if not path.is_file():
        pytest.skip("shared light curves not found")
    table, _ = clean_lightcurves(read_source(path))
    return to_dataset(table)


def _objects(dataset: Dataset) -> set[tuple[str, str]]:
    return set(zip(dataset["survey"], dataset["object_id"], strict=True))


def test_split_by_object_keeps_bands_together() -> None:
    t = np.arange(10.0)
    curves = [(t, t, np.full(10, 0.1))] * 200
    ids = [f"star{i // 2}" for i in range(200)]  # two bands per star
    table, _ = clean_lightcurves(lightcurves_from_arrays(curves, object_ids=ids, band=["R", "B"] * 100))
    splits = split_by_object(to_dataset(table), validation_fraction=0.2, test_fraction=0.2, seed=1)
    seen = [_objects(split) for split in splits.values()]
    assert sum(len(s) for s in seen) == 100 and not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    for split in splits.values():
        assert sorted(split["band"]).count("R") == sorted(split["band"]).count("B")
    again = split_by_object(to_dataset(table).shuffle(seed=5), validation_fraction=0.2, test_fraction=0.2, seed=1)
    assert [_objects(s) for s in again.values()] == seen  # independent of row order


@pytest.mark.parametrize("n_per_class", [20, 100])
def test_few_shot_splits_are_disjoint_stratified_reproducible(labelled: Dataset, n_per_class: int) -> None:
    result = few_shot_splits(labelled, n_per_class, seed=0)
    names = labelled.features["label"].names
    n_val = result.n_validation_per_class
    assert len(result.folds) == 3 and n_val == max(5, round(0.1 * n_per_class))
    for fold in result.folds:
        parts = {name: _objects(fold[name]) for name in ("train", "validation", "test")}
        assert not (
            parts["train"] & parts["validation"]
            or parts["train"] & parts["test"]
            or parts["validation"] & parts["test"]
        )
        for name, per_class in (("train", n_per_class), ("validation", n_val), ("test", 100)):
            counts = np.bincount(fold[name]["label"], minlength=len(names))
            assert (counts == per_class).all(), (name, counts)  # stratified: exactly N per class
    assert result.folds[0]["test"]["object_id"] == result.folds[2]["test"]["object_id"]  # one fixed test set
    assert _objects(result.folds[0]["train"]) != _objects(result.folds[1]["train"])  # folds differ
    again = few_shot_splits(labelled, n_per_class, seed=0)
    assert [f["train"]["object_id"] for f in again.folds] == [f["train"]["object_id"] for f in result.folds]
    other = few_shot_splits(labelled, n_per_class, seed=1)
    assert _objects(other.folds[0]["train"]) != _objects(result.folds[0]["train"])


def test_few_shot_small_classes_are_reported_never_shrunk(labelled: Dataset) -> None:
    with pytest.raises(ValueError, match=r"too small: \{'LPV': 256\}"):
        few_shot_splits(labelled, 500)
    result = few_shot_splits(labelled, 500, on_small_class="skip")
    assert result.skipped_classes == {"LPV": 256}
    train = result.folds[0]["train"]
    lpv = labelled.features["label"].str2int("LPV")
    assert lpv not in set(train["label"]) and len(train) == 500 * 4
    assert "SKIPPED" in result.report()
