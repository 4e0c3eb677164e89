"""The masked-reconstruction metric: formulas, offline loading by path, Trainer adapter."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest
import torch
from transformers import EvalPrediction

import astroco_hf.training.metrics as metrics_module
from astroco_hf.data import DataCollatorForMaskedReconstruction, ProbeKind
from astroco_hf.training.metrics import KIND_CODES, MaskedReconstructionMetric, reconstruction_scores
from astroco_hf.training.trainer import ReconstructionMetrics, probe_kinds_of


def _points(n: int = 5000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    references = rng.normal(0.0, 0.3, n).astype(np.float32)
    return {
        "predictions": (references + rng.normal(0.0, 0.1, n)).astype(np.float32),
        "references": references,
        "probe_kinds": rng.integers(0, 4, n).astype(np.int8),
        "uncertainties": rng.uniform(0.01, 0.1, n).astype(np.float32),
    }


def test_kind_codes_match_the_collator():
    assert KIND_CODES == {"hidden": ProbeKind.HIDDEN, "random": ProbeKind.RANDOM, "unchanged": ProbeKind.UNCHANGED}


def test_scores_match_direct_formulas():
    points = _points()
    scores = reconstruction_scores(**points)
    p, y, k, s = (points[key].astype(np.float64) for key in ("predictions", "references", "probe_kinds", "uncertainties"))
    probed, hidden = k > 0, k == 1
    assert scores["rmse"] == pytest.approx(np.sqrt(np.mean((p[probed] - y[probed]) ** 2)))
    r2 = 1 - np.sum((p[hidden] - y[hidden]) ** 2) / np.sum((y[hidden] - y[hidden].mean()) ** 2)
    assert scores["r2_hidden"] == pytest.approx(r2)
    assert scores["baseline_rmse_hidden"] == pytest.approx(np.sqrt(np.mean(y[hidden] ** 2)))  # predicting the window mean
    assert scores["noise_floor"] == pytest.approx(np.sqrt(np.mean(s[probed] ** 2)))
    assert scores["n_probed"] == probed.sum() and scores["n_hidden"] == hidden.sum()


def test_perfect_and_baseline_predictions():
    points = _points()
    perfect = reconstruction_scores(**(points | {"predictions": points["references"]}))
    assert perfect["rmse"] == 0.0 and perfect["r2"] == 1.0
    zero = reconstruction_scores(**(points | {"predictions": np.zeros_like(points["references"])}))
    assert zero["rmse_hidden"] == pytest.approx(zero["baseline_rmse_hidden"])
    empty = reconstruction_scores(**{key: value[:0] for key, value in points.items()})
    assert np.isnan(empty["rmse"]) and empty["n_probed"] == 0


def test_loads_offline_by_path_and_agrees():
    points = _points()
    by_path = evaluate.load(metrics_module.__file__)
    assert by_path.compute(**points) == pytest.approx(reconstruction_scores(**points))
    metric = MaskedReconstructionMetric(keep_in_memory=True)
    for chunk in np.array_split(np.arange(len(points["references"])), 3):
        metric.add_batch(**{key: value[chunk] for key, value in points.items()})
    assert metric.compute() == pytest.approx(reconstruction_scores(**points))


def test_trainer_adapter_accumulates_batches_and_groups():
    points = _points(n=4 * 50)
    shaped = {key: value.reshape(4, 50) for key, value in points.items()}
    group = torch.tensor([0, 1, 0, 1])
    adapter = ReconstructionMetrics(["MACHO", "OGLE-III"])
    for rows, last in ((slice(0, 2), False), (slice(2, 4), True)):
        labels = {"labels": torch.from_numpy(shaped["references"][rows]),
                  "probe_kind": torch.from_numpy(shaped["probe_kinds"][rows]),
                  "true_uncertainties": torch.from_numpy(shaped["uncertainties"][rows]), "group": group[rows]}
        result = adapter(EvalPrediction(predictions=torch.from_numpy(shaped["predictions"][rows]), label_ids=labels),
                         compute_result=last)
    assert result["rmse"] == pytest.approx(reconstruction_scores(**points)["rmse"])
    macho = {key: value[[0, 2]].ravel() for key, value in shaped.items()}
    assert result["MACHO/rmse_hidden"] == pytest.approx(reconstruction_scores(**macho)["rmse_hidden"])


def test_probe_kinds_read_off_a_batch_match_the_collator():
    rng = np.random.default_rng(1)
    features = [{"times": np.sort(rng.uniform(0, 100, n)).astype(np.float32),
                 "magnitudes": rng.normal(0, 0.5, n).astype(np.float32),
                 "uncertainties": np.full(n, 0.02, np.float32), "mask_seed": i} for i, n in enumerate((200, 150, 37))]
    batch = DataCollatorForMaskedReconstruction(window=200, return_probe_kind=True)(features)
    assert torch.equal(probe_kinds_of(batch), batch["probe_kind"])


def test_kind_codes_are_the_collators_probe_kinds():
    """The metric file loads alone with evaluate.load(path), so it restates the codes; they must stay equal."""
    from astroco_hf.data import ProbeKind
    from astroco_hf.training.metrics import KIND_CODES

    assert KIND_CODES == {kind.name.lower(): int(kind) for kind in ProbeKind if kind != ProbeKind.NONE}
