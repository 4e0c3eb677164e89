"""Labelled light-curve sets for the few-shot protocol: ready benchmarks and any labelled source.

A labelled set has one light curve per object (one band), cleaned by
:func:`astroco_hf.data.clean_lightcurves` with every removal counted. The ready benchmarks read the
light-curve parquet files of a data root (``--data-root`` / ``data_root=``, or ``$ASTROCO_DATA_ROOT``;
the project's real data live in ``../shared/data/lightcurves/``, see its README):

``crts``           CRTS periodic variables (Drake et al. 2014 subset), Catalina V: RRab / RRc / EC / LPV
``ogle-cepheids``  OGLE-III + OGLE-IV LMC classical Cepheids, I band: Cep_0 vs Cep_1
``eros1``          EROS-1 LMC (RAMP kit), R band: rr_lyrae / cepheid / binary / mira

Where an object has several curves in the chosen band (OGLE-III and OGLE-IV observed most LMC
Cepheids), the longest cleaned one is kept; objects whose curves disagree on the label are dropped.
Both are counted in :attr:`LabelledLightCurves.selection`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data import CleaningConfig, CleaningReport, ColumnMap, clean_lightcurves, read_source
from ..data import data_root as _data_root
from .inputs import DEFAULT_COLUMNS, LightCurveArrays


@dataclass(frozen=True)
class Benchmark:
    """A ready few-shot benchmark on the shared light curves."""

    name: str
    files: tuple[str, ...]
    classes: tuple[str, ...]
    band: str
    surveys: tuple[str, ...]
    description: str
    n_test_per_class: int  # test objects per class: as many as the smallest class allows for N=100


BENCHMARKS: dict[str, Benchmark] = {
    "crts": Benchmark(
        "crts", ("crts.parquet",), ("RRab", "RRc", "EC", "LPV"), "CSS_V", ("CRTS",),
        "CRTS periodic variables (Drake et al. 2014 subset), Catalina V band", 100,
    ),
    "ogle-cepheids": Benchmark(
        "ogle-cepheids", ("ogle_lmc_cepheids.parquet",), ("Cep_0", "Cep_1"), "I", ("OGLE-III", "OGLE-IV"),
        "OGLE-III/IV LMC classical Cepheids, fundamental mode vs first overtone, I band", 100,
    ),
    # 192 Miras: N=100 leaves room for 10 validation + 50 test objects per class.
    "eros1": Benchmark(
        "eros1", ("eros.parquet",), ("rr_lyrae", "cepheid", "binary", "mira"), "R", ("EROS-1",),
        "EROS-1 LMC variable stars (RAMP variable-stars kit), R band", 50,
    ),
}


@dataclass
class LabelledLightCurves:
    """Clean labelled light curves, one per object.

    Attributes:
        name: benchmark name, or ``"custom"``.
        table: the curves, :data:`astroco_hf.data.CLEAN_SCHEMA` (``label`` as class names).
        labels: (N,) int64 index into ``class_names``.
        class_names: the classes, in label-index order.
        sources: files read. band: the band kept (None: all).
        cleaning: the cleaning report of the selected rows.
        selection: rows dropped before and after cleaning, by reason.
    """

    name: str
    table: pa.Table
    labels: np.ndarray
    class_names: list[str]
    sources: list[str]
    band: str | None
    cleaning: CleaningReport
    selection: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def object_ids(self) -> list[str]:
        return self.table["object_id"].to_pylist()

    def arrays(self) -> LightCurveArrays:
        """The curves as flat arrays (for the embedder and the hand-crafted features)."""
        return LightCurveArrays.from_table(self.table)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def subset(self, rows: np.ndarray) -> LabelledLightCurves:
        """The same set restricted to ``rows`` (e.g. for quick tests)."""
        rows = np.asarray(rows, dtype=np.int64)
        return LabelledLightCurves(self.name, self.table.take(rows), self.labels[rows], self.class_names,
                                   self.sources, self.band, self.cleaning, dict(self.selection))


def default_data_root() -> Path:
    """``$ASTROCO_DATA_ROOT`` (:func:`astroco_hf.data.data_root`); a clear error when it is not set."""
    return _data_root()


def load_benchmark(name: str, data_root: str | Path | None = None,
                   cleaning: CleaningConfig | None = None) -> LabelledLightCurves:
    """A ready benchmark (:data:`BENCHMARKS`) from the folder ``data_root`` (default ``$ASTROCO_DATA_ROOT``)."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}")
    spec = BENCHMARKS[name]
    root = _data_root(data_root)
    return load_labelled([root / f for f in spec.files], classes=spec.classes, band=spec.band,
                         surveys=spec.surveys, cleaning=cleaning, name=name)


