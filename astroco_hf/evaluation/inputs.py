"""Light curves in any container -> flat arrays, and large sources -> bounded chunks.

Accepted inputs (one light curve per element or row):

* a sequence of ``(t, m)`` or ``(t, m, sigma)`` array tuples;
* a ``pandas.DataFrame``, nested (one row per curve, array-valued ``time``/``mag``/``mag_err`` cells)
  or long (one row per observation, grouped by ``object_id`` in order of first appearance);
* a ``datasets.Dataset`` or a ``pyarrow.Table`` with list columns (the layout of
  ``astroco prepare`` output and of ``../shared/data/lightcurves/*.parquet``);
* for streaming (:func:`iter_tables`): a path to a parquet or CSV file (either layout), a folder of
  them, a folder written by ``save_to_disk`` (a Dataset, or the DatasetDict of ``astroco prepare``: all
  splits), or an iterator of tables.

Column names follow :class:`astroco_hf.data.ColumnMap` (``time``, ``mag``, ``mag_err``, ``object_id``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, DatasetDict, load_from_disk

from astroco_hf.data import (
    RAW_SCHEMA,
    CleaningConfig,
    CleaningReport,
    ColumnMap,
    clean_lightcurves,
    is_saved_dataset,
    lightcurves_from_arrays,
    read_source,
)
from astroco_hf.feature_extraction_astroco import FlatLightCurves

LightCurveInput = Any  # any of the containers in the module docstring (kept loose for duck typing)
DEFAULT_COLUMNS = ColumnMap()


@dataclass
class LightCurveArrays:
    """Many light curves as flat arrays: curve ``i`` is points ``offsets[i]:offsets[i+1]``.

    Attributes:
        time: (P,) float64 days. mag: (P,) float32. mag_err: (P,) float32.
        offsets: (N+1,) int64, non-decreasing, ``offsets[0] == 0``.
        object_ids: N names used in error messages, or None (then curves are named by index).
        row_offset: index of the first curve in its source (for error messages of streamed chunks).
    """

    time: np.ndarray
    mag: np.ndarray
    mag_err: np.ndarray
    offsets: np.ndarray
    object_ids: list[str] | None = None
    row_offset: int = 0

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """(N,) points per curve."""
        return np.diff(self.offsets)

    def segments(self) -> np.ndarray:
        """(P,) curve index of every point."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def curve(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(t, m, sigma)`` of one curve (views)."""
        sl = slice(self.offsets[index], self.offsets[index + 1])
        return self.time[sl], self.mag[sl], self.mag_err[sl]

    def describe(self, index: int) -> str:
        """How errors name a curve: ``3 ('OGLE-LMC-CEP-0004')`` or ``3``."""
        row = index + self.row_offset
        return f"{row} ({self.object_ids[index]!r})" if self.object_ids is not None else str(row)

    def validate(self) -> LightCurveArrays:
        """Raise a ``ValueError`` naming the first bad curve and field; sort unsorted curves by time.

        Rejected: empty curves and non-finite times, magnitudes or uncertainties (the model would see
        NaN). Raw survey data should go through :func:`astroco_hf.data.clean_lightcurves` first, which
        removes and counts such points and imputes missing uncertainties by a documented policy.
        """
        lengths = self.lengths
        if (lengths == 0).any():
            raise ValueError(f"light curve {self.describe(int(np.flatnonzero(lengths == 0)[0]))} is empty: "
                             "every light curve needs at least one observation")
        for name in ("time", "mag", "mag_err"):
            bad = ~np.isfinite(getattr(self, name))
            if bad.any():
                point = int(np.flatnonzero(bad)[0])
                curve = int(np.searchsorted(self.offsets, point, side="right") - 1)
                hint = (" (no uncertainties given? pass (t, m, sigma) or impute them with "
                        "astroco_hf.data.clean_lightcurves)" if name == "mag_err" else "")
                raise ValueError(
                    f"light curve {self.describe(curve)}: field '{name}' has a non-finite value at point "
                    f"{point - self.offsets[curve]}{hint}; clean the data first (astroco_hf.data.clean_lightcurves "
                    "removes and counts such points)"
                )
        segments = self.segments()
        if ((np.diff(self.time) < 0) & (segments[1:] == segments[:-1])).any():
            order = np.lexsort((self.time, segments))  # stable: equal times keep their order
            self.time, self.mag, self.mag_err = self.time[order], self.mag[order], self.mag_err[order]
        return self

    def to_flat(self) -> FlatLightCurves:
        """The same arrays as the feature extractor's input, curves named as :meth:`describe` names them."""
        return FlatLightCurves(self.time, self.mag, self.mag_err, self.offsets, [self.describe(i) for i in range(len(self))])

    @classmethod
    def from_table(cls, table: pa.Table, columns: ColumnMap = DEFAULT_COLUMNS) -> LightCurveArrays:
        """From a table with list columns ``columns.time``, ``.mag``, ``.mag_err`` (``mag_err`` may be
        absent: then NaN, which :meth:`validate` rejects)."""
        for name in (columns.time, columns.mag):
            if name not in table.column_names:
                raise ValueError(f"light-curve table has no column {name!r} (columns: {table.column_names})")

        def flat(name: str, dtype: type) -> np.ndarray:
            values = pc.list_flatten(table[name]).to_numpy()  # nulls inside a list become NaN
            return np.asarray(values, dtype=dtype)

        lengths = pc.fill_null(pc.list_value_length(table[columns.time]), 0).to_numpy().astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        time, mag = flat(columns.time, np.float64), flat(columns.mag, np.float32)
        if columns.mag_err in table.column_names:
            mag_err = flat(columns.mag_err, np.float32)
        else:
            mag_err = np.full(len(time), np.nan, np.float32)
        for name, values in ((columns.mag, mag), (columns.mag_err, mag_err)):
            if len(values) != len(time):
                got = pc.fill_null(pc.list_value_length(table[name]), 0).to_numpy()
                row = int(np.flatnonzero(got != lengths)[0])
                raise ValueError(f"light curve {row}: field {name!r} has {got[row]} values but "
                                 f"{columns.time!r} has {lengths[row]}")
        ids = table[columns.object_id].to_pylist() if columns.object_id in table.column_names else None
        return cls(time, mag, mag_err, offsets, None if ids is None else [str(i) for i in ids])


