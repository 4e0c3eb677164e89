"""Masked-reconstruction pretraining of AstroCo on `transformers.Trainer` (`astroco pretrain`).

    from astroco_hf.training import pretrain, resolve_arguments
    result = pretrain(resolve_arguments("astroco-tiny", output_dir="runs/tiny"))

Names are imported from their submodules on first use, so that reading the recipes (``astroco pretrain
--help``) does not import Trainer.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "StopOnSignalCallback": "callbacks",
    "TimeBudgetCallback": "callbacks",
    "WindowEpochCallback": "callbacks",
    "DeviceWindows": "device_data",
    "PretrainingCollator": "data",
    "PretrainingData": "data",
    "TrainingWindows": "data",
    "build_pretraining_data": "data",
    "load_lightcurves": "data",
    "split_objects": "data",
    "MaskedReconstructionMetric": "metrics",
    "reconstruction_scores": "metrics",
    "PretrainingResult": "pretrain",
    "build_trainer": "pretrain",
    "build_training_arguments": "pretrain",
    "check_output_dir": "pretrain",
    "format_summary": "pretrain",
    "pretrain": "pretrain",
    "RECIPES": "recipes",
    "PretrainingArgumentParser": "recipes",
    "PretrainingArguments": "recipes",
    "PretrainingInputError": "recipes",
    "load_config_file": "recipes",
    "resolve_arguments": "recipes",
    "AstroCoTrainer": "trainer",
    "ReconstructionMetrics": "trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
