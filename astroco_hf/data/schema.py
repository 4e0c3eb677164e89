"""The light-curve schema: one row per (object, band).

Readers produce a ``pyarrow.Table`` in :data:`RAW_SCHEMA` (labels still strings, nothing removed);
:func:`~astroco_hf.data.cleaning.clean_lightcurves` removes and counts dirt; :func:`to_dataset` turns
the clean table into a ``datasets.Dataset`` with :func:`lightcurve_features`.

Conventions:

* ``time`` is in days (MJD, HJD or a survey-relative zero point, as the source gives it), sorted,
  float64 (MJD ~5e4 needs more than float32's 7 digits); ``mag`` and ``mag_err`` are float32.
  ``datasets``' ``with_format("torch")`` casts every float column to float32 (a 0.002 d error at
  MJD 48,900); :func:`torch_format` keeps each column's own dtype.
* ``label`` is a ``ClassLabel``; an unknown label is stored as ``-1`` (the ``datasets`` convention for
  unlabelled rows; ``ClassLabel.int2str(-1)`` raises, so filter with ``label >= 0`` first).
* ``err_imputed`` is True where the source gave no uncertainties and ``mag_err`` was filled by the
  cleaning policy (see :class:`~astroco_hf.data.cleaning.CleaningConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetInfo, Features, List, Value
from datasets.table import InMemoryTable

# The six classes of the Alcock et al. MACHO LMC labelled set used by the paper (section 4).
ALCOCK_CLASSES: tuple[str, ...] = ("RRab", "RRc", "Cep_0", "Cep_1", "EC", "LPV")

SERIES_COLUMNS: tuple[str, ...] = ("time", "mag", "mag_err")

RAW_SCHEMA = pa.schema(
    [
        ("object_id", pa.string()),
        ("survey", pa.string()),
        ("band", pa.string()),
        ("label", pa.string()),
        ("source", pa.string()),
        ("orig_label", pa.string()),
        ("period", pa.float64()),
        ("time", pa.list_(pa.float64())),
        ("mag", pa.list_(pa.float32())),
        ("mag_err", pa.list_(pa.float32())),
    ]
)

# Added by cleaning.
CLEAN_SCHEMA = RAW_SCHEMA.append(pa.field("n_obs", pa.int32())).append(pa.field("err_imputed", pa.bool_()))


def lightcurve_features(class_names: Sequence[str]) -> Features:
    """``datasets`` features of a prepared light-curve dataset (column order of the stored files)."""
    return Features(
        {
            "object_id": Value("string"),
            "survey": Value("string"),
            "band": Value("string"),
            "label": ClassLabel(names=list(class_names)),
            "time": List(Value("float64")),
            "mag": List(Value("float32")),
            "mag_err": List(Value("float32")),
            "n_obs": Value("int32"),
            "err_imputed": Value("bool"),
            "source": Value("string"),
            "orig_label": Value("string"),
            "period": Value("float64"),
        }
    )


# What each column means, for dataset cards and docs.
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "object_id": "survey identifier of the star (MACHO: field.tile.seqn)",
    "survey": "survey name (MACHO, OGLE-III, ...)",
    "band": "photometric band (R, B, I, V, g, ...)",
    "label": "class (ClassLabel); -1 where unknown",
    "time": (
        "observation times in days, sorted, no duplicates; float64: load with `with_format('torch', dtype=None)` "
        "(`astroco_hf.data.torch_format`), as plain `with_format('torch')` casts to float32 (0.004 d steps at MJD 5e4)"
    ),
    "mag": "magnitudes",
    "mag_err": "1-sigma magnitude uncertainties (imputed where err_imputed)",
    "n_obs": "number of observations after cleaning",
    "err_imputed": "True where the source had no uncertainties and mag_err was filled by policy",
    "source": "where the row was collected from",
    "orig_label": "class as the source wrote it",
    "period": "catalogue period in days, where given",
}


@dataclass(frozen=True)
class ColumnMap:
    """Column names of a generic CSV/parquet source, and constants for columns it lacks.

    ``mag_err`` may be absent (the missing-error policy then applies); ``survey``/``band``/``label``
    columns may be absent (``default_survey``/``default_band``, unknown labels are used)."""

    object_id: str = "object_id"
    time: str = "time"
    mag: str = "mag"
    mag_err: str = "mag_err"
    survey: str = "survey"
    band: str = "band"
    label: str = "label"
    orig_label: str = "orig_label"
    period: str = "period"
    source: str = "source"
    default_survey: str = "unknown"
    default_band: str = "unknown"

    @classmethod
    def from_pairs(cls, pairs: Sequence[str]) -> ColumnMap:
        """Parse ``["time=mjd", "mag=m"]`` (the CLI's ``--column`` values)."""
        kwargs = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or key not in cls.__dataclass_fields__:
                raise ValueError(
                    f"bad column mapping {pair!r}: expected FIELD=NAME with FIELD in {list(cls.__dataclass_fields__)}"
                )
            kwargs[key] = value
        return cls(**kwargs)


DEFAULT_COLUMNS = ColumnMap()


def series_lengths(table: pa.Table) -> dict[str, np.ndarray]:
    """Per-row length of each of ``time``, ``mag``, ``mag_err`` (a null list counts as empty)."""
    return {
        name: pc.fill_null(pc.list_value_length(table[name]), 0).to_numpy().astype(np.int64) for name in SERIES_COLUMNS
    }


def validate_raw_table(table: pa.Table) -> np.ndarray:
    """Check that ``table`` follows :data:`RAW_SCHEMA` and that ``time``, ``mag`` and ``mag_err`` have
    equal lengths in every row. Returns the lengths, shape ``(rows,)``.

    Raises:
        ValueError: naming the missing column, or the light curve and the field whose length differs.
    """
    missing = [name for name in RAW_SCHEMA.names if name not in table.column_names]
    if missing:
        raise ValueError(f"light-curve table lacks column(s) {missing}; expected {RAW_SCHEMA.names}")
    if pc.any(pc.is_null(table["object_id"])).as_py():
        row = int(np.flatnonzero(pc.is_null(table["object_id"]).to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"row {row} has no object_id")
    lengths = series_lengths(table)
    for name in ("mag", "mag_err"):
        bad = np.flatnonzero(lengths[name] != lengths["time"])
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"light curve {describe_row(table, row)}: field '{name}' has {lengths[name][row]} values "
                f"but 'time' has {lengths['time'][row]} ({bad.size} row(s) affected)"
            )
    return lengths["time"]


def describe_row(table: pa.Table, row: int) -> str:
    """``'1.3441.15' (MACHO R)``: how errors name a light curve."""
    get = lambda name: table[name][row].as_py() if name in table.column_names else "?"  # noqa: E731
    return f"{get('object_id')!r} ({get('survey')} {get('band')})"


def to_dataset(table: pa.Table, class_names: Sequence[str] | None = None) -> Dataset:
    """A clean table (:data:`CLEAN_SCHEMA`) as a ``datasets.Dataset`` with :func:`lightcurve_features`.

    ``class_names`` fixes the ``ClassLabel`` order; by default the sorted distinct labels present.

    Raises:
        ValueError: if a label is not in ``class_names``.
    """
    labels = table["label"]
    present = sorted(v for v in pc.unique(labels).to_pylist() if v is not None)
    names = list(class_names) if class_names is not None else present
    unknown = sorted(set(present) - set(names))
    if unknown:
        raise ValueError(f"labels {unknown} are not among class_names {names}")
    codes = pc.fill_null(pc.index_in(labels, value_set=pa.array(names, pa.string())), -1).cast(pa.int64())
    features = lightcurve_features(names)
    table = table.set_column(table.schema.get_field_index("label"), "label", codes)
    table = table.select(list(features)).cast(features.arrow_schema)
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=features))


def torch_format(dataset: Dataset, columns: Sequence[str] | None = None) -> Dataset:
    """``dataset`` formatted as torch tensors that keep each column's dtype (``time`` stays float64).

    ``datasets``' plain ``with_format("torch")`` passes ``dtype=torch.float32`` for every float
    column; ``dtype=None`` lets ``torch.tensor`` keep the numpy dtype instead."""
    return dataset.with_format("torch", columns=columns, dtype=None)