def clean_inputs(data: LightCurveInput, config: CleaningConfig | None = None,
                 columns: ColumnMap = DEFAULT_COLUMNS) -> tuple[pa.Table, CleaningReport]:
    """Counted cleaning of in-memory raw light curves (:func:`astroco_hf.data.clean_lightcurves`: removes
    non-finite, sentinel and out-of-range points, sorts, merges duplicate times, imputes missing
    uncertainties); the cleaned table is a valid input of the feature extractor, the embedder and the
    pipelines. Inputs without ``object_id`` are named by their position."""
    table = as_table(data, columns)
    if columns.object_id not in table.column_names:
        table = table.append_column(columns.object_id, pa.array([str(i) for i in range(table.num_rows)], pa.string()))
    return clean_lightcurves(to_raw_schema(table, columns), config)


def _dataframe_to_table(frame: pd.DataFrame, columns: ColumnMap) -> pa.Table:
    """Nested or long DataFrame -> table with list series and string metadata columns."""
    if columns.time not in frame.columns:
        raise ValueError(f"DataFrame has no column {columns.time!r} (columns: {list(frame.columns)})")
    series = [c for c in (columns.time, columns.mag, columns.mag_err) if c in frame.columns]
    meta = [c for c in (columns.object_id, columns.survey, columns.band, columns.label) if c in frame.columns]
    if len(frame) and np.ndim(frame[columns.time].iloc[0]) == 0:  # long layout: one row per observation
        if columns.object_id not in frame.columns:
            raise ValueError(f"a long-layout DataFrame (one row per observation) needs an {columns.object_id!r} "
                             "column to group observations into light curves")
        # One curve per (survey, object, band), as the data layer's file reader groups them.
        keys = [c for c in (columns.survey, columns.object_id, columns.band) if c in frame.columns]
        groups = frame.groupby(keys, sort=False)
        frame = groups[series].agg(list).join(groups[[c for c in meta if c not in keys]].first()).reset_index()
    data = {}
    for name in series:
        dtype = pa.float64() if name == columns.time else pa.float32()
        data[name] = pa.array([np.asarray(v, dtype=np.float64) for v in frame[name]], pa.list_(dtype))
    for name in meta:
        data[name] = pa.array(frame[name].astype("string"), pa.string())
    return pa.table(data)


