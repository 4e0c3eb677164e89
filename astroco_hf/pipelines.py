"""Make a saved AstroCo folder usable by ``AutoFeatureExtractor`` and ``transformers.pipeline``.

transformers' built-in ``"feature-extraction"`` pipeline tokenizes text, so AstroCo declares its own
pipelines in ``config.json`` (``custom_pipelines``, read by ``transformers.pipeline`` before its
built-in tasks) and ships their code (``pipeline_astroco.py``) and the feature extractor
(``preprocessor_config.json``, ``feature_extraction_astroco.py``, ``windowing.py``) beside the weights.
Registering the tasks globally with ``PIPELINE_REGISTRY`` instead would replace the text
feature-extraction pipeline for every other model in the process. After
:func:`save_inference_files`::

    pipeline("feature-extraction", model=DIR, trust_remote_code=True)          # any AstroCo folder
    pipeline("light-curve-classification", model=DIR, trust_remote_code=True) # a fine-tuned classifier

work with or without the package installed (with it, ``pipeline_class=AstroCoFeatureExtractionPipeline``
avoids ``trust_remote_code``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers.dynamic_module_utils import custom_object_save

from .feature_extraction_astroco import AstroCoFeatureExtractor
from .pipeline_astroco import AstroCoClassificationPipeline, AstroCoFeatureExtractionPipeline, encode_windows

__all__ = [
    "CLASSIFICATION_TASK",
    "FEATURE_EXTRACTION_TASK",
    "AstroCoClassificationPipeline",
    "AstroCoFeatureExtractionPipeline",
    "custom_pipelines",
    "encode_windows",
    "save_inference_files",
]

FEATURE_EXTRACTION_TASK = "feature-extraction"  # also the model card's pipeline_tag
CLASSIFICATION_TASK = "light-curve-classification"


def custom_pipelines(architectures: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``config.json``'s ``custom_pipelines`` for a model of these architectures: feature extraction for
    every AstroCo checkpoint, classification for ``AstroCoForSequenceClassification``."""
    tasks = {FEATURE_EXTRACTION_TASK: {"impl": f"pipeline_astroco.{AstroCoFeatureExtractionPipeline.__name__}",
                                       "pt": ["AutoModel"]}}
    if "AstroCoForSequenceClassification" in architectures:
        tasks[CLASSIFICATION_TASK] = {"impl": f"pipeline_astroco.{AstroCoClassificationPipeline.__name__}",
                                      "pt": ["AutoModelForSequenceClassification"]}
    return tasks


def save_inference_files(folder: str | Path, feature_extractor: AstroCoFeatureExtractor | None = None) -> list[Path]:
    """Add the feature extractor and the pipelines to a folder written by ``model.save_pretrained``.

    Writes ``preprocessor_config.json`` (with its ``auto_map``) and the remote code it needs, copies
    ``pipeline_astroco.py``, and adds ``custom_pipelines`` to ``config.json``.

    Args:
        folder: a saved AstroCo model.
        feature_extractor: default: windows of the model's ``max_sequence_length``.

    Returns:
        The files written.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json: save the model with save_pretrained first")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("model_type") != "astroco":
        raise ValueError(f"{config_path} has model_type {config.get('model_type')!r}, not 'astroco'")
    if feature_extractor is None:
        feature_extractor = AstroCoFeatureExtractor(window_length=config["max_sequence_length"])
    if feature_extractor.window_length > config["max_sequence_length"]:
        raise ValueError(f"feature extractor windows of {feature_extractor.window_length} points exceed the model's "
                         f"max_sequence_length {config['max_sequence_length']}")
    written = [Path(p) for p in feature_extractor.save_pretrained(folder)]
    written += [Path(p) for p in custom_object_save(AstroCoFeatureExtractionPipeline, folder)]
    config["custom_pipelines"] = custom_pipelines(config.get("architectures") or [])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return list(dict.fromkeys([*written, config_path]))
