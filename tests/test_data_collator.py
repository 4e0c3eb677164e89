"""The masking collator on real windows: BERT fractions, padding never probed, replacements from the
same window, seeding, fixed evaluation masks, the model contract, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from datasets import Dataset

from astroco_hf.data import (
    DataCollatorForMaskedReconstruction,
    ProbeKind,
    clean_lightcurves,
    random_windows,
    read_source,
    sequential_windows,
    to_dataset,
)


@pytest.fixture(scope="module")
def curves() -> Dataset:
    path = SHARED_DATA / "lightcurves" / "crts.parquet"  # 5,757 curves of 60-546 points
    if not path.is_file():
        pytest.skip("shared light curves not found")
    table, _ = clean_lightcurves(read_source(path))
    return to_dataset(table)


@pytest.fixture(scope="module")
def batches(curves: Dataset) -> list[dict[str, np.ndarray]]:
    """10,240 real random windows (40 batches of 256, about two epochs of fresh crops), with probe kinds."""
    train = random_windows(curves, 200, seed=0).shuffle(seed=0)
    collator = DataCollatorForMaskedReconstruction(seed=0, return_probe_kind=True, return_tensors="np")
    rows = np.arange(40 * 256) % len(train)
    return [collator(train.__getitems__(rows[i : i + 256].tolist())) for i in range(0, len(rows), 256)]


def test_fractions_over_10k_real_windows(batches: list[dict[str, np.ndarray]]) -> None:
    valid = np.concatenate([b["attention_mask"] for b in batches]).astype(bool)
    kind = np.concatenate([b["probe_kind"] for b in batches])
    assert len(valid) >= 10_000 and valid.sum(1).min() < 200  # short windows are in the mix
    fractions = {k: (kind[valid] == k).mean() for k in ProbeKind}
    assert fractions[ProbeKind.NONE] == pytest.approx(0.5, abs=0.01)
    assert fractions[ProbeKind.HIDDEN] == pytest.approx(0.3, abs=0.01)
    assert fractions[ProbeKind.RANDOM] == pytest.approx(0.1, abs=0.01)
    assert fractions[ProbeKind.UNCHANGED] == pytest.approx(0.1, abs=0.01)


def test_batch_contract(batches: list[dict[str, np.ndarray]]) -> None:
    for batch in batches:
        valid = batch["attention_mask"].astype(bool)
        kind = batch["probe_kind"]
        assert {k: v.shape for k, v in batch.items()} == dict.fromkeys(batch, (256, 200))
        assert batch["attention_mask"].dtype == np.int64 and batch["masked_positions"].dtype == bool
        assert not (batch["probed_positions"] & ~valid).any()  # padding is never probed
        np.testing.assert_array_equal(batch["masked_positions"], kind == ProbeKind.HIDDEN)
        np.testing.assert_array_equal(batch["probed_positions"], kind != ProbeKind.NONE)
        hidden = batch["masked_positions"]
        assert (batch["magnitudes"][hidden] == 0).all() and (batch["uncertainties"][hidden] == 0).all()
        for name in ("times", "magnitudes", "uncertainties", "labels"):
            assert (batch[name][~valid] == 0).all() and np.isfinite(batch[name]).all()
        keep = (kind == ProbeKind.UNCHANGED) | (kind == ProbeKind.NONE)
        np.testing.assert_array_equal(batch["magnitudes"][keep], batch["labels"][keep])


def test_random_replacements_come_from_the_same_window(batches: list[dict[str, np.ndarray]]) -> None:
    replaced = 0
    for batch in batches[:5]:
        rows, cols = np.nonzero(batch["probe_kind"] == ProbeKind.RANDOM)
        for r, c in zip(rows, cols, strict=True):
            n = batch["attention_mask"][r].sum()
            others = np.delete(batch["labels"][r, :n], c)
            assert batch["magnitudes"][r, c] in others
            replaced += batch["magnitudes"][r, c] != batch["labels"][r, c]
    assert replaced > 0.9 * sum((b["probe_kind"] == ProbeKind.RANDOM).sum() for b in batches[:5])


def test_same_seed_same_batch(curves: Dataset) -> None:
    examples = random_windows(curves, 200, seed=1).__getitems__(list(range(64)))
    first = DataCollatorForMaskedReconstruction(seed=7)(examples)
    second = DataCollatorForMaskedReconstruction(seed=7)(examples)
    other = DataCollatorForMaskedReconstruction(seed=8)(examples)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["probed_positions"], other["probed_positions"])
    assert first["times"].dtype == torch.float32 and first["attention_mask"].dtype == torch.long


def test_mask_seed_fixes_the_mask_whatever_the_batch(curves: Dataset) -> None:
    windows = sequential_windows(curves.select(range(40)), 200)
    examples = [windows[i] for i in range(len(windows))]
    collate = DataCollatorForMaskedReconstruction(seed=0, return_probe_kind=True)
    full = collate(examples)["probe_kind"]
    alone = DataCollatorForMaskedReconstruction(seed=123, return_probe_kind=True)([examples[5]])["probe_kind"]
    reordered = collate(examples[::-1])["probe_kind"]
    assert torch.equal(full[5], alone[0])
    assert torch.equal(full, reordered.flip(0))


def test_collated_batch_runs_the_model(curves: Dataset) -> None:
    astroco_hf = pytest.importorskip("astroco_hf")
    config = astroco_hf.AstroCoConfig.from_preset("astroco-tiny")
    model = astroco_hf.AstroCoForMaskedReconstruction(config).eval()
    examples = random_windows(curves, config.max_sequence_length, seed=0).__getitems__(list(range(8)))
    batch = DataCollatorForMaskedReconstruction(window_size=config.max_sequence_length, seed=0)(examples)
    with torch.no_grad():
        output = model(**batch)
    assert torch.isfinite(output.loss)


def test_bad_examples_raise_clear_errors() -> None:
    collate = DataCollatorForMaskedReconstruction(window_size=4, seed=0)
    good = {"times": [0.0, 1.0], "magnitudes": [0.1, -0.1], "uncertainties": [0.01, 0.01], "object_id": "s1"}
    with pytest.raises(ValueError, match=r"example 1 \(object_id 's2'\): field 'uncertainties' has shape \(1,\)"):
        collate([good, {**good, "uncertainties": [0.01], "object_id": "s2"}])
    with pytest.raises(ValueError, match=r"example 0 \(object_id 's1'\): field 'magnitudes' holds NaN"):
        collate([{**good, "magnitudes": [np.nan, 0.0]}])
    with pytest.raises(ValueError, match=r"field 'times' is not numeric"):
        collate([{**good, "times": ["a", "b"]}])
    with pytest.raises(ValueError, match=r"has 0 points"):
        collate([{**good, "times": [], "magnitudes": [], "uncertainties": []}])
    with pytest.raises(ValueError, match=r"has 5 points; windows need 1\.\.4"):
        collate([{**good, "times": [0.0] * 5}])
    with pytest.raises(ValueError, match=r"has no 'uncertainties'"):
        collate([{"times": [0.0], "magnitudes": [0.0]}])
    with pytest.raises(ValueError, match=r"must equal probe_fraction"):
        DataCollatorForMaskedReconstruction(
            probe_fraction=0.5, mask_fraction=0.3, random_fraction=0.1, unchanged_fraction=0.2
        )
