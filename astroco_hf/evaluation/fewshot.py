"""The paper's few-shot protocol (section 4, appendix B.3) on any labelled light-curve set.

For each N in ``shots``: the data layer's :func:`astroco_hf.data.few_shot_splits` draws, per class, N
training objects plus disjoint validation and test objects (stratified, object-disjoint, seeded;
the test set is shared by the folds), for ``folds`` folds. On each fold and for each of ``seeds``
seeds, three classifiers see the same splits:

* ``astroco``: the frozen encoder with a linear head and the scalar-mix weights trained by
  cross-entropy (full-batch AdamW, early stopping on validation macro-F1, best epoch restored). The
  encoder runs once: its per-layer masked means ``f_l`` of every curve are cached and the head
  computes ``W (sum_l softmax(w)_l f_l) + b`` (trained in a standardised parametrisation that folds
  exactly into ``W, b``, see :class:`CachedFeatureHead`), which is exactly
  ``AstroCoForSequenceClassification(freeze_encoder=True)`` in eval mode (for a curve longer than one
  window, exactly the point-weighted mean of its windows' logits); :func:`to_classification_model`
  turns a trained head into that model.
* ``logreg_embeddings``: scikit-learn logistic regression on the standardised pooled embeddings
  (the encoder's own mixing weights), C chosen on validation macro-F1.
* ``<set>_rf`` / ``<set>_logreg``: a random forest / logistic regression (C chosen on validation
  macro-F1) on a feature set (median-imputed, standardised) of :data:`FEATURE_SETS`: ``light_curve``,
  the 50 ``light-curve`` package features of :mod:`~astroco_hf.evaluation.features`; ``handcrafted``,
  its seven astropy features; ``light_curve_handcrafted``, both concatenated (do the seven add
  information the 50 lack?); ``astroco_light_curve``, the pooled embeddings concatenated with the 50
  (does the encoder add information the features lack?). ``FewShotConfig.handcrafted=False`` drops
  the two sets with the seven (their periodograms cost ~10x the 50).

Only the curves some split uses are embedded and featurised (the periodograms dominate the cost).

Macro-F1 comes from the package's ``evaluate`` module (:data:`MACRO_F1_PATH`). Results are reported
as mean +- std (ddof=1) over the folds x seeds runs per N (random forests and heads: one run per seed;
the deterministic logistic regressions: one per fold); an N that a class is too small for is
skipped whole (a macro-F1 over fewer classes would not be comparable) and reported.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import evaluate
import numpy as np
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features, Value
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from ..data import few_shot_splits
from ..modeling_astroco import AstroCoForSequenceClassification, AstroCoModel
from ..outputs import atomic_output, refuse_existing
from .benchmarks import LabelledLightCurves
from .embed import AstroCoEmbedder, EmbeddingOutput
from .features import (
    EXTRACTOR,
    FEATURE_NAMES,
    HANDCRAFTED_EXTRACTOR,
    HANDCRAFTED_FEATURE_NAMES,
    handcrafted_features,
    light_curve_features,
)
from .macro_f1 import macro_f1 as macro_f1_score  # the metric's own function: cheap inside the epoch loop

MACRO_F1_PATH = str(Path(__file__).with_name("macro_f1.py"))
FEATURE_SETS: dict[str, str] = {  # name -> what the ``<name>_rf`` / ``<name>_logreg`` rows classify
    "light_curve": "light-curve features",
    "handcrafted": "seven astropy features",
    "light_curve_handcrafted": "light-curve ⊕ seven astropy features",
    "astroco_light_curve": "AstroCo embeddings ⊕ light-curve features",
}
FEATURE_CLASSIFIERS: tuple[str, ...] = ("random_forest", "logreg")
_CLASSIFIER_SUFFIX = {"random_forest": ("rf", "random forest"), "logreg": ("logreg", "logistic regression")}
METHODS: dict[str, str] = {
    "astroco": "AstroCo frozen encoder + linear head",
    "logreg_embeddings": "Logistic regression on AstroCo embeddings",
    **{f"{name}_{suffix}": f"{label} + {classifier}" for name, label in FEATURE_SETS.items()
       for suffix, classifier in _CLASSIFIER_SUFFIX.values()},
}
LOGREG_C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
DEFAULT_FEATURE_CACHE = Path.home() / ".cache" / "astroco_hf" / "features"


@cache
def load_macro_f1() -> evaluate.EvaluationModule:
    """The package's macro-F1 ``evaluate`` module, loaded offline by local path."""
    return evaluate.load(MACRO_F1_PATH)


