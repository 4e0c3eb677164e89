"""Readers: survey files and in-memory arrays -> a ``pyarrow.Table`` in :data:`RAW_SCHEMA`.

Readers convert and validate but never remove anything: sentinels, bad errors, duplicate times and
unsorted rows are left for :mod:`~astroco_hf.data.cleaning`, which counts what it removes. Text in a
numeric column and missing columns raise a ``ValueError`` naming the file, light curve and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv
import pyarrow.parquet as pq

from ..errors import InputDataError
from .schema import DEFAULT_COLUMNS, RAW_SCHEMA, ColumnMap

PathLike = str | Path

# MACHO archive photometry table (the file a MACHO user downloads): one row per epoch, both bands.
MACHO_ID_COLUMNS: tuple[str, ...] = ("fieldid", "tileid", "seqn")
MACHO_BAND_COLUMNS: dict[str, tuple[str, str]] = {"R": ("rmag", "rerr"), "B": ("bmag", "berr")}

# MACHO variable-star catalogue `classification` codes -> (label, name as published). The six
# Alcock classes keep their name; LPV Wood A-D merge into LPV; RR Lyrae E and RRL+GB become "other".
MACHO_CLASS_CODES: dict[int, tuple[str, str]] = {
    1: ("RRab", "RRL AB"),
    2: ("RRc", "RRL C"),
    3: ("other", "RRL E"),
    4: ("Cep_0", "Ceph Fundamental"),
    5: ("Cep_1", "Ceph 1st Overtone"),
    6: ("LPV", "LPV WoodA"),
    7: ("LPV", "LPV WoodB"),
    8: ("LPV", "LPV WoodC"),
    9: ("LPV", "LPV WoodD"),
    10: ("EC", "EB"),
    11: ("other", "RRL + GB"),
}


def raw_table(
    meta: dict[str, Sequence | np.ndarray],
    offsets: np.ndarray,
    time: np.ndarray,
    mag: np.ndarray,
    mag_err: np.ndarray,
) -> pa.Table:
    """Assemble a :data:`RAW_SCHEMA` table from per-curve metadata and flat series.

    Args:
        meta: per-curve columns (``object_id``, ``survey``, ``band``; optional ``label``,
            ``source``, ``orig_label``, ``period``), each of length ``rows``.
        offsets: ``(rows + 1,)`` start of each curve in the flat arrays.
        time, mag, mag_err: flat series, shape ``(offsets[-1],)``.
    """
    rows = len(offsets) - 1
    offsets_arr = pa.array(np.asarray(offsets, dtype=np.int32))
    series = {
        "time": pa.ListArray.from_arrays(offsets_arr, pa.array(np.asarray(time, dtype=np.float64))),
        "mag": pa.ListArray.from_arrays(offsets_arr, pa.array(np.asarray(mag, dtype=np.float32))),
        "mag_err": pa.ListArray.from_arrays(offsets_arr, pa.array(np.asarray(mag_err, dtype=np.float32))),
    }
    columns = []
    for field in RAW_SCHEMA:
        if field.name in series:
            columns.append(series[field.name])
        elif field.name in meta:
            columns.append(pa.array(meta[field.name], type=field.type, from_pandas=True))
        else:
            columns.append(pa.nulls(rows, field.type))
    return pa.Table.from_arrays(columns, schema=RAW_SCHEMA)


def _as_float(
    values: pa.Array | pa.ChunkedArray, field: str, where: str, row_of: Callable[[int], str]
) -> pa.Array | pa.ChunkedArray:
    """Cast a (flat) column to float64; text that is not a number raises, naming the curve and field.

    ``row_of(i)`` names the light curve holding flat element ``i``."""
    try:
        return pc.cast(values, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = pd.Series(values.to_pylist(), dtype="string").str.strip()
        bad = pd.to_numeric(text, errors="coerce").isna() & text.notna() & (text.str.lower() != "nan")
        first = int(np.flatnonzero(bad.to_numpy(dtype=bool, na_value=False))[0])
        raise ValueError(
            f"{where}: light curve {row_of(first)}: field '{field}' has non-numeric value {text.iloc[first]!r}"
        ) from None


def _require_columns(available: Iterable[str], required: Sequence[str], where: str,
                     fields: Sequence[str] | None = None) -> None:
    """``InputDataError`` naming the ``required`` columns ``available`` lacks, and the ones it has. With
    ``fields`` (the :class:`ColumnMap` field of each required name: a generic file), it also says how to
    map the file's own names."""
    available = list(available)
    missing = [i for i, name in enumerate(required) if name not in available]
    if not missing:
        return
    message = f"{where}: missing column(s) {[required[i] for i in missing]} (columns: {available})"
    if fields is not None:
        message += (f"; map the file's own names with --column FIELD=NAME (astroco prepare, embed; ColumnMap in "
                    f"Python), e.g. --column {fields[missing[0]]}=NAME")
    raise InputDataError(message)


