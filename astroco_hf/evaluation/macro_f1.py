"""Macro-averaged F1 as an ``evaluate`` module that loads offline by local path.

``evaluate.load("f1")`` downloads its script from the Hub; this file is self-contained (it imports
only ``datasets``, ``evaluate`` and ``numpy``, one per line, as ``evaluate`` requires) so that

    evaluate.load(astroco_hf.evaluation.MACRO_F1_PATH)

works without network, in ``Trainer``'s ``compute_metrics`` too. Definition (scikit-learn's
``f1_score(average="macro")``): the unweighted mean over classes of ``2 TP / (2 TP + FP + FN)``, a class
with no true and no predicted member scoring 0; the classes are ``labels`` when given, otherwise the
union of the labels present in references and predictions.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Macro-averaged F1: the unweighted mean of the per-class F1 scores."

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class indices.
    references (`list` of `int`): true class indices.
    labels (`list` of `int`, *optional*): the classes to average over. Pass every class of the task so
        that a class the model never predicts (and that is absent from this sample) still counts as 0.
Returns:
    macro_f1 (`float`): in [0, 1].
    per_class_f1 (`list` of `float`): F1 of each class, in the order of `labels` (sorted if not given).
Example:
    >>> metric = evaluate.load("astroco_hf/evaluation/macro_f1.py")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])["macro_f1"]
    0.6666666666666666
"""


def macro_f1(predictions: np.ndarray, references: np.ndarray, labels: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Macro-F1 and per-class F1 of integer predictions against references, both shape (N,)."""
    predictions = np.asarray(predictions, dtype=np.int64)
    references = np.asarray(references, dtype=np.int64)
    if predictions.shape != references.shape or predictions.ndim != 1:
        raise ValueError(f"predictions {predictions.shape} and references {references.shape} must be 1-D and of equal length")
    classes = np.union1d(predictions, references) if labels is None else np.asarray(labels, dtype=np.int64)
    if classes.size == 0:
        raise ValueError("macro-F1 of an empty sample is undefined")
    predicted = predictions[:, None] == classes[None, :]  # (N, C)
    actual = references[:, None] == classes[None, :]
    true_positive = (predicted & actual).sum(axis=0)
    denominator = predicted.sum(axis=0) + actual.sum(axis=0)  # 2 TP + FP + FN
    per_class = np.divide(2.0 * true_positive, denominator, out=np.zeros(len(classes)), where=denominator > 0)
    return float(per_class.mean()), per_class


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MacroF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None) -> dict:
        score, per_class = macro_f1(np.asarray(predictions), np.asarray(references), labels)
        return {"macro_f1": score, "per_class_f1": per_class.tolist()}