def macro_f1(predictions: np.ndarray, references: np.ndarray, num_classes: int) -> tuple[float, list[float]]:
    """Macro-F1 over all ``num_classes`` classes (a class never predicted counts as 0)."""
    out = load_macro_f1().compute(predictions=predictions.tolist(), references=references.tolist(),
                                  labels=list(range(num_classes)))
    return out["macro_f1"], out["per_class_f1"]


@dataclass
class FewShotConfig:
    """Protocol and head-training settings (defaults: the paper's 20/100/500 shots, 3 folds x 3 seeds)."""

    shots: tuple[int, ...] = (20, 100, 500)
    folds: int = 3
    seeds: int = 3
    split_seed: int = 0
    n_validation_per_class: int | None = None  # data-layer default: max(5, round(0.1 N))
    n_test_per_class: int = 100
    # Head training: full-batch AdamW (the few-shot training sets are small), early stopping on validation
    # macro-F1 with ties to the lower loss; chosen on EROS-1 (N=20, 100) over mini-batches, lower rates
    # and loss-based stopping, which halted near chance on 5-10 validation objects per class.
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int | None = None  # None: full batch
    max_epochs: int = 3000
    patience: int = 100
    early_stopping: Literal["loss", "macro_f1"] = "macro_f1"
    # Classifiers of the feature rows (light-curve features, and embeddings + features).
    feature_classifiers: tuple[Literal["random_forest", "logreg"], ...] = FEATURE_CLASSIFIERS
    random_forest_trees: int = 300
    handcrafted: bool = True  # also the rows of the seven astropy features (alone and with the light-curve ones)


# ------------------------------------------------------------------------------------------------
# The linear head on cached per-layer features
# ------------------------------------------------------------------------------------------------


