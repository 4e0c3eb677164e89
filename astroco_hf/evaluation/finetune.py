"""Fine-tuning ``AstroCoForSequenceClassification`` with ``transformers.Trainer``.

The paper's protocol freezes the encoder and trains a linear head (and the scalar mix);
``freeze_encoder=False`` fine-tunes everything. Training examples are the
:class:`~astroco_hf.AstroCoFeatureExtractor`'s sequential windows of each labelled light curve (every
point seen once per epoch, each window carrying its curve's label, :func:`labelled_windows`), padded by
:class:`WindowClassificationCollator` to the fixed window length so shapes never change. Trainer
evaluates window-level macro-F1 (the package ``evaluate`` metric) every epoch, keeps the best
checkpoint and stops early; :func:`predict_curves` then scores whole curves: the classifier is linear
in the pooled embedding, so a curve's logits are the point-weighted mean of its windows' logits. The
best model is written to ``output_dir`` with everything ``pipeline("light-curve-classification", ...)``
and ``astroco release`` need, atomically (:mod:`astroco_hf.outputs`): the checkpoints live in the locked
working folder ``OUTPUT_DIR.partial`` (:func:`checkpoint_folder`) and the finished folder is renamed onto
``output_dir`` only on success, so a failed or interrupted run leaves no half-written model there.

For the few-shot tables use :mod:`~astroco_hf.evaluation.fewshot`, which trains the same frozen-encoder
head on cached features (encoder run once instead of every epoch).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Features, List, Value
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

from .. import __version__
from ..data import ColumnMap
from ..errors import ConfigError
from ..feature_extraction_astroco import AstroCoFeatureExtractor
from ..loading import check_model_folder
from ..modeling_astroco import AstroCoForSequenceClassification
from ..outputs import LOCK_NAME, atomic_output, lock_output_dir, refuse_existing
from ..pipelines import save_inference_files
from ..release.release import CLASSIFICATION_RESULTS, CLEANING_REPORT, EVAL_RESULTS, FIGURES, TRAINING_CONFIG
from ..windowing import pad_segments
from .embed import AstroCoEmbedder
from .fewshot import macro_f1
from .inputs import DEFAULT_COLUMNS, LightCurveInput, as_arrays

PRETRAINING_RECORDS = (EVAL_RESULTS, TRAINING_CONFIG, CLEANING_REPORT, *FIGURES)

WINDOW_FEATURES = Features({
    "times": List(Value("float32")),
    "magnitudes": List(Value("float32")),
    "uncertainties": List(Value("float32")),
    "labels": Value("int64"),
    "curve": Value("int64"),
})


def labelled_windows(data: LightCurveInput, labels: Sequence[int] | np.ndarray, *, window: int = 200,
                     min_tail: int | None = None, columns: ColumnMap = DEFAULT_COLUMNS,
                     feature_extractor: AstroCoFeatureExtractor | None = None) -> Dataset:
    """One row per normalised sequential window of the feature extractor (default: windows of
    ``window`` points), labelled with its curve's class: ``times, magnitudes, uncertainties`` (float32
    lists of the window's points), ``labels``, ``curve``."""
    curves = as_arrays(data, columns)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(curves),):
        raise ValueError(f"need one label per light curve: {len(curves)} curves, labels of shape {labels.shape}")
    if feature_extractor is None:
        feature_extractor = AstroCoFeatureExtractor(window_length=window, min_tail=min_tail)
    features = feature_extractor.window_curves(curves.to_flat())
    observed = features["attention_mask"].astype(bool)  # row-major: windows back to back, in order
    cuts = np.cumsum(features["n_points"])[:-1]
    return Dataset.from_dict({
        name: np.split(features[name][observed], cuts) for name in ("times", "magnitudes", "uncertainties")
    } | {"labels": labels[features["curve_index"]], "curve": features["curve_index"]}, features=WINDOW_FEATURES)


