"""User errors: bad input that the user can fix, as opposed to bugs.

Every ``astroco`` command turns a :class:`UserError` (and the common foreign errors listed in
:func:`astroco_hf.cli.describe_user_error`) into exit status 2 and one line on stderr; ``--debug`` or
``ASTROCO_DEBUG=1`` shows the traceback instead. Library code raises the most specific class below; each
is also a ``ValueError`` (or ``OSError`` for outputs) so existing ``except ValueError`` callers keep
working. The message names the offending file / light curve / key and says what to do.

Warnings the user should read (something runs, but not as asked or not as fast as expected) are an
:class:`AstroCoWarning`; the CLI prints each distinct one once, in one line.

This module imports nothing heavy, so the CLI can use it before torch is loaded.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AstroCoWarning", "ConfigError", "InputDataError", "OutputError", "PrecisionWarning", "PretrainingConfigError",
    "PretrainingInputError", "TrainingInterrupted", "UserError", "closest",
]


class UserError(Exception):
    """Base of the errors a user can fix; ``exit_code`` is the status the CLI exits with."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """An unknown key, a value of the wrong type or out of range in flags, a config file or model overrides."""


class InputDataError(UserError, ValueError):
    """Unreadable or unusable input data: the message names the file or light curve and the field."""


class OutputError(UserError, OSError):
    """An output that cannot be written: unwritable, locked by another run, or existing without --overwrite."""


class PretrainingInputError(UserError, ValueError):
    """Bad arguments, config file, data or output folder of `astroco pretrain`: raised before training starts.

    Kept for callers of :mod:`astroco_hf.training` (``from astroco_hf.training import PretrainingInputError``);
    :class:`ConfigError` and the pretraining checks raise subclasses of it.
    """


class PretrainingConfigError(PretrainingInputError, ConfigError):
    """A pretraining argument problem (unknown key, wrong type, inconsistent values)."""


class TrainingInterrupted(UserError):
    """A run stopped on SIGTERM / SIGINT after keeping its work (pretraining: a checkpoint; embed: the shards
    written); the message says how to resume.

    ``exit_code`` follows the shell convention 128 + signal number (143 for SIGTERM, 130 for SIGINT).
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number


class AstroCoWarning(UserWarning):
    """Base of astroco_hf's warnings to the user: ``astroco COMMAND: warning: MESSAGE`` at the CLI (once each)."""


class PrecisionWarning(AstroCoWarning):
    """A precision that runs but not as intended, e.g. bf16 on a device that emulates it (slow)."""


def closest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest valid name (difflib), or ``""`` when none is close."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