class CachedFeatureHead(nn.Module):
    """Scalar mix + dropout + linear layer on cached per-layer means: (B, M+1, D) -> (B, C).

    Mirrors ``AstroCoForSequenceClassification`` with a frozen encoder: ``layer_weights`` are the
    encoder's ``astroco.layer_weights`` (learned only when ``config.pooling == "scalar_mix"``,
    otherwise the fixed mix is a buffer), ``classifier`` its ``classifier``, in a preconditioned
    parametrisation: ``logits = classifier((dropout(pooled) - shift) / scale)``. ``shift`` and
    ``scale`` are constants (:meth:`standardize`), so ``W / scale`` and ``b - (W / scale) shift`` are
    exactly the model's classifier (:meth:`folded_classifier`). Why: masked means of LayerNorm outputs
    vary little between curves around a large common offset; on raw features the head learned so
    slowly that early stopping halted it near chance (EROS-1, N=100: macro-F1 0.19 raw vs 0.29
    standardised, same optimiser, random encoder).
    """

    def __init__(self, encoder: AstroCoModel, num_labels: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        config = encoder.config
        with torch.no_grad():
            if config.pooling == "scalar_mix":
                self.layer_weights = nn.Parameter(encoder.layer_weights.detach().float().cpu().clone())
            else:
                self.register_buffer("fixed_mix", encoder.mixing_weights().detach().float().cpu().clone())
        self.register_buffer("shift", torch.zeros(config.d_model))
        self.register_buffer("scale", torch.ones(config.d_model))
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.d_model, num_labels)
        # The model's _init_weights: normal(0, initializer_range) weights, zero bias.
        with torch.no_grad():
            self.classifier.weight.normal_(0.0, config.initializer_range, generator=generator)
            self.classifier.bias.zero_()

    def mixing_weights(self) -> torch.Tensor:
        """(M+1,) normalised layer weights alpha."""
        return self.layer_weights.softmax(dim=0) if hasattr(self, "layer_weights") else self.fixed_mix

    def pooled(self, layer_means: torch.Tensor) -> torch.Tensor:
        """(B, M+1, D) -> (B, D): the encoder's pooled embedding under the current mix."""
        return torch.einsum("l,bld->bd", self.mixing_weights(), layer_means)

    @torch.no_grad()
    def standardize(self, layer_means: torch.Tensor) -> None:
        """Set ``shift``/``scale`` to the mean/std of the pooled training embeddings (current mix)."""
        pooled = self.pooled(layer_means)
        self.shift.copy_(pooled.mean(dim=0))
        self.scale.copy_(pooled.std(dim=0, unbiased=False).clamp_min(1e-6))

    def folded_classifier(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The equivalent classifier on the raw pooled embedding: weight (C, D), bias (C,)."""
        weight = self.classifier.weight / self.scale
        return weight, self.classifier.bias - weight @ self.shift

    def forward(self, layer_means: torch.Tensor) -> torch.Tensor:
        return self.classifier((self.dropout(self.pooled(layer_means)) - self.shift) / self.scale)


@dataclass
class HeadResult:
    head: CachedFeatureHead
    epochs: int
    best_epoch: int
    best_validation_loss: float


def train_head(
    encoder: AstroCoModel,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    num_labels: int,
    *,
    seed: int,
    config: FewShotConfig,
) -> HeadResult:
    """Train a :class:`CachedFeatureHead` by cross-entropy with early stopping on the validation split
    (``config.early_stopping``), restoring the best epoch.

    Args:
        encoder: the frozen encoder the features came from (its config and mixing weights).
        train_features, validation_features: (n, M+1, D) per-layer means. *_labels: (n,) int.
        seed: head initialisation and batch order.
    """
    with _single_thread():
        return _train_head(encoder, train_features, train_labels, validation_features, validation_labels,
                           num_labels, seed, config)


@contextmanager
def _single_thread():
    """Run small tensor and BLAS ops (head steps, scikit-learn fits) on one thread: with more, each op
    pays a thread synchronisation that costs ~100x the op itself on a busy machine (measured: 60 ms vs
    0.5 ms per head step on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


def _train_head(encoder, train_features, train_labels, validation_features, validation_labels, num_labels,
                seed, config) -> HeadResult:
    generator = torch.Generator().manual_seed(seed)
    head = CachedFeatureHead(encoder, num_labels, generator)
    x_train, y_train = torch.from_numpy(train_features).float(), torch.from_numpy(train_labels).long()
    head.standardize(x_train)
    x_val, y_val = torch.from_numpy(validation_features).float(), torch.from_numpy(validation_labels).long()
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    best_score, best_epoch, best_state = (-float("inf"),), 0, None
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        head.train()
        for batch in torch.randperm(len(x_train), generator=generator).split(config.batch_size or len(x_train)):
            loss = F.cross_entropy(head(x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        head.eval()
        with torch.no_grad():
            logits = head(x_val)
            validation_loss = F.cross_entropy(logits, y_val).item()
        if config.early_stopping == "macro_f1":  # ties (frequent on small validation sets) go to the lower loss
            predicted = logits.argmax(dim=1).numpy()
            score = (macro_f1_score(predicted, validation_labels, np.arange(num_labels))[0], -validation_loss)
        else:
            score = (-validation_loss,)
        if score > best_score:
            best_score, best_epoch, best_loss = score, epoch, validation_loss
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    head.load_state_dict(best_state)
    return HeadResult(head.eval(), epoch, best_epoch, best_loss)


def head_logits(head: CachedFeatureHead, features: np.ndarray) -> np.ndarray:
    """(n, C) logits of a trained head on (n, M+1, D) cached features."""
    with torch.no_grad():
        return head.eval()(torch.from_numpy(features).float()).numpy()


def to_classification_model(encoder: AstroCoModel, head: CachedFeatureHead,
                            class_names: Sequence[str]) -> AstroCoForSequenceClassification:
    """The frozen encoder and a trained head as one ``AstroCoForSequenceClassification`` (eval mode,
    ``freeze_encoder=True``), ready for ``save_pretrained``; its logits equal :func:`head_logits`."""
    config = copy.deepcopy(encoder.config)
    config.num_labels = len(class_names)
    config.id2label = dict(enumerate(class_names))
    config.label2id = {name: i for i, name in enumerate(class_names)}
    config.freeze_encoder = True
    model = AstroCoForSequenceClassification(config)
    model.astroco.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        if hasattr(head, "layer_weights"):
            model.astroco.layer_weights.copy_(head.layer_weights)
        weight, bias = head.folded_classifier()
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(bias)
    return model.to(next(encoder.parameters()).device).eval()


# ------------------------------------------------------------------------------------------------
# Reference classifiers (scikit-learn)
# ------------------------------------------------------------------------------------------------


def _select_by_validation(make, x_train, y_train, x_val, y_val, num_classes: int, grid: Sequence[float]):
    """Fit ``make(c)`` for each c of ``grid`` on train; keep the best validation macro-F1 (first on ties)."""
    best, best_score = None, -1.0
    for value in grid:
        model = make(value).fit(x_train, y_train)
        score = macro_f1(model.predict(x_val), y_val, num_classes)[0]
        if score > best_score:
            best, best_score = model, score
    return best


def logreg_classifier(x_train, y_train, x_val, y_val, num_classes: int):
    """Standardised logistic regression, C chosen on validation macro-F1 (:data:`LOGREG_C_GRID`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    make = lambda c: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))  # noqa: E731
    return _select_by_validation(make, x_train, y_train, x_val, y_val, num_classes, LOGREG_C_GRID)


def feature_classifier(kind: str, x_train, y_train, x_val, y_val, num_classes: int, seed: int, trees: int):
    """Classifier for the hand-crafted features (NaN period/power of very short curves median-imputed)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "random_forest":
        forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1)
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), forest).fit(x_train, y_train)
    if kind == "logreg":
        make = lambda c: make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),  # noqa: E731
                                       LogisticRegression(C=c, max_iter=5000))
        return _select_by_validation(make, x_train, y_train, x_val, y_val, num_classes, LOGREG_C_GRID)
    raise ValueError(f"feature_classifier must be 'random_forest' or 'logreg', got {kind!r}")


