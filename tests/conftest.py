"""Shared fixtures: tiny configs, deterministic batches, and the path to the shared real data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from astroco_hf import AstroCoConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`, or skip when this checkout has none beside it."""
    if not (SHARED_DATA / "lightcurves").is_dir():
        pytest.skip(f"real light curves not found at {SHARED_DATA}")
    return SHARED_DATA


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
