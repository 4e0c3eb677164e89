"""``astroco pretrain``: masked-reconstruction pretraining on `transformers.Trainer`.

Every field of :class:`~astroco_hf.training.recipes.PretrainingArguments` is a flag (``_`` -> ``-``);
values resolve as: dataclass defaults < ``--preset`` recipe < ``--config FILE`` < explicit flags.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any

NAME = "pretrain"
HELP = "Pretrain AstroCo by masked reconstruction (Trainer; CPU, one GPU, or multi-GPU via torchrun/accelerate)."

EPILOG = """examples:
  astroco pretrain                                          # astroco-tiny on the embedded MACHO sample (CPU minutes)
  astroco pretrain --preset astroco-s --data runs/macho_prepared --output-dir runs/s
  astroco pretrain --config configs/pretrain/cpu_public_data.yaml --max-time-minutes 50
  astroco pretrain --config runs/s/training_config.json --resume   # continue a run from its last checkpoint
  torchrun --nproc_per_node 4 -m astroco_hf.cli pretrain --preset astroco-s --data DIR
  accelerate launch --config_file configs/accelerate/multi_gpu_4.yaml -m astroco_hf.cli pretrain --preset astroco-s --data DIR
"""

_METAVARS = {"data": "PATH", "bands": "BAND", "output_dir": "DIR", "preset": "NAME", "warmup_steps": "NUMBER",
             "lr_scheduler_type": "NAME", "eval_strategy": "{epoch,steps}"}


def _parse_pair(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, booleans, null), else a string."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _none_or(kind: type) -> typing.Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dataclasses import MISSING, fields

    from ..training.recipes import RECIPES, PretrainingArguments

    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file of pretraining arguments (see configs/pretrain/)")
    hints = typing.get_type_hints(PretrainingArguments)
    for item in fields(PretrainingArguments):
        flag = "--" + item.name.replace("_", "-")
        default = item.default if item.default is not MISSING else item.default_factory()
        per_preset = {name: recipe[item.name] for name, recipe in RECIPES.items() if item.name in recipe}
        if per_preset:
            shown = ", ".join(f"{name}: {per_preset.get(name, default)}" for name in RECIPES)
            help_text = f"{item.metadata.get('help', '')} ({shown})"
        else:
            help_text = f"{item.metadata.get('help', '')} (default: {default})"
        kind = hints[item.name]
        # SUPPRESS: only flags given on the command line override the preset and the config file.
        common = {"dest": item.name, "default": argparse.SUPPRESS, "help": help_text}
        args = typing.get_args(kind)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), kind) if isinstance(kind, types.UnionType) else kind
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **common)
        elif typing.get_origin(base) is list:
            parser.add_argument(flag, nargs="+", metavar=_METAVARS.get(item.name, "VALUE"), **common)
        elif typing.get_origin(base) is dict:
            parser.add_argument(flag, nargs="+", type=_parse_pair, metavar="KEY=VALUE", **common)
        else:
            parse = _number if item.name == "warmup_steps" else base
            parser.add_argument(flag, type=_none_or(parse) if optional else parse,
                                metavar=_METAVARS.get(item.name, base.__name__.upper()), **common)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..training import PretrainingInputError, pretrain, resolve_arguments

    overrides = {key: value for key, value in vars(args).items() if key not in ("config", "command", "_run")}
    if "model_overrides" in overrides:
        overrides["model_overrides"] = dict(overrides["model_overrides"])
    try:
        pretraining_args = resolve_arguments(config_file=args.config, **overrides)
        pretrain(pretraining_args)
    except (PretrainingInputError, FileNotFoundError) as error:
        # Bad flags, config file, data or output folder: all detected before training starts.
        # (Errors raised while training propagate with their traceback.)
        print(f"astroco pretrain: error: {error}", file=sys.stderr)
        return 2
    return 0
