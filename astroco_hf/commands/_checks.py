"""Checks of a command's flags that argparse does not express (ranges, devices, output files, model
folders), run at the start of ``run`` before any work or output. Each failure is a user error naming the
flag and what to do (:class:`~astroco_hf.errors.ConfigError`, :class:`~astroco_hf.errors.OutputError` or
``FileNotFoundError``): one line at the CLI, exit status 2.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError, OutputError

__all__ = ["check_at_least", "check_device", "check_model_folder", "check_output_file"]


def check_at_least(minimum: float, **flags: float | Iterable[float] | None) -> None:
    """Every value of each ``--flag`` (keyword ``flag_name``; a list for ``nargs`` flags) is ``>= minimum``.

    ``None`` (a flag left unset) passes.
    """
    for name, value in flags.items():
        values = [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in values if v < minimum]
        if bad:
            shown = value if isinstance(value, (list, tuple)) else bad[0]
            raise ConfigError(f"--{name.replace('_', '-')} must be >= {minimum:g}, got {shown}")


def check_device(text: str | None, flag: str = "--device"):
    """The ``torch.device`` of ``text`` (default: cuda when available, else cpu), refused when it does not
    exist here: a misspelled type, CUDA on a machine without it, an index past the visible GPUs."""
    import torch

    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{flag} {text!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ConfigError(f"{flag} {text}: {why}; use {flag} cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{flag} {text}: only {torch.cuda.device_count()} CUDA device(s) visible; "
                              f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    elif device.type not in ("cpu", "mps", "xpu"):
        raise ConfigError(f"{flag} {text!r}: astroco runs on cpu or cuda (also mps, xpu)")
    return device


def check_output_file(path: str | Path | None, flag: str) -> None:
    """``path`` can be written as a file: not a folder, its parent an existing writable folder."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; name the file to write")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"{flag} {path}: {parent} is not an existing folder; create it or choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: {parent} is not writable; choose another path")


def check_model_folder(path: str | Path, flag: str = "--model") -> None:
    """A local model folder holds a readable ``config.json`` and weights of the shapes it describes.

    Catches, before any work, a folder of another size's weights (transformers would print a LOAD REPORT
    table and raise), a missing weights file, and a file or data folder passed as the model. A path that
    is not a local folder is left to ``from_pretrained`` (a Hub repository id), unless it cannot be one
    (absolute, ``./``, ``~``, or more than one ``/``): then ``FileNotFoundError``.
    """
    text = os.fspath(path)
    path = Path(path)
    if not path.exists():
        if path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:  # cannot be a Hub id
            raise FileNotFoundError(2, f"{flag}: no such model folder", text)
        return  # a Hub id (ORG/NAME): from_pretrained's error when it does not exist, one line at the CLI
    if not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; pass the model folder (config.json + model.safetensors)")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{flag} {path} is not a model folder (no config.json); pass a folder written by "
                          "`astroco pretrain` / save_pretrained")
    import torch
    from safetensors import safe_open

    from .. import AstroCoConfig, modeling_astroco
    from .info import saved_model_class

    config = AstroCoConfig.from_pretrained(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        import json

        files = sorted({path / name for name in json.loads(index.read_text())["weight_map"].values()})
    else:
        files = [path / "model.safetensors"]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"{flag} {path}: no weights ({missing[0].name} missing)")
    with torch.device("meta"):
        model = getattr(modeling_astroco, saved_model_class(config))(config)
    prefix = f"{model.base_model_prefix}."
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    expected |= {name.removeprefix(prefix): shape for name, shape in expected.items()}  # bare-encoder files
    for file in files:
        with safe_open(file, framework="pt") as weights:  # the header only: no tensor is read
            for name in weights.keys():
                shape = tuple(weights.get_slice(name).get_shape())
                if name in expected and expected[name] != shape:
                    raise ConfigError(
                        f"{flag} {path}: {file.name} does not match its config.json ({name}: {list(shape)} in the "
                        f"weights, {list(expected[name])} from config.json d_model={config.d_model}, "
                        f"num_layers={config.num_layers}); put the config.json saved with these weights beside them")