@dataclass
class WindowClassificationCollator:
    """``Trainer`` data collator for :func:`labelled_windows` rows: pads windows of different lengths
    to ``length`` points (fixed shapes, :func:`astroco_hf.windowing.pad_segments`).

    Use it with any ``Trainer`` on windows of at most ``length`` points; without it the default
    collator fails on windows of different lengths.

    Returns:
        ``times``, ``magnitudes``, ``uncertainties`` (B, length) float32, ``attention_mask``
        (B, length) int64 and ``labels`` (B,) int64.

    Example:
        >>> trainer = Trainer(model=classifier, args=TrainingArguments("out", remove_unused_columns=False),
        ...                   train_dataset=labelled_windows(curves, labels),
        ...                   data_collator=WindowClassificationCollator(200))
    """

    length: int = 200

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        counts = np.array([len(example["times"]) for example in features], dtype=np.int64)
        if counts.max() > self.length:
            raise ValueError(f"window {int(counts.argmax())} has {counts.max()} points > collator length {self.length}")
        flat = [np.concatenate([np.asarray(example[name], dtype=np.float32) for example in features])
                for name in ("times", "magnitudes", "uncertainties")]
        *padded, mask = pad_segments(np.concatenate([[0], np.cumsum(counts)]), *flat, length=self.length)
        out = {name: torch.from_numpy(values) for name, values in zip(("times", "magnitudes", "uncertainties"), padded, strict=True)}
        out["attention_mask"] = torch.from_numpy(mask)
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
    trainer: Trainer  # its checkpoint folder is gone: the best model is in output_dir
    eval_macro_f1: float  # curve level, on the evaluation curves