def load_labelled(
    sources: str | Path | Sequence[str | Path],
    *,
    classes: Sequence[str] | None = None,
    band: str | None = None,
    surveys: Sequence[str] | None = None,
    columns: ColumnMap = DEFAULT_COLUMNS,
    cleaning: CleaningConfig | None = None,
    name: str = "custom",
) -> LabelledLightCurves:
    """Read, select, clean and de-duplicate a labelled light-curve source.

    Args:
        sources: files or folders :func:`astroco_hf.data.read_source` understands.
        classes: the classes to keep, in label-index order (default: every label present, sorted).
        band: keep only this band (recommended: the protocol uses one curve per object).
        surveys: keep only these surveys.
        columns: column names of generic CSV/parquet files.
        cleaning: cleaning rules (default ``CleaningConfig()``).

    Raises:
        ValueError: a requested class, band or survey absent from the data (listing what exists), or no
            labelled curve left.
    """
    paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
    raw = pa.concat_tables([read_source(path, columns=columns) for path in paths])
    selection: dict[str, int] = {"rows_read": raw.num_rows}

    def keep(mask: np.ndarray, reason: str) -> None:
        nonlocal raw
        selection[reason] = int((~mask).sum())
        raw = raw.filter(pa.array(mask))

    def present(column: str) -> list[str]:
        return sorted(v for v in pc.unique(raw[column]).to_pylist() if v is not None)

    for column, wanted in (("survey", surveys), ("band", [band] if band is not None else None)):
        if wanted is not None:
            missing = sorted(set(wanted) - set(present(column)))
            if missing:
                raise ValueError(f"{column} {missing} not found in {[str(p) for p in paths]}; present: {present(column)}")
            keep(np.isin(np.asarray(raw[column].to_pylist(), dtype=object), list(wanted)), f"{column}_not_selected")
    labels = np.asarray(raw["label"].to_pylist(), dtype=object)
    keep(labels != None, "unlabelled")  # noqa: E711 (element-wise comparison with None)
    available = present("label")
    if classes is None:
        classes = available
    unknown = sorted(set(classes) - set(available))
    if unknown:
        raise ValueError(f"unknown label(s) {unknown}: not in {[str(p) for p in paths]}; labels present: {available}")
    keep(np.isin(np.asarray(raw["label"].to_pylist(), dtype=object), list(classes)), "class_not_selected")

    table, report = clean_lightcurves(raw, cleaning or CleaningConfig())
    if table.num_rows == 0:
        raise ValueError(f"no labelled light curve left in {[str(p) for p in paths]} after selection and cleaning")
    table, dedup = _one_curve_per_object(table)
    selection |= dedup
    codes = pc.index_in(table["label"], value_set=pa.array(list(classes), pa.string())).to_numpy().astype(np.int64)
    return LabelledLightCurves(name, table, codes, list(classes), [str(p) for p in paths], band, report, selection)


def _one_curve_per_object(table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """Keep the longest curve of each object_id (first on ties); drop objects with conflicting labels.

    Returns the table (first-appearance order of objects) and the counts of dropped rows."""
    ids = np.asarray(table["object_id"].to_pylist(), dtype=object)
    labels = np.asarray(table["label"].to_pylist(), dtype=object)
    n_obs = table["n_obs"].to_numpy()
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    label_codes = np.unique(labels, return_inverse=True)[1]
    groups = len(first)
    lowest = np.full(groups, np.iinfo(np.int64).max)
    highest = np.full(groups, -1)
    np.minimum.at(lowest, inverse, label_codes)
    np.maximum.at(highest, inverse, label_codes)
    conflicting = lowest != highest
    # Longest row per object: sort by (object, -n_obs, row) and take each object's first row.
    order = np.lexsort((np.arange(len(ids)), -n_obs, inverse))
    best = order[np.concatenate([[True], inverse[order][1:] != inverse[order][:-1]])]
    best = best[~conflicting[inverse[best]]]
    best = best[np.argsort(first[inverse[best]], kind="stable")]  # first-appearance order
    counts = np.bincount(inverse, minlength=groups)
    dropped = {
        "conflicting_label_objects": int(conflicting.sum()),
        "conflicting_label_rows": int(counts[conflicting].sum()),
        "extra_rows_same_object": int((counts[~conflicting] - 1).sum()),
    }
    return table.take(pa.array(best)), dropped
