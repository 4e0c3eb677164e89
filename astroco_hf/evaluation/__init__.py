"""Embeddings and few-shot evaluation of AstroCo encoders.

* :class:`AstroCoEmbedder` / :func:`embed`: one vector per light curve of any length (windows of the
  data layer, batched by length, point-weighted mean), per-window and per-layer outputs, streaming to
  parquet.
* :func:`run_fewshot`: the paper's frozen-encoder few-shot protocol with reference rows on the same
  splits (logistic regression on the embeddings; a random forest and a logistic regression on the
  ``light-curve`` features, the seven astropy features, both, and embeddings ⊕ ``light-curve`` features),
  on :data:`BENCHMARKS` or any labelled source; :func:`write_outputs` writes JSON, a markdown table and a
  confusion-matrix PNG.
* :func:`finetune_classifier`: ``AstroCoForSequenceClassification`` with ``transformers.Trainer``
  (:func:`labelled_windows` + :class:`WindowClassificationCollator` for a Trainer of your own).
* :func:`clean_inputs`: counted cleaning of raw in-memory light curves before embedding.
* :func:`light_curve_features` and :func:`handcrafted_features` (the two reference feature sets);
  :data:`MACRO_F1_PATH`: the macro-F1 ``evaluate`` module (offline).
"""

from .benchmarks import BENCHMARKS, Benchmark, LabelledLightCurves, load_benchmark, load_labelled
from .embed import AstroCoEmbedder, EmbeddingOutput, ParquetSummary, WindowEmbeddings, embed
from .features import FEATURE_NAMES, HANDCRAFTED_FEATURE_NAMES, handcrafted_features, light_curve_features
from .fewshot import (
    MACRO_F1_PATH,
    CachedFeatureHead,
    FewShotConfig,
    FewShotResult,
    format_table,
    load_macro_f1,
    run_fewshot,
    to_classification_model,
    train_head,
    write_outputs,
)
from .finetune import (
    CLASSIFICATION_RESULTS,
    FineTuneResult,
    WindowClassificationCollator,
    finetune_classifier,
    labelled_windows,
    predict_curves,
)
from .inputs import LightCurveArrays, as_arrays, clean_inputs

__all__ = [
    "AstroCoEmbedder",
    "EmbeddingOutput",
    "WindowEmbeddings",
    "ParquetSummary",
    "embed",
    "LightCurveArrays",
    "as_arrays",
    "clean_inputs",
    "BENCHMARKS",
    "Benchmark",
    "LabelledLightCurves",
    "load_benchmark",
    "load_labelled",
    "FEATURE_NAMES",
    "HANDCRAFTED_FEATURE_NAMES",
    "handcrafted_features",
    "light_curve_features",
    "MACRO_F1_PATH",
    "load_macro_f1",
    "FewShotConfig",
    "FewShotResult",
    "CachedFeatureHead",
    "train_head",
    "to_classification_model",
    "run_fewshot",
    "format_table",
    "write_outputs",
    "CLASSIFICATION_RESULTS",
    "FineTuneResult",
    "WindowClassificationCollator",
    "finetune_classifier",
    "labelled_windows",
    "predict_curves",
]