# ------------------------------------------------------------------------------------------------
# The protocol
# ------------------------------------------------------------------------------------------------


@dataclass
class Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def make_splits(labelled: LabelledLightCurves, config: FewShotConfig) -> tuple[dict[int, list[Split]], dict[str, str]]:
    """Row indices of every fold for every N (data layer's :func:`~astroco_hf.data.few_shot_splits`),
    and the N skipped because a class is too small, with the reason."""
    rows = Dataset.from_dict(
        {"object_id": labelled.object_ids, "survey": labelled.table["survey"].to_pylist(),
         "label": labelled.labels.tolist(), "row": list(range(len(labelled)))},
        features=Features({"object_id": Value("string"), "survey": Value("string"),
                           "label": ClassLabel(names=labelled.class_names), "row": Value("int64")}),
    )
    splits, skipped = {}, {}
    for shots in config.shots:
        result = few_shot_splits(rows, shots, n_validation_per_class=config.n_validation_per_class,
                                 n_test_per_class=config.n_test_per_class, folds=config.folds,
                                 seed=config.split_seed, on_small_class="skip")
        if result.skipped_classes:
            needed = shots + result.n_validation_per_class + result.n_test_per_class
            skipped[str(shots)] = "; ".join(
                f"class {name} has {count} objects < {shots} + {result.n_validation_per_class} validation + "
                f"{result.n_test_per_class} test = {needed}" for name, count in result.skipped_classes.items())
            continue
        splits[shots] = [Split(*(np.asarray(fold[part]["row"], dtype=np.int64) for part in ("train", "validation", "test")))
                         for fold in result.folds]
    if not splits:
        raise ValueError(f"no few-shot setting can run on {labelled.name!r} ({labelled.class_counts()}): "
                         + " | ".join(f"N={n}: {reason}" for n, reason in skipped.items()))
    return splits, skipped


@dataclass
class FewShotResult:
    """Everything ``fewshot_results.json`` holds, plus the confusion matrices (method -> N -> (C, C))."""

    record: dict
    confusion: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)


def _summary(runs: list[dict]) -> dict:
    scores = np.array([run["macro_f1"] for run in runs])
    return {"macro_f1_mean": float(scores.mean()),
            "macro_f1_std": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
            "runs": len(runs), "per_run": runs}


def feature_methods(config: FewShotConfig) -> list[tuple[str, str, str]]:
    """``(method, feature set, classifier)`` of every feature row ``config`` asks for, in table order."""
    sets = [name for name in FEATURE_SETS if config.handcrafted or "handcrafted" not in name]
    return [(f"{name}_{_CLASSIFIER_SUFFIX[kind][0]}", name, kind)
            for name in sets for kind in config.feature_classifiers]


