"""Fine-tuning ``AstroCoForSequenceClassification`` with ``transformers.Trainer``.

The paper's protocol freezes the encoder and trains a linear head (and the scalar mix);
``freeze_encoder=False`` fine-tunes everything. Training examples are the data layer's sequential
windows of each labelled light curve (every point seen once per epoch, each window carrying its
curve's label), padded to the fixed window length so shapes never change. Trainer evaluates
window-level macro-F1 (the package ``evaluate`` metric) every epoch, keeps the best checkpoint and
stops early; :func:`predict_curves` then scores whole curves: the classifier is linear in the pooled
embedding, so a curve's logits are the point-weighted mean of its windows' logits.

For the few-shot tables use :mod:`~astroco_hf.evaluation.fewshot`, which trains the same frozen-encoder
head on cached features (encoder run once instead of every epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Features, List, Value
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

from ..data import ColumnMap, normalize_segments, window_bounds
from ..modeling_astroco import AstroCoForSequenceClassification
from .embed import AstroCoEmbedder
from .fewshot import macro_f1
from .inputs import DEFAULT_COLUMNS, LightCurveInput, as_arrays

WINDOW_FEATURES = Features({
    "times": List(Value("float32")),
    "magnitudes": List(Value("float32")),
    "uncertainties": List(Value("float32")),
    "labels": Value("int64"),
    "curve": Value("int64"),
})


def labelled_windows(data: LightCurveInput, labels: Sequence[int] | np.ndarray, *, window: int = 200,
                     min_tail: int | None = None, columns: ColumnMap = DEFAULT_COLUMNS) -> Dataset:
    """One row per normalised sequential window (:func:`astroco_hf.data.window_bounds`), labelled with
    its curve's class: ``times, magnitudes, uncertainties`` (float32 lists), ``labels``, ``curve``."""
    curves = as_arrays(data, columns)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(curves),):
        raise ValueError(f"need one label per light curve: {len(curves)} curves, labels of shape {labels.shape}")
    curve, _, start, stop = window_bounds(curves.lengths, window, window // 4 if min_tail is None else min_tail)
    counts = stop - start
    offsets = np.concatenate([[0], np.cumsum(counts)])
    segments = np.repeat(np.arange(len(curve)), counts)
    points = np.arange(offsets[-1]) - offsets[segments] + (start + curves.offsets[:-1][curve])[segments]
    times, mags, _, _ = normalize_segments(curves.time[points], curves.mag[points], segments, len(curve))
    cuts = offsets[1:-1]
    return Dataset.from_dict({
        "times": np.split(times, cuts),
        "magnitudes": np.split(mags, cuts),
        "uncertainties": np.split(curves.mag_err[points].astype(np.float32), cuts),
        "labels": labels[curve],
        "curve": curve,
    }, features=WINDOW_FEATURES)


@dataclass
class WindowClassificationCollator:
    """Pads windows to ``length`` points (fixed shapes): the model's inputs plus ``labels`` (B,)."""

    length: int = 200

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = len(features)
        out = {name: torch.zeros(batch, self.length) for name in ("times", "magnitudes", "uncertainties")}
        out["attention_mask"] = torch.zeros(batch, self.length, dtype=torch.long)
        for row, example in enumerate(features):
            n = len(example["times"])
            if n > self.length:
                raise ValueError(f"window {row} has {n} points > collator length {self.length}")
            for name in ("times", "magnitudes", "uncertainties"):
                out[name][row, :n] = torch.as_tensor(example[name], dtype=torch.float32)
            out["attention_mask"][row, :n] = 1
        out["labels"] = torch.tensor([example["labels"] for example in features], dtype=torch.long)
        return out


def predict_curves(model: AstroCoForSequenceClassification, data: LightCurveInput, *, batch_size: int = 256,
                   columns: ColumnMap = DEFAULT_COLUMNS) -> np.ndarray:
    """(N, C) logits of whole light curves of any length, in input order (eval mode)."""
    model.eval()
    embedder = AstroCoEmbedder(model, batch_size=batch_size, progress=False)
    pooled = torch.from_numpy(embedder.embed(data, columns=columns).embeddings).to(embedder.device)
    with torch.inference_mode():
        return model.classifier(pooled.to(model.classifier.weight.dtype)).float().cpu().numpy()


@dataclass
class FineTuneResult:
    model: AstroCoForSequenceClassification
    trainer: Trainer
    eval_macro_f1: float  # curve level, on the evaluation curves


def finetune_classifier(
    model: str | Path,
    train_data: LightCurveInput,
    train_labels: Sequence[int] | np.ndarray,
    eval_data: LightCurveInput,
    eval_labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    output_dir: str | Path,
    *,
    freeze_encoder: bool = True,
    learning_rate: float = 1e-3,
    epochs: int = 50,
    batch_size: int = 64,
    patience: int = 5,
    seed: int = 0,
    **training_arguments,
) -> FineTuneResult:
    """Train ``AstroCoForSequenceClassification`` from a saved AstroCo folder with ``Trainer``.

    Args:
        model: a saved AstroCo model (pretraining or classification checkpoint).
        train_data, eval_data: light curves of any length; *_labels: their class indices.
        class_names: written into the config as ``id2label``.
        output_dir: Trainer checkpoints; the best model (window-level validation macro-F1) is loaded at
            the end.
        freeze_encoder: the paper's protocol (head + scalar mix only); False fine-tunes everything.
        training_arguments: overrides of ``TrainingArguments`` (e.g. ``use_cpu=True``, ``bf16=True``).

    Returns:
        The trained model, the Trainer, and the curve-level macro-F1 on the evaluation curves.
    """
    num_labels = len(class_names)
    classifier = AstroCoForSequenceClassification.from_pretrained(
        str(model), num_labels=num_labels, id2label=dict(enumerate(class_names)),
        label2id={name: i for i, name in enumerate(class_names)}, freeze_encoder=freeze_encoder,
    )
    window = classifier.config.max_sequence_length
    train_windows = labelled_windows(train_data, train_labels, window=window)
    eval_windows = labelled_windows(eval_data, eval_labels, window=window)

    def compute_metrics(prediction) -> dict[str, float]:
        predicted = np.asarray(prediction.predictions).argmax(axis=-1)
        return {"macro_f1": macro_f1(predicted, np.asarray(prediction.label_ids), num_labels)[0]}

    arguments = {
        "output_dir": str(output_dir),
        "learning_rate": learning_rate,
        "num_train_epochs": epochs,
        "per_device_train_batch_size": batch_size,
        "per_device_eval_batch_size": batch_size,
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "logging_strategy": "epoch",
        "save_total_limit": 2,
        "load_best_model_at_end": True,
        "metric_for_best_model": "macro_f1",
        "greater_is_better": True,
        "remove_unused_columns": False,  # the collator reads the raw window columns
        "label_names": ["labels"],
        "report_to": "none",
        "seed": seed,
    } | training_arguments
    trainer = Trainer(
        model=classifier,
        args=TrainingArguments(**arguments),
        train_dataset=train_windows,
        eval_dataset=eval_windows,
        data_collator=WindowClassificationCollator(window),
        compute_metrics=compute_metrics,
        # Outputs also hold pooler_output and the (M+1,) layer weights: keep only the logits.
        preprocess_logits_for_metrics=lambda logits, labels: logits[0] if isinstance(logits, tuple) else logits,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=patience)],
    )
    trainer.train()
    trained = trainer.model
    logits = predict_curves(trained, eval_data)
    score = macro_f1(logits.argmax(axis=1), np.asarray(eval_labels, dtype=np.int64), num_labels)[0]
    return FineTuneResult(trained, trainer, score)
