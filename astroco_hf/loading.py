"""Loading a saved AstroCo model: checked first, then into another head without transformers' LOAD REPORT
for the expected swap.

:func:`check_model_folder` reads a folder's ``config.json`` and the safetensors headers (no tensor) and
refuses, in one line, a missing folder, a file, a folder without ``config.json`` or weights, and weights of
another size than ``config.json`` describes (transformers would print a LOAD REPORT table, then raise).

A pretraining checkpoint (encoder + ``reconstruction_head``) loaded into :class:`AstroCoModel` leaves the
reconstruction head unused (the model declares it, so plain transformers stays quiet too), and into
:class:`AstroCoForSequenceClassification` initialises a new ``classifier``: transformers prints a LOAD
REPORT table for that, on every ``astroco fewshot`` run. Those keys are expected. Encoder keys are not: a
missing or unexpected encoder weight means the folder does not hold the model the caller thinks: then the
report is printed as usual.

    from astroco_hf.loading import load_pretrained
    encoder = load_pretrained(AstroCoModel, "runs/astroco-tiny")
    classifier = load_pretrained(AstroCoForSequenceClassification, path, num_labels=5)
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, TypeVar

from transformers import PretrainedConfig, PreTrainedModel

from .errors import ConfigError

__all__ = ["check_model_folder", "load_pretrained", "saved_model_class", "unexpected_encoder_keys"]

# The classes a saved folder can hold (``config.architectures``), from the bare encoder to the heads.
MODEL_CLASSES = ("AstroCoModel", "AstroCoForMaskedReconstruction", "AstroCoForSequenceClassification")

Model = TypeVar("Model", bound=PreTrainedModel)

# The logger transformers' loading report is written to (transformers.utils.loading_report, called
# from modeling_utils with modeling_utils' logger). Its level must stay as it is: modeling_utils runs an
# extra tensor-parallel check, with its own warning, when that level is raised.
_REPORT_LOGGER = "transformers.modeling_utils"


class _HoldLoadReport(logging.Filter):
    """Keeps transformers' LOAD REPORT records back instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if "LOAD REPORT" in record.getMessage():
            self.held.append(record)
            return False
        return True


def load_pretrained(model_class: type[Model], path: str | Path, **kwargs: Any) -> Model:
    """``model_class.from_pretrained(path, **kwargs)`` with the LOAD REPORT silenced when it lists head keys only.

    A local folder is checked first (:func:`check_model_folder`). The report is printed as usual when it
    names an encoder key.

    Raises:
        FileNotFoundError: ``path`` is no folder and cannot be a Hub repository id.
        ConfigError: ``path`` is a file, lacks ``config.json`` or weights, or its weights do not match it.
    """
    check_model_folder(path)
    report_logger = logging.getLogger(_REPORT_LOGGER)
    hold = _HoldLoadReport()
    report_logger.addFilter(hold)
    expected = False
    try:
        model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
        expected = not (unexpected_encoder_keys(model, info["missing_keys"], info["unexpected_keys"])
                        or info["mismatched_keys"])
    finally:
        report_logger.removeFilter(hold)
        if not expected:  # a failed load, or encoder keys: show transformers' report after all
            for record in hold.held:
                report_logger.handle(record)
    return model


def unexpected_encoder_keys(model: PreTrainedModel, missing: set[str], unexpected: set[str]) -> list[str]:
    """The keys of a load that are not explained by a head swap, each tagged ``(missing)`` / ``(unexpected)``.

    A key belongs to a head when it lies outside the encoder: not under ``model.base_model_prefix`` in a
    model with a head, not under one of the encoder's own submodules or parameters in the bare encoder.
    """
    encoder = model.base_model
    prefix = model.base_model_prefix
    roots = {name for name, _ in encoder.named_children()} | {name for name, _ in encoder.named_parameters(recurse=False)}

    def in_encoder(key: str) -> bool:
        if encoder is not model:  # a model with a head: the encoder's keys carry the prefix
            return key.startswith(f"{prefix}.")
        return key.removeprefix(f"{prefix}.").split(".")[0] in roots

    return sorted([f"{key} (missing)" for key in missing if in_encoder(key)]
                  + [f"{key} (unexpected)" for key in unexpected if in_encoder(key)])


def saved_model_class(config: PretrainedConfig) -> str:
    """The AstroCo class a saved folder holds, from ``config.architectures`` (saved by ``save_pretrained``).

    A folder without it (or naming another class) is taken for the pretraining model, the class
    ``astroco pretrain`` writes.
    """
    for name in config.architectures or ():
        if name in MODEL_CLASSES:
            return name
    return "AstroCoForMaskedReconstruction"


def check_model_folder(path: str | Path, flag: str = "model") -> None:
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

    from . import modeling_astroco
    from .configuration_astroco import AstroCoConfig

    config = AstroCoConfig.from_pretrained(path)
    index = path / "model.safetensors.index.json"
    if index.is_file():
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