def as_table(data: LightCurveInput, columns: ColumnMap = DEFAULT_COLUMNS) -> pa.Table:
    """Any in-memory input of the module docstring as a ``pyarrow.Table`` with list columns."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, Dataset):
        return data.with_format("arrow")[:]
    if isinstance(data, pd.DataFrame):
        return _dataframe_to_table(data, columns)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        table = lightcurves_from_arrays(list(data))
        return table.rename_columns([{"time": columns.time, "mag": columns.mag, "mag_err": columns.mag_err}.get(n, n)
                                     for n in table.column_names])
    raise TypeError(f"cannot read light curves from a {type(data).__name__}; expected a list of (t, m, sigma) "
                    "tuples, a pandas DataFrame, a datasets.Dataset or a pyarrow Table")


def as_arrays(data: LightCurveInput | LightCurveArrays, columns: ColumnMap = DEFAULT_COLUMNS) -> LightCurveArrays:
    """Any input of the module docstring as validated :class:`LightCurveArrays` (input order kept)."""
    if isinstance(data, LightCurveArrays):
        return data.validate()
    return LightCurveArrays.from_table(as_table(data, columns), columns).validate()


# ------------------------------------------------------------------------------------------------
# Streaming large sources
# ------------------------------------------------------------------------------------------------


def _load_saved(path: Path) -> list[Dataset]:
    """The datasets of a ``save_to_disk`` folder (every split of a DatasetDict, in its order)."""
    loaded = load_from_disk(str(path))
    return list(loaded.values()) if isinstance(loaded, DatasetDict) else [loaded]


def _source_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted([*path.glob("*.parquet"), *path.glob("*.csv")])
        if files:
            return files
    raise FileNotFoundError(f"{path}: not a parquet/CSV file, a folder of them, or a saved datasets folder")


def _streams(file: Path, columns: ColumnMap) -> bool:
    """Whether ``file`` can be read one record batch at a time: a parquet file of one row per light curve
    (list-valued ``time``). CSV, parquet of one row per observation, and files that lack the ``time``
    column (whose error :func:`~astroco_hf.data.read_source` words) are read whole."""
    if file.suffix != ".parquet":
        return False
    schema = pq.read_schema(file)
    if columns.time not in schema.names:
        return False
    kind = schema.field(columns.time).type
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _named_as(table: pa.Table, columns: ColumnMap) -> pa.Table:
    """A table of :func:`~astroco_hf.data.read_source` (standard column names) with ``columns``' names,
    the names the caller reads it with."""
    fields = ColumnMap.__dataclass_fields__
    return table.rename_columns([getattr(columns, name) if name in fields else name for name in table.column_names])


def count_rows(source: LightCurveInput | str | Path | Sequence[str | Path],
               columns: ColumnMap = DEFAULT_COLUMNS) -> int | None:
    """Number of light curves in ``source`` when known without reading it (else None)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if is_saved_dataset(path):
            return sum(map(len, _load_saved(path)))
        files = _source_files(path)
        if all(_streams(f, columns) for f in files):
            return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        return None
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, Path)) for s in source):
        counts = [count_rows(s, columns) for s in source]
        return None if None in counts else sum(counts)
    return len(source) if hasattr(source, "__len__") else None


def iter_tables(
    source: LightCurveInput | str | Path | Sequence[str | Path],
    chunk_size: int,
    columns: ColumnMap = DEFAULT_COLUMNS,
) -> Iterator[pa.Table]:
    """Yield ``source`` as tables of at most ``chunk_size`` light curves, in order.

    Parquet files are read one record batch at a time and saved ``datasets`` folders are memory-mapped,
    so memory stays bounded by the chunk; CSV files and parquet files of one row per observation are read
    whole (through :func:`astroco_hf.data.read_source`, which groups their rows into curves by
    ``object_id``). Tables are yielded with ``columns``' names.
    """
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, Path)) for s in source):
        for item in source:
            yield from iter_tables(item, chunk_size, columns)
        return
    if isinstance(source, (str, Path)):
        path = Path(source)
        if is_saved_dataset(path):
            for dataset in _load_saved(path):
                yield from iter_tables(dataset, chunk_size, columns)
            return
        for file in _source_files(path):
            if _streams(file, columns):
                for batch in pq.ParquetFile(file).iter_batches(batch_size=chunk_size):
                    yield pa.Table.from_batches([batch])
            else:  # grouped into curves by read_source, read whole
                table = _named_as(read_source(file, columns=columns), columns)
                for start in range(0, table.num_rows, chunk_size):
                    yield table.slice(start, chunk_size)
        return
    if isinstance(source, Iterator):  # already chunked (a generator of tables): re-chunk to the bound
        for table in source:
            table = as_table(table, columns)
            for start in range(0, table.num_rows, chunk_size):
                yield table.slice(start, chunk_size)
        return
    if isinstance(source, Dataset):
        labels = source.features.get("label")
        for table in source.with_format("arrow").iter(batch_size=chunk_size):
            yield _decode_labels(table, labels)
        return
    table = as_table(source, columns)
    for start in range(0, table.num_rows, chunk_size):
        yield table.slice(start, chunk_size)


def _decode_labels(table: pa.Table, labels: Any) -> pa.Table:
    """Replace ``ClassLabel`` integers by their names (-1, unknown, becomes null)."""
    if not isinstance(labels, ClassLabel) or "label" not in table.column_names:
        return table
    codes = table["label"].to_numpy(zero_copy_only=False)
    names = [labels.int2str(int(c)) if c >= 0 else None for c in codes]
    return table.set_column(table.schema.get_field_index("label"), "label", pa.array(names, pa.string()))


def to_raw_schema(table: pa.Table, columns: ColumnMap = DEFAULT_COLUMNS) -> pa.Table:
    """A nested-layout table as :data:`astroco_hf.data.RAW_SCHEMA` (missing columns null,
    ``survey``/``band`` defaulted), ready for :func:`astroco_hf.data.clean_lightcurves`."""
    renames = {getattr(columns, field.name): field.name for field in RAW_SCHEMA if hasattr(columns, field.name)}
    table = table.rename_columns([renames.get(name, name) for name in table.column_names])
    defaults = {"survey": columns.default_survey, "band": columns.default_band}
    arrays = []
    for field in RAW_SCHEMA:
        if field.name in table.column_names:
            arrays.append(pc.cast(table[field.name], field.type))
        elif field.name in defaults:
            arrays.append(pa.array([defaults[field.name]] * table.num_rows, field.type))
        elif field.name == "object_id":
            raise ValueError(f"light-curve table has no {columns.object_id!r} column to name its curves")
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=RAW_SCHEMA)