def _reference_predictions(pooled: np.ndarray, features: np.ndarray, labels: np.ndarray, split: Split,
                           num_classes: int, config: FewShotConfig, handcrafted: np.ndarray | None = None):
    """Test-set predictions of the rows that do not train the head: logistic regression on the pooled
    embeddings (N, D), and each :func:`feature_methods` row on its feature set, built from the light-curve
    features (N, 50), the seven astropy features ``handcrafted`` (N, 7; required when
    ``config.handcrafted``) and the embeddings. Yields ``(method, predicted (n_test,), seed, extra)``;
    deterministic logistic regressions run once (seed None), random forests once per seed."""
    train, validation, test = split.train, split.validation, split.test
    y_train, y_val = labels[train], labels[validation]
    logreg = logreg_classifier(pooled[train], y_train, pooled[validation], y_val, num_classes)
    yield "logreg_embeddings", logreg.predict(pooled[test]), None, {}
    # ⊕ is concatenation: the classifiers' pipelines standardise every column, embeddings included.
    inputs = {"light_curve": features,
              "astroco_light_curve": np.concatenate([pooled.astype(np.float64), features], axis=1)}
    if config.handcrafted:
        if handcrafted is None:
            raise ValueError("config.handcrafted is set: pass the seven astropy features (handcrafted=...)")
        inputs |= {"handcrafted": handcrafted,
                   "light_curve_handcrafted": np.concatenate([features, handcrafted], axis=1)}
    rows = feature_methods(config)
    for kind in config.feature_classifiers:
        forest = kind == "random_forest"
        for seed in range(config.seeds if forest else 1):
            for method, name, _ in (row for row in rows if row[2] == kind):
                x = inputs[name]
                classifier = feature_classifier(kind, x[train], y_train, x[validation], y_val, num_classes, seed,
                                                config.random_forest_trees)
                yield method, classifier.predict(x[test]), seed if forest else None, {}


def _fold_predictions(encoder: AstroCoModel, embedded: EmbeddingOutput, features: np.ndarray,
                      handcrafted: np.ndarray | None, labels: np.ndarray, split: Split, num_classes: int,
                      config: FewShotConfig):
    """Test-set predictions of every method on one fold: the head once per seed, then
    :func:`_reference_predictions`."""
    layer_means = embedded.layer_means
    for seed in range(config.seeds):
        trained = train_head(encoder, layer_means[split.train], labels[split.train], layer_means[split.validation],
                             labels[split.validation], num_classes, seed=seed, config=config)
        yield ("astroco", head_logits(trained.head, layer_means[split.test]).argmax(axis=1), seed,
               {"epochs": trained.epochs, "best_epoch": trained.best_epoch})
    yield from _reference_predictions(embedded.embeddings, features, labels, split, num_classes, config,
                                      handcrafted)


def _used_rows(splits: dict[int, list[Split]]) -> tuple[np.ndarray, dict[int, list[Split]]]:
    """The rows any split uses (sorted), and the splits re-indexed into them."""
    used = np.unique(np.concatenate([part for folds in splits.values() for split in folds
                                     for part in (split.train, split.validation, split.test)]))
    remap = lambda rows: np.searchsorted(used, rows)  # noqa: E731
    return used, {n: [Split(remap(f.train), remap(f.validation), remap(f.test)) for f in folds]
                  for n, folds in splits.items()}


