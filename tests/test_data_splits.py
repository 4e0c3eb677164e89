"""The one object split (exact counts, bands together, stable, shared by prepare and pretraining)
and the few-shot protocol on real labelled light curves (CRTS)."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from astroco_hf.data import (
    clean_lightcurves,
    few_shot_splits,
    lightcurves_from_arrays,
    read_source,
    split_by_object,
    to_dataset,
)
from astroco_hf.training.data import split_objects


@pytest.fixture(scope="module")
def labelled(shared_data) -> Dataset:
    """CRTS periodic variables: EC 2,129, RRab 994, RRc 994, LPV 256, other 1,384 objects."""
    table, _ = clean_lightcurves(read_source(shared_data / "lightcurves" / "crts.parquet"))
    return to_dataset(table)


def stars(n: int, first: int = 0) -> Dataset:
    """``n`` stars observed in two bands (R and B), named ``star<i>``."""
    t = np.arange(10.0)
    ids = [f"star{i}" for i in range(first, first + n) for _ in "RB"]
    table, _ = clean_lightcurves(lightcurves_from_arrays([(t, t, np.full(10, 0.1))] * 2 * n, object_ids=ids, band=["R", "B"] * n))
    return to_dataset(table)


def _objects(dataset: Dataset) -> set[tuple[str, str]]:
    return set(zip(dataset["survey"], dataset["object_id"], strict=True))


def test_split_by_object_keeps_bands_together_and_ignores_row_order() -> None:
    splits = split_by_object(stars(100), validation_fraction=0.2, test_fraction=0.2, seed=1)
    seen = [_objects(split) for split in splits.values()]
    assert [len(s) for s in seen] == [60, 20, 20]  # exact counts
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    for split in splits.values():
        assert sorted(split["band"]).count("R") == sorted(split["band"]).count("B")
    again = split_by_object(stars(100).shuffle(seed=5), validation_fraction=0.2, test_fraction=0.2, seed=1)
    assert [_objects(s) for s in again.values()] == seen


@pytest.mark.parametrize("n,expected", [(3, (1, 1, 1)), (10, (8, 1, 1)), (15, (11, 2, 2)), (41, (33, 4, 4))])
def test_every_split_gets_objects(n: int, expected: tuple[int, int, int]) -> None:
    splits = split_by_object(stars(n))  # default fractions 0.1 / 0.1
    assert list(splits) == ["train", "validation", "test"]
    assert tuple(len(_objects(split)) for split in splits.values()) == expected


def test_too_few_objects_and_zero_fractions() -> None:
    with pytest.raises(ValueError, match=r"2 object\(s\) cannot make 1 test \+ 1 validation"):
        split_by_object(stars(2))
    assert list(split_by_object(stars(2), validation_fraction=0, test_fraction=0)) == ["train"]
    assert list(split_by_object(stars(5), validation_fraction=0)) == ["train", "test"]
    with pytest.raises(ValueError, match="fractions must be > 0"):
        split_objects(stars(5), validation_fraction=0, test_fraction=0.2, seed=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objects_keep_their_split_when_objects_are_added(seed: int) -> None:
    before = split_by_object(stars(200), seed=seed)
    after = split_by_object(stars(220), seed=seed)  # 10% more objects: only boundary objects may move
    unchanged = sum(len(_objects(before[name]) & _objects(after[name])) for name in before)
    assert unchanged >= 0.95 * 200
    assert len(_objects(before["test"]) & _objects(after["test"])) >= 15  # of 20


def test_pretraining_uses_the_same_split() -> None:
    data = stars(30)
    ours = split_by_object(data, validation_fraction=0.1, test_fraction=0.2, seed=4)
    theirs = split_objects(data, validation_fraction=0.1, test_fraction=0.2, seed=4)
    assert [_objects(s) for s in ours.values()] == [_objects(s) for s in theirs.values()]


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
