"""Loading a saved AstroCo model into another head without transformers' LOAD REPORT for the expected swap.

A pretraining checkpoint (encoder + ``reconstruction_head``) loaded into :class:`AstroCoModel` leaves the
reconstruction head unused, and into :class:`AstroCoForSequenceClassification` also initialises a new
``classifier``: transformers prints a LOAD REPORT table for both, on every ``astroco embed`` / ``fewshot``
/ ``info`` run. Those keys are expected. Encoder keys are not: a missing or unexpected encoder weight
means the folder does not hold the model the caller thinks: then the report is printed as usual. Size
mismatches still raise after the report, as in transformers.

    from astroco_hf.loading import load_pretrained
    encoder = load_pretrained(AstroCoModel, "runs/astroco-tiny")
    classifier = load_pretrained(AstroCoForSequenceClassification, path, num_labels=5)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

from transformers import PreTrainedModel

__all__ = ["load_pretrained", "unexpected_encoder_keys"]

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

    The report is printed as usual when it names an encoder key, or when loading fails (size mismatch).
    """
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
