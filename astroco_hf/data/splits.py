"""Object-level splits: never by window or band, both bands of a star stay on the same side.

An object is a ``(survey, object_id)`` pair. Assignments are drawn from stable hashes of the object
key and the seed, so they do not depend on row order, and objects keep their split when data are
added.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict

from ._random import stable_seed, uniforms


def object_keys(dataset: Dataset) -> tuple[np.ndarray, list[str]]:
    """Object of each row: ``(codes (rows,), keys)`` with ``keys[codes[i]] = "survey/object_id"``."""
    table = dataset.select_columns(["survey", "object_id"]).to_pandas()
    codes, uniques = pd.factorize(table["survey"] + "/" + table["object_id"])
    return codes, list(uniques)


def _object_uniforms(keys: list[str], seed: int) -> np.ndarray:
    hashed = np.fromiter((stable_seed(seed, key) for key in keys), np.uint64, len(keys))
    return uniforms(hashed, 0, stream=0)


def split_by_object(
    dataset: Dataset, *, validation_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> DatasetDict:
    """Train / validation / test splits of whole objects.

    Each object lands in test with probability ``test_fraction`` and in validation with
    ``validation_fraction`` (independent per object, so split sizes are close to, not exactly,
    the fractions). A split that receives no object is left out (``datasets`` cannot reload an
    empty split saved to disk), which happens only for datasets of a handful of objects.
    """
    if not (0 <= validation_fraction and 0 <= test_fraction and validation_fraction + test_fraction < 1):
        raise ValueError(f"need fractions >= 0 summing below 1, got {validation_fraction} and {test_fraction}")
    codes, keys = object_keys(dataset)
    draw = _object_uniforms(keys, seed)[codes]
    split = np.where(draw < test_fraction, 2, np.where(draw < test_fraction + validation_fraction, 1, 0))
    rows = {name: np.flatnonzero(split == i) for i, name in enumerate(("train", "validation", "test"))}
    return DatasetDict({name: dataset.select(indices) for name, indices in rows.items() if indices.size})


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