def _group_offsets(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group rows by ``keys`` (ints, first-appearance order kept, rows stay in file order within a
    group). Returns ``(order, offsets, first_row)``."""
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return order, offsets, order[offsets[:-1]]


# ------------------------------------------------------------------------------------------------
# MACHO archive photometry + variable-star catalogue
# ------------------------------------------------------------------------------------------------


def _expand(paths: PathLike | Iterable[PathLike], pattern: str) -> list[Path]:
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files.extend(sorted(item.glob(pattern)))
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(item)
    if not files:
        raise FileNotFoundError(f"no {pattern} files in {items}")
    return files


def _macho_ids(frame: pd.DataFrame) -> pd.Series:
    """``field.tile.seqn`` of every row."""
    field, tile, seqn = (frame[name].astype(str) for name in MACHO_ID_COLUMNS)
    return field + "." + tile + "." + seqn


def read_macho_tap(paths: PathLike | Iterable[PathLike], *, catalog: PathLike | pd.DataFrame | None = None) -> pa.Table:
    """MACHO archive photometry CSVs (``LC_<field>.<tile>.<seqn>.csv``) -> one row per star and band.

    Columns used: ``fieldid, tileid, seqn, dateobs`` (MJD) and ``rmag, rerr`` / ``bmag, berr``;
    ``-99`` marks a missing value and is left in place for the cleaning step to count. With
    ``catalog`` (path or :func:`read_macho_catalog` frame) labels and periods are attached.
    """
    frames = []
    columns = [*MACHO_ID_COLUMNS, "dateobs", *(c for pair in MACHO_BAND_COLUMNS.values() for c in pair)]
    for path in _expand(paths, "LC_*.csv"):
        frame = pd.read_csv(path)
        _require_columns(frame.columns, columns, str(path))
        ids = _macho_ids(frame)
        for name in columns:
            if not pd.api.types.is_numeric_dtype(frame[name]):
                values = pa.array(frame[name].astype("string"))
                name_row = lambda i, ids=ids: repr(ids.iloc[i])  # noqa: E731
                frame[name] = _as_float(values, name, str(path), name_row).to_numpy(zero_copy_only=False)
        frames.append(frame[columns])
    photometry = pd.concat(frames, ignore_index=True)
    keys, uniques = pd.factorize(_macho_ids(photometry.astype({name: "int64" for name in MACHO_ID_COLUMNS})))
    order, offsets, first = _group_offsets(keys)
    n_stars = len(uniques)
    time = photometry["dateobs"].to_numpy(np.float64)[order]
    per_band = []
    for band, (mag_col, err_col) in MACHO_BAND_COLUMNS.items():
        meta = {
            "object_id": list(uniques),
            "survey": ["MACHO"] * n_stars,
            "band": [band] * n_stars,
            "source": ["macho_tap"] * n_stars,
        }
        per_band.append(
            raw_table(meta, offsets, time, photometry[mag_col].to_numpy()[order], photometry[err_col].to_numpy()[order])
        )
    # Rows star-major (R then B of each star), as the published parquet files are.
    table = pa.concat_tables(per_band).take(np.arange(2 * n_stars).reshape(2, n_stars).T.ravel())
    return attach_macho_labels(table, catalog) if catalog is not None else table


def read_macho_catalog(path: PathLike) -> pd.DataFrame:
    """The MACHO variable-star catalogue -> frame indexed by ``(field, tile, seqn)`` with ``label``,
    ``orig_label`` and ``period`` (the R-band period, days). See :data:`MACHO_CLASS_CODES`."""
    catalog = pd.read_csv(path, usecols=["field", "tile", "seqn", "classification", "period_r"])
    codes = catalog["classification"].astype("int64")
    names = codes.map(lambda c: MACHO_CLASS_CODES.get(c, ("other", f"code {c}")))
    return pd.DataFrame(
        {"label": names.str[0], "orig_label": names.str[1], "period": catalog["period_r"].astype("float64")},
    ).set_index(pd.MultiIndex.from_frame(catalog[["field", "tile", "seqn"]].astype("int64")))


def attach_macho_labels(table: pa.Table, catalog: PathLike | pd.DataFrame) -> pa.Table:
    """Fill ``label``, ``orig_label`` and ``period`` of MACHO rows (``object_id`` = field.tile.seqn)
    from the catalogue; stars it does not list keep a null (unknown) label."""
    catalog = read_macho_catalog(catalog) if not isinstance(catalog, pd.DataFrame) else catalog
    object_ids = pd.Series(table["object_id"].to_pylist())
    parts = object_ids.str.extract(r"^(\d+)\.(\d+)\.(\d+)$").astype("float64")
    is_macho = np.asarray(table["survey"].to_pylist(), dtype=object) == "MACHO"
    keys = pd.MultiIndex.from_frame(parts.fillna(-1).astype("int64"))
    matched = catalog.reindex(keys)
    matched.loc[~is_macho] = None
    for name, dtype in (("label", pa.string()), ("orig_label", pa.string()), ("period", pa.float64())):
        column = pa.array(matched[name].to_numpy(), type=dtype, from_pandas=True)
        merged = pc.coalesce(column, table[name].combine_chunks())
        table = table.set_column(table.schema.get_field_index(name), name, merged)
    return table


# ------------------------------------------------------------------------------------------------
# Generic files: the `lightcurves/*.parquet` layout and CSV/parquet with configurable columns
# ------------------------------------------------------------------------------------------------


def read_lightcurve_file(path: PathLike, columns: ColumnMap = DEFAULT_COLUMNS) -> pa.Table:
    """A CSV or parquet file of light curves, in either layout:

    * nested: one row per (object, band), ``time``/``mag``/``mag_err`` are lists (the
      ``lightcurves/*.parquet`` layout of the shared data);
    * long: one row per observation; rows are grouped by (survey, object_id, band), file order kept.

    Column names come from ``columns``; ``source`` defaults to the file stem.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        table = pq.read_table(path)
    elif path.suffix == ".csv":
        table = pyarrow.csv.read_csv(path)
    else:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r} (expected .csv or .parquet)")
    fields = ("object_id", "time", "mag")
    _require_columns(table.column_names, [getattr(columns, field) for field in fields], str(path), fields)
    object_ids = pc.cast(table[columns.object_id], pa.string()).combine_chunks()
    if object_ids.null_count:
        row = int(np.flatnonzero(object_ids.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path}: row {row} has no '{columns.object_id}' (object_id)")

    def constant_or_column(name: str, default: str | None) -> pa.Array:
        if name in table.column_names:
            return pc.cast(table[name], pa.string()).combine_chunks()
        return pa.array([default] * table.num_rows, pa.string())

    surveys = constant_or_column(columns.survey, columns.default_survey)
    bands = constant_or_column(columns.band, columns.default_band)
    nested = pa.types.is_list(table.schema.field(columns.time).type) or pa.types.is_large_list(
        table.schema.field(columns.time).type
    )
    if nested:
        lengths = pc.fill_null(pc.list_value_length(table[columns.time]), 0).to_numpy().astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        curve_rows = np.arange(table.num_rows)

        def flat(name: str) -> pa.Array:
            values = table[name].combine_chunks()
            got = pc.fill_null(pc.list_value_length(values), 0).to_numpy().astype(np.int64)
            bad = np.flatnonzero(got != lengths)
            if bad.size:
                raise ValueError(
                    f"{path}: light curve {object_ids[int(bad[0])].as_py()!r}: field '{name}' has "
                    f"{got[bad[0]]} values but '{columns.time}' has {lengths[bad[0]]}"
                )
            return pc.list_flatten(values)
    else:
        keys = pd.factorize(pd.Series(pc.binary_join_element_wise(surveys, object_ids, bands, "\x1f").to_pylist()))[0]
        order, offsets, curve_rows = _group_offsets(keys)

        def flat(name: str) -> pa.Array:
            return table[name].combine_chunks().take(order)

    def row_of(i: int) -> str:
        row = curve_rows[np.searchsorted(offsets, i, side="right") - 1]
        return repr(object_ids[int(row)].as_py())

    series = {
        field: _as_float(flat(name), field, str(path), row_of).to_numpy(zero_copy_only=False)
        for field, name in (("time", columns.time), ("mag", columns.mag), ("mag_err", columns.mag_err))
        if name in table.column_names
    }
    series.setdefault("mag_err", np.full(offsets[-1], np.nan))
    meta = {
        "object_id": object_ids.take(curve_rows),
        "survey": surveys.take(curve_rows),
        "band": bands.take(curve_rows),
        "source": [path.stem] * len(curve_rows),
    }
    for field in ("label", "orig_label", "source"):
        name = getattr(columns, field)
        if name in table.column_names:
            meta[field] = pc.cast(table[name], pa.string()).combine_chunks().take(curve_rows)
    if columns.period in table.column_names:
        meta["period"] = _as_float(
            table[columns.period].combine_chunks(), "period", str(path), lambda i: repr(object_ids[i].as_py())
        ).take(curve_rows)
    return raw_table(meta, offsets, series["time"], series["mag"], series["mag_err"])


def lightcurves_from_arrays(
    curves: Sequence[tuple[Sequence[float], ...]],
    *,
    object_ids: Sequence[str] | None = None,
    survey: str | Sequence[str] = "unknown",
    band: str | Sequence[str] = "unknown",
    labels: Sequence[str | None] | None = None,
    source: str = "arrays",
) -> pa.Table:
    """In-memory light curves -> :data:`RAW_SCHEMA` table.

    Args:
        curves: one ``(t, m)`` or ``(t, m, sigma)`` tuple per curve, 1-D and of equal lengths; a
            missing ``sigma`` is all-NaN (the missing-error policy applies at cleaning).
        object_ids: names used in errors and splits (default ``"0", "1", ...``).
        survey, band: one value for all curves or one per curve.
        labels: class names, ``None`` where unknown.
    """
    n = len(curves)
    object_ids = [str(i) for i in range(n)] if object_ids is None else [str(o) for o in object_ids]
    broadcast = lambda v: [v] * n if isinstance(v, str) else list(v)  # noqa: E731
    meta = {
        "object_id": object_ids,
        "survey": broadcast(survey),
        "band": broadcast(band),
        "source": [source] * n,
        "label": labels if labels is not None else [None] * n,
    }
    for name, values in meta.items():
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries for {n} light curves")
    series: dict[str, list[np.ndarray]] = {"time": [], "mag": [], "mag_err": []}
    for object_id, curve in zip(object_ids, curves, strict=True):
        if len(curve) not in (2, 3):
            raise ValueError(f"light curve {object_id!r}: expected (t, m) or (t, m, sigma), got {len(curve)} arrays")
        for name, values in zip(("time", "mag", "mag_err"), curve, strict=False):
            try:
                array = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise ValueError(f"light curve {object_id!r}: field '{name}' is not numeric ({error})") from None
            if array.ndim != 1:
                raise ValueError(f"light curve {object_id!r}: field '{name}' must be 1-D, got shape {array.shape}")
            if name != "time" and len(array) != len(series["time"][-1]):
                raise ValueError(
                    f"light curve {object_id!r}: field '{name}' has {len(array)} values but 'time' has "
                    f"{len(series['time'][-1])}"
                )
            series[name].append(array)
        if len(curve) == 2:
            series["mag_err"].append(np.full(len(series["time"][-1]), np.nan))
    lengths = np.fromiter((len(t) for t in series["time"]), np.int64, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = {name: np.concatenate(arrays) if arrays else np.empty(0) for name, arrays in series.items()}
    return raw_table(meta, offsets, flat["time"], flat["mag"], flat["mag_err"])
