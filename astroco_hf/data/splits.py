"""Object-level splits: never by window or band, both bands of a star stay on the same side.

An object is a ``(survey, object_id)`` pair. :func:`split_by_object` is the one train / validation /
test rule of the package (``astroco prepare`` and pretraining both use it): objects are ranked by a
seeded hash of their key, so the split does not depend on row order, and an object keeps its rank
when data are added (only the objects at the split boundaries can move as the counts grow).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict

from ._random import stable_seed, uniforms

SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")


def object_keys(dataset: Dataset) -> tuple[np.ndarray, list[str]]:
    """Object of each row: ``(codes (rows,), keys)`` with ``keys[codes[i]] = "survey/object_id"``."""
    table = dataset.select_columns(["survey", "object_id"]).to_pandas()
    codes, uniques = pd.factorize(table["survey"] + "/" + table["object_id"])
    return codes, list(uniques)


def _object_uniforms(keys: list[str], seed: int) -> np.ndarray:
    hashed = np.fromiter((stable_seed(seed, key) for key in keys), np.uint64, len(keys))
    return uniforms(hashed, 0, stream=0)


def _split_count(fraction: float, n: int) -> int:
    """Objects in a held-out split: ``round(fraction * n)``, at least one when ``fraction > 0``."""
    return max(1, round(fraction * n)) if fraction > 0 else 0


def split_by_object(
    dataset: Dataset, *, validation_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> DatasetDict:
    """Train / validation / test splits of whole objects, with exact counts.

    Objects are ordered by a seeded hash of ``survey/object_id``; the first ``round(test_fraction *
    n)`` go to test and the next ``round(validation_fraction * n)`` to validation, each at least one
    object when its fraction is positive, so 3 objects already give three non-empty splits (a 15-star
    sample gets 2 test, 2 validation and 11 training stars). A split of fraction 0 is left out
    (``datasets`` cannot reload an empty split saved to disk).

    Raises:
        ValueError: fractions outside ``[0, 1)`` or summing to 1 or more, or too few objects to give
            every requested split one object and keep one for training (the message says how many).
    """
    if not (0 <= validation_fraction and 0 <= test_fraction and validation_fraction + test_fraction < 1):
        raise ValueError(f"need fractions >= 0 summing below 1, got {validation_fraction} and {test_fraction}")
    codes, keys = object_keys(dataset)
    n = len(keys)
    n_test, n_validation = _split_count(test_fraction, n), _split_count(validation_fraction, n)
    if n_test + n_validation >= n:
        raise ValueError(
            f"{n} object(s) cannot make {n_test} test + {n_validation} validation object(s) and keep one for training; "
            "add objects or set the validation/test fractions to 0"
        )
    order = np.argsort(_object_uniforms(keys, seed), kind="stable")
    split_of_object = np.zeros(n, dtype=np.int64)
    split_of_object[order[:n_test]] = 2
    split_of_object[order[n_test : n_test + n_validation]] = 1
    split = split_of_object[codes]
    counts = (n - n_test - n_validation, n_validation, n_test)
    return DatasetDict(
        {name: dataset.select(np.flatnonzero(split == i)) for i, name in enumerate(SPLIT_NAMES) if counts[i]}
    )


@dataclass
class FewShotSplits:
    """The few-shot protocol for one ``n_per_class``: ``folds[k]`` is a DatasetDict with
    ``train`` (``n_per_class`` objects per class), ``validation`` and ``test``."""

    n_per_class: int
    n_validation_per_class: int
    n_test_per_class: int
    folds: list[DatasetDict]
    class_counts: dict[str, int]  # labelled objects available per class
    skipped_classes: dict[str, int] = field(default_factory=dict)  # too small for the protocol

    def report(self) -> str:
        needed = self.n_per_class + self.n_validation_per_class + self.n_test_per_class
        lines = [
            f"few-shot N={self.n_per_class}: per class {self.n_per_class} train + {self.n_validation_per_class} "
            f"validation + {self.n_test_per_class} test = {needed} objects, {len(self.folds)} folds"
        ]
        for name, count in self.class_counts.items():
            status = "SKIPPED (too few objects)" if name in self.skipped_classes else "ok"
            lines.append(f"  {name:>12}: {count:6d} available  {status}")
        return "\n".join(lines)


def few_shot_splits(
    dataset: Dataset,
    n_per_class: int,
    *,
    n_validation_per_class: int | None = None,
    n_test_per_class: int = 100,
    folds: int = 3,
    seed: int = 0,
    on_small_class: str = "raise",
) -> FewShotSplits:
    """The paper's few-shot protocol (section 4): per class ``n_per_class`` training objects and
    disjoint validation and test objects, stratified, ``folds`` independent folds.

    The test set (``n_test_per_class`` objects per class) is drawn once per seed and shared by all
    folds, so folds differ only in training data; each fold then draws ``n_per_class`` training and
    ``n_validation_per_class`` (default ``max(5, round(0.1 * n_per_class))``) validation objects
    from the rest. Objects are ``(survey, object_id)``: all bands of a star go to the same split;
    unlabelled rows (``label == -1``) are ignored.

    Args:
        on_small_class: a class with fewer objects than the protocol needs raises a ``ValueError``
            listing every such class (``"raise"``), or is left out and listed in
            ``skipped_classes`` (``"skip"``); it is never silently shrunk.

    Raises:
        ValueError: classes too small (with ``"raise"``), or an object with different labels in
            different bands.
    """
    if on_small_class not in ("raise", "skip"):
        raise ValueError(f"on_small_class must be 'raise' or 'skip', got {on_small_class!r}")
    n_val = max(5, round(0.1 * n_per_class)) if n_validation_per_class is None else n_validation_per_class
    needed = n_per_class + n_val + n_test_per_class
    names = dataset.features["label"].names
    labels = dataset.select_columns(["label"]).to_pandas()["label"].to_numpy()
    codes, keys = object_keys(dataset)
    labelled = labels >= 0
    per_object = pd.DataFrame({"object": codes[labelled], "label": labels[labelled]}).drop_duplicates()
    conflicting = per_object["object"].duplicated(keep=False)
    if conflicting.any():
        key = keys[int(per_object.loc[conflicting, "object"].iloc[0])]
        raise ValueError(f"object {key!r} has different labels in different bands")
    object_label = per_object.set_index("object")["label"]
    class_counts = {names[c]: int((object_label == c).sum()) for c in range(len(names))}
    small = {name: count for name, count in class_counts.items() if count < needed}
    if small and on_small_class == "raise":
        raise ValueError(
            f"few-shot N={n_per_class} needs {needed} objects per class ({n_per_class} train + {n_val} validation + "
            f"{n_test_per_class} test); too small: {small}. Lower the sizes or pass on_small_class='skip'."
        )

    # Order objects within a class by a seeded hash: independent of row order and of other classes.
    draw = pd.Series(_object_uniforms(keys, seed)[object_label.index], index=object_label.index)
    test, train_pool = [], []
    for c, name in enumerate(names):
        if name in small:
            continue
        ranked = draw[object_label == c].sort_values().index.to_numpy()
        test.append(ranked[:n_test_per_class])
        train_pool.append(ranked[n_test_per_class:])
    test_objects = np.concatenate(test) if test else np.empty(0, np.int64)

    def rows_of(objects: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(codes, objects))

    result = []
    for fold in range(folds):
        train, validation = [], []
        for pool in train_pool:
            order = pool[np.argsort(_object_uniforms([keys[o] for o in pool], stable_seed(seed, "fold", fold)))]
            train.append(order[:n_per_class])
            validation.append(order[n_per_class : n_per_class + n_val])
        parts = {
            "train": np.concatenate(train) if train else test_objects[:0],
            "validation": np.concatenate(validation) if validation else test_objects[:0],
            "test": test_objects,
        }
        result.append(DatasetDict({name: dataset.select(rows_of(objects)) for name, objects in parts.items()}))
    return FewShotSplits(
        n_per_class, n_val, n_test_per_class, result, class_counts, small if on_small_class == "skip" else {}
    )
