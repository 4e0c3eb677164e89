"""Masked-reconstruction metrics as an ``evaluate`` module (defined here: Hub metrics are unreachable offline).

The metric scores predicted magnitudes at *probed* positions (paper section 3.1), overall and split by
what the model saw there:

* ``hidden``: the magnitude was replaced by the placeholder (the honest reconstruction score);
* ``random``: the magnitude was replaced by another point's of the same window;
* ``unchanged``: the true magnitude was visible (copying it is enough).

Next to the model it reports two references computed on exactly the same points:

* the *window-mean baseline*: predicting 0, i.e. the window's mean magnitude (windows are mean-
  subtracted), so ``baseline_rmse = sqrt(mean y^2)``;
* the *noise floor* ``sqrt(mean sigma^2)``: the RMSE a perfect model of the true signal would score
  against noisy measurements.

RMSE is pooled over points (paper eq. 3 over the whole evaluation set). R^2 is ``1 - SSE / SST`` with
SST around the mean of the selected true values (sklearn's ``r2_score`` on the flattened points).

This file imports only numpy, datasets and evaluate, so it also loads by path::

    import evaluate, astroco_hf.training.metrics as m
    metric = evaluate.load(m.__file__)
    metric.compute(predictions=p, references=y, probe_kinds=k, uncertainties=s)
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

# Codes of ``probe_kinds``: the values of ``astroco_hf.data.ProbeKind`` (0 = not probed, ignored), restated
# because this file must load alone with ``evaluate.load(path)``; tests/test_training_metrics.py keeps them equal.
KIND_CODES: dict[str, int] = {"hidden": 1, "random": 2, "unchanged": 3}

_DESCRIPTION = """Masked-reconstruction RMSE and R^2 on probed positions of light-curve windows, overall and by
probe kind (hidden / random / unchanged), with the window-mean baseline (predict 0) and the noise floor
sqrt(mean sigma^2) on the same points."""

_INPUTS = """
Args:
    predictions (`list` of `float`): predicted (window-normalised) magnitudes, one per point.
    references (`list` of `float`): true (window-normalised) magnitudes.
    probe_kinds (`list` of `int`): 1 hidden, 2 random, 3 unchanged; 0 (not probed) is ignored.
    uncertainties (`list` of `float`): the points' true 1-sigma errors (not the zeroed model input).
Returns:
    rmse, r2, rmse_hidden, r2_hidden, rmse_random, r2_random, rmse_unchanged, r2_unchanged,
    baseline_rmse, baseline_rmse_hidden, noise_floor, noise_floor_hidden, n_probed, n_hidden.
    Scores of an empty selection are NaN.
"""

_CITATION = """@inproceedings{tan2025astroco,
  title={AstroCo: Self-Supervised Conformer-Style Transformers for Light-Curve Embeddings},
  author={Tan, Antony and Protopapas, Pavlos and C{\\'a}diz-Leyton, M. and Cabrera-Vives, Guillermo and
          Donoso-Oliva, C. and Becker, I.},
  booktitle={NeurIPS 2025 Workshop on Machine Learning and the Physical Sciences},
  year={2025}
}"""


def _rmse(error: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(error)))) if error.size else float("nan")


def _r2(prediction: np.ndarray, reference: np.ndarray) -> float:
    if reference.size == 0:
        return float("nan")
    total = np.sum(np.square(reference - reference.mean()))
    if total == 0.0:
        return float("nan")
    return float(1.0 - np.sum(np.square(prediction - reference)) / total)


def reconstruction_scores(
    predictions: np.ndarray, references: np.ndarray, probe_kinds: np.ndarray, uncertainties: np.ndarray
) -> dict[str, float | int]:
    """The metric's formulas on flat arrays (float64 accumulation); see the module docstring."""
    prediction = np.asarray(predictions, dtype=np.float64)
    reference = np.asarray(references, dtype=np.float64)
    kind = np.asarray(probe_kinds, dtype=np.int64)
    sigma = np.asarray(uncertainties, dtype=np.float64)
    if not prediction.shape == reference.shape == kind.shape == sigma.shape:
        raise ValueError(
            f"predictions {prediction.shape}, references {reference.shape}, probe_kinds {kind.shape} and "
            f"uncertainties {sigma.shape} must have the same shape"
        )
    probed = kind > 0
    hidden = kind == KIND_CODES["hidden"]
    scores: dict[str, float | int] = {
        "rmse": _rmse(prediction[probed] - reference[probed]),
        "r2": _r2(prediction[probed], reference[probed]),
    }
    for name, code in KIND_CODES.items():
        selected = kind == code
        scores[f"rmse_{name}"] = _rmse(prediction[selected] - reference[selected])
        scores[f"r2_{name}"] = _r2(prediction[selected], reference[selected])
    scores["baseline_rmse"] = _rmse(reference[probed])
    scores["baseline_rmse_hidden"] = _rmse(reference[hidden])
    scores["noise_floor"] = _rmse(sigma[probed])
    scores["noise_floor_hidden"] = _rmse(sigma[hidden])
    scores["n_probed"] = int(probed.sum())
    scores["n_hidden"] = int(hidden.sum())
    return scores


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class MaskedReconstructionMetric(evaluate.Metric):
    """Masked-reconstruction RMSE / R^2 by probe kind, window-mean baseline and noise floor."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("float32"),
                    "references": datasets.Value("float32"),
                    "probe_kinds": datasets.Value("int8"),
                    "uncertainties": datasets.Value("float32"),
                }
            ),
            format="numpy",
        )

    def _compute(
        self, predictions: np.ndarray, references: np.ndarray, probe_kinds: np.ndarray, uncertainties: np.ndarray
    ) -> dict[str, float | int]:
        return reconstruction_scores(predictions, references, probe_kinds, uncertainties)