def run_fewshot(
    embedder: AstroCoEmbedder,
    labelled: LabelledLightCurves,
    config: FewShotConfig | None = None,
    *,
    model_name: str | None = None,
    progress: bool = True,
    feature_cache_dir: str | Path | None = DEFAULT_FEATURE_CACHE,
    inference_path: str = "fp32",
) -> FewShotResult:
    """Run the protocol (module docstring) and return the results; see :func:`write_outputs`.

    Args:
        embedder: the frozen encoder, with its batch size, device and precision.
        labelled: the labelled set (:func:`~astroco_hf.evaluation.benchmarks.load_benchmark`).
        config: protocol and training settings (default ``FewShotConfig()``).
        model_name: how the JSON names the model (default: the encoder's ``name_or_path``).
        progress: progress bars.
        feature_cache_dir: where both feature sets are cached (None: always recompute); a hit skips
            the extraction, so the recorded feature times are then the cache's.
        inference_path: how ``embedder``'s encoder was prepared (:mod:`astroco_hf.precision` path name),
            recorded with the results.
    """
    config = config or FewShotConfig()
    started = time.perf_counter()
    unknown = sorted(set(config.feature_classifiers) - set(FEATURE_CLASSIFIERS))
    if unknown:
        raise ValueError(f"feature_classifiers: unknown {unknown}; choose from {list(FEATURE_CLASSIFIERS)}")
    methods = ["astroco", "logreg_embeddings"] + [method for method, _, _ in feature_methods(config)]
    splits, skipped = make_splits(labelled, config)
    used, splits = _used_rows(splits)
    selected = labelled.subset(used)
    curves = selected.arrays()
    clock = time.perf_counter()
    embedded = embedder.embed(curves, layer_means=True)
    embed_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    features = light_curve_features(curves, cache_dir=feature_cache_dir)
    feature_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    handcrafted = (handcrafted_features(curves, progress=progress, cache_dir=feature_cache_dir)
                   if config.handcrafted else None)
    handcrafted_seconds = time.perf_counter() - clock

    num_classes = len(labelled.class_names)
    results: dict[str, dict[str, dict]] = {method: {} for method in methods}
    confusion: dict[str, dict[int, np.ndarray]] = {method: {} for method in methods}
    bar = tqdm(total=sum(map(len, splits.values())) * config.seeds, desc=f"few-shot {labelled.name}", unit="run",
               disable=not progress)
    with _single_thread():  # hundreds of small fits: see _single_thread
        for shots, folds in splits.items():
            runs: dict[str, list[dict]] = {method: [] for method in methods}
            matrices = {method: np.zeros((num_classes, num_classes), np.int64) for method in methods}
            for fold, split in enumerate(folds):
                sizes = {"n_train": len(split.train), "n_validation": len(split.validation), "n_test": len(split.test)}
                y_test = selected.labels[split.test]
                for method, predicted, seed, extra in _fold_predictions(embedder.model, embedded, features,
                                                                        handcrafted, selected.labels, split,
                                                                        num_classes, config):
                    score, per_class = macro_f1(predicted, y_test, num_classes)
                    runs[method].append({"fold": fold, "seed": seed, "macro_f1": score, "per_class_f1": per_class,
                                         **sizes, **extra})
                    np.add.at(matrices[method], (y_test, predicted), 1)
                bar.update(config.seeds)
            for method in methods:
                results[method][str(shots)] = _summary(runs[method])
                confusion[method][shots] = matrices[method]
    bar.close()

    record = {
        "astroco_hf_version": __version__,
        "benchmark": labelled.name,
        "dataset": {
            "sources": labelled.sources,
            "band": labelled.band,
            "classes": labelled.class_names,
            "objects_per_class": labelled.class_counts(),
            "selection": labelled.selection,
            "cleaning": {"curves_in": labelled.cleaning.total.curves_in, "curves_out": labelled.cleaning.total.curves_out,
                         "points_removed": labelled.cleaning.total.points_removed},
        },
        "model": model_name or embedder.model.name_or_path or type(embedder.model).__name__,
        "protocol": {"shots": list(config.shots), "folds": config.folds, "seeds": config.seeds,
                     "split_seed": config.split_seed, "n_test_per_class": config.n_test_per_class,
                     "n_validation_per_class": config.n_validation_per_class or "max(5, round(0.1 N))",
                     "std": "sample standard deviation (ddof=1) over runs"},
        "results": results,
        "skipped": skipped,
        "methods": {name: METHODS[name] for name in methods},
        "features": {"extractor": EXTRACTOR, "names": list(FEATURE_NAMES),
                     "curves": len(curves), "seconds_per_1000_curves": 1000.0 * feature_seconds / len(curves),
                     **({"handcrafted": {"extractor": HANDCRAFTED_EXTRACTOR,
                                         "names": list(HANDCRAFTED_FEATURE_NAMES),
                                         "seconds_per_1000_curves": 1000.0 * handcrafted_seconds / len(curves)}}
                        if config.handcrafted else {})},
        "training": asdict(config),
        "timing_s": {"embedding": embed_seconds, "features": feature_seconds,
                     **({"handcrafted_features": handcrafted_seconds} if config.handcrafted else {}),
                     "total": time.perf_counter() - started},
        "embedding": {"hidden_size": int(embedded.embeddings.shape[1]), "layers": int(embedded.layer_means.shape[1]),
                      "windows": int(embedded.n_windows.sum()), "device": str(embedder.device),
                      "autocast": str(embedder.autocast_dtype) if embedder.autocast_dtype else None,
                      "inference_path": inference_path},
    }
    return FewShotResult(record, confusion)