def checkpoint_folder(output_dir: str | Path) -> Path:
    """Where :func:`finetune_classifier` keeps its lock and Trainer checkpoints while it runs: the
    sibling ``OUTPUT_DIR.partial`` (a sibling, not a subfolder, so that ``output_dir`` appears whole)."""
    output_dir = Path(output_dir)
    return output_dir.with_name(output_dir.name + ".partial")


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
    overwrite: bool = False,
    **training_arguments,
) -> FineTuneResult:
    """Train ``AstroCoForSequenceClassification`` from a saved AstroCo folder with ``Trainer``.

    Args:
        model: a saved AstroCo model (pretraining or classification checkpoint).
        train_data, eval_data: light curves of any length; *_labels: their class indices.
        class_names: written into the config as ``id2label`` (and ``label2id``).
        output_dir: written on success only, whole: the best model (window-level validation macro-F1):
            weights and config with its label maps, the feature extractor, the pipelines
            (:func:`astroco_hf.pipelines.save_inference_files`) and ``classification_results.json``
            (curve-level macro-F1 on the evaluation curves, settings), which ``astroco release`` reads.
            Trainer checkpoints go to :func:`checkpoint_folder` (locked for the run, removed at its end).
        freeze_encoder: the paper's protocol (head + scalar mix only); False fine-tunes everything.
        overwrite: replace an existing non-empty ``output_dir`` (and take over the stale lock of a run
            that was killed).
        training_arguments: overrides of ``TrainingArguments`` (e.g. ``use_cpu=True``, ``bf16=True``).

    Returns:
        The trained model, the Trainer, and the curve-level macro-F1 on the evaluation curves.

    Raises:
        OutputError: ``output_dir`` exists and is not empty (without ``overwrite``), or another run holds
            it; both before any work.
        ConfigError: a label that is not an index of ``class_names``, fewer than two classes, a training
            number that is not positive, or a model folder whose weights do not match its config; before
            any work.
        FileNotFoundError: ``model`` is a local path that does not exist.
    """
    output_dir = Path(output_dir)
    refuse_existing(output_dir, overwrite=overwrite, flag="overwrite=True")  # before any work
    work = checkpoint_folder(output_dir)
    num_labels = len(class_names)

    def compute_metrics(prediction) -> dict[str, float]:
        predicted = np.asarray(prediction.predictions).argmax(axis=-1)
        return {"macro_f1": macro_f1(predicted, np.asarray(prediction.label_ids), num_labels)[0]}

    training_args = TrainingArguments(**{
        "output_dir": str(work),
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
    } | training_arguments)
    is_main = training_args.process_index == 0  # under a launcher, process 0 owns the folders
    lock = lock_output_dir(work, take_over=overwrite, take_over_hint="pass overwrite=True") if is_main else nullcontext()
    try:
        with lock:
            try:
                _check_arguments(train_labels, eval_labels, class_names, learning_rate=learning_rate, epochs=epochs,
                                 batch_size=batch_size, patience=patience)
                check_model_folder(model, flag="model")
                if is_main:  # what a killed run left (its stale lock was taken over with overwrite=True)
                    _empty_except_lock(work)
                classifier = AstroCoForSequenceClassification.from_pretrained(
                    str(model), num_labels=num_labels, id2label=dict(enumerate(class_names)),
                    label2id={name: i for i, name in enumerate(class_names)}, freeze_encoder=freeze_encoder,
                )
                feature_extractor = AstroCoFeatureExtractor(window_length=classifier.config.max_sequence_length)
                train_windows = labelled_windows(train_data, train_labels, feature_extractor=feature_extractor)
                eval_windows = labelled_windows(eval_data, eval_labels, feature_extractor=feature_extractor)
                trainer = Trainer(
                    model=classifier,
                    args=training_args,
                    train_dataset=train_windows,
                    eval_dataset=eval_windows,
                    data_collator=WindowClassificationCollator(feature_extractor.window_length),
                    compute_metrics=compute_metrics,
                    # Outputs also hold pooler_output and the (M+1,) layer weights: keep only the logits.
                    preprocess_logits_for_metrics=lambda logits, labels: logits[0] if isinstance(logits, tuple) else logits,
                    callbacks=[EarlyStoppingCallback(early_stopping_patience=patience)],
                )
                trainer.train()
                trained = trainer.model
                logits = predict_curves(trained, eval_data)
                score = macro_f1(logits.argmax(axis=1), np.asarray(eval_labels, dtype=np.int64), num_labels)[0]
                base = Path(model)
                pretraining = json.loads((base / EVAL_RESULTS).read_text()) if (base / EVAL_RESULTS).is_file() else {}
                results = {
                    "astroco_hf_version": __version__,
                    "task": "classification",
                    "base_model": str(model),
                    "preset": pretraining.get("model", {}).get("preset"),
                    "class_names": list(class_names),
                    "eval": {"macro_f1": score, "level": "curve", "n_curves": len(logits),
                             "window_macro_f1_best": trainer.state.best_metric},
                    "training": {
                        "hyperparameters": {"freeze_encoder": freeze_encoder, "learning_rate": learning_rate,
                                            "epochs": epochs, "batch_size": batch_size, "patience": patience},
                        "global_step": trainer.state.global_step, "epochs": trainer.state.epoch, "seed": seed,
                        "n_train_curves": len(train_labels), "n_train_windows": len(train_windows),
                    },
                }
                if is_main:
                    # The best model (loaded by load_best_model_at_end), ready for from_pretrained,
                    # AutoFeatureExtractor, pipeline(...) and `astroco release`, renamed onto output_dir when complete.
                    with atomic_output(output_dir, overwrite=overwrite) as folder:
                        trainer.save_model(str(folder))
                        save_inference_files(folder, feature_extractor)
                        # The encoder's pretraining records travel with it, so that the release card can describe them.
                        for name in PRETRAINING_RECORDS:
                            if (base / name).is_file():
                                shutil.copyfile(base / name, folder / name)
                        (folder / CLASSIFICATION_RESULTS).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
            finally:
                if is_main:  # the checkpoints are spent: the best model is in output_dir, or the run failed
                    _empty_except_lock(work)
    finally:
        if is_main and work.is_dir() and not any(work.iterdir()):  # e.g. a stale run's folder, taken over
            work.rmdir()
    return FineTuneResult(trained, trainer, score)


def _check_arguments(train_labels: Sequence[int] | np.ndarray, eval_labels: Sequence[int] | np.ndarray,
                     class_names: Sequence[str], **numbers: float) -> None:
    """Labels are class indices of ``class_names``, and the training numbers are positive: checked
    before any work (else the first training step fails inside the model)."""
    if len(class_names) < 2:
        raise ConfigError(f"class_names needs at least two classes, got {list(class_names)}")
    for name, labels in (("train_labels", train_labels), ("eval_labels", eval_labels)):
        values = np.asarray(labels)
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise ConfigError(f"{name} must be a 1-d sequence of class indices, got dtype {values.dtype} and shape "
                              f"{values.shape}")
        bad = values[(values < 0) | (values >= len(class_names))]
        if bad.size:
            raise ConfigError(f"{name} holds {bad[0]}, not a class index of class_names (0 .. {len(class_names) - 1})")
    for name, value in numbers.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value}")


def _empty_except_lock(folder: Path) -> None:
    for item in folder.iterdir():
        if item.name != LOCK_NAME:
            shutil.rmtree(item) if item.is_dir() else item.unlink()