# ------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_table(record: dict) -> str:
    """Markdown table: one row per method, one column per N; ``mean ± std`` macro-F1 over the runs, the
    value alone for a single run."""
    shots = [str(n) for n in record["protocol"]["shots"]]
    lines = [f"| {record['benchmark']} ({', '.join(record['dataset']['classes'])}) | "
             + " | ".join(f"N={n}" for n in shots) + " |",
             "|---|" + "---:|" * len(shots)]
    for method, label in record["methods"].items():
        cells = []
        for n in shots:
            entry = record["results"][method].get(n)
            if entry is None:
                cells.append("skipped")
            elif entry["runs"] == 1:
                cells.append(f"{entry['macro_f1_mean']:.3f}")
            else:
                cells.append(f"{entry['macro_f1_mean']:.3f} ± {entry['macro_f1_std']:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    protocol = record["protocol"]
    folds, seeds = protocol["folds"], protocol["seeds"]
    runs = f"{_count(folds, 'fold')} × {_count(seeds, 'seed')}"
    if folds * seeds == 1:
        note = f"Macro-F1 on the test objects of a single run ({runs})"
    else:
        note = f"Macro-F1 on the test objects, mean ± std over {runs}"
        if seeds > 1:
            note += f" (deterministic logistic regressions: over the {_count(folds, 'fold')})"
    note += f"; {protocol['n_test_per_class']} test objects per class."
    skipped = "".join(f" N={n} skipped: {reason}." for n, reason in record["skipped"].items())
    return "\n".join(lines) + "\n\n" + note + skipped + "\n"


def plot_confusion(result: FewShotResult, path: str | Path) -> Path:
    """Row-normalised test confusion matrices summed over runs: methods x N panels, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = result.record
    classes = record["dataset"]["classes"]
    methods = list(result.confusion)
    shots = sorted({n for per_n in result.confusion.values() for n in per_n})
    size = 1.0 + 0.45 * len(classes)
    fig, axes = plt.subplots(len(methods), len(shots), figsize=(size * len(shots) + 1.0, size * len(methods)),
                             squeeze=False, constrained_layout=True)
    for i, method in enumerate(methods):
        for j, n in enumerate(shots):
            ax = axes[i, j]
            counts = result.confusion[method][n]
            fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
            ax.imshow(fractions, vmin=0.0, vmax=1.0, cmap="Blues")
            for (r, c), value in np.ndenumerate(fractions):
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.6 else "black")
            ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
            ax.set_yticks(range(len(classes)), classes, fontsize=7)
            f1 = record["results"][method][str(n)]["macro_f1_mean"]
            ax.set_title(f"{record['methods'][method]}\nN={n}, macro-F1 {f1:.3f}", fontsize=7)
            if j == 0:
                ax.set_ylabel("true")
            if i == len(methods) - 1:
                ax.set_xlabel("predicted")
    fig.suptitle(f"{record['benchmark']}: test confusion (row-normalised, summed over runs)", fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=130, format="png")  # not from the suffix: write_outputs saves to a temporary name
    plt.close(fig)
    return path


def output_paths(out_dir: str | Path) -> dict[str, Path]:
    """The files :func:`write_outputs` writes in ``out_dir``: ``json``, ``table``, ``confusion``."""
    out_dir = Path(out_dir)
    return {"json": out_dir / "fewshot_results.json", "table": out_dir / "fewshot_table.md",
            "confusion": out_dir / "confusion_matrix.png"}


def write_outputs(result: FewShotResult, out_dir: str | Path, *, overwrite: bool = True) -> dict[str, Path]:
    """``fewshot_results.json``, ``fewshot_table.md`` and ``confusion_matrix.png`` in ``out_dir``.

    Each file is written under a temporary name and renamed (never half-written); other files in
    ``out_dir`` are left alone.

    Raises:
        OutputError: one of the files exists and ``overwrite`` is False (checked before writing any).
    """
    paths = output_paths(out_dir)
    for path in paths.values():
        refuse_existing(path, overwrite=overwrite)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    writers = {"json": lambda tmp: tmp.write_text(json.dumps(result.record, indent=2) + "\n"),
               "table": lambda tmp: tmp.write_text(format_table(result.record)),
               "confusion": lambda tmp: plot_confusion(result, tmp)}
    for name, path in paths.items():
        with atomic_output(path, overwrite=overwrite) as temporary:
            writers[name](temporary)
    return paths
