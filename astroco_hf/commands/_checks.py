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
    """:func:`astroco_hf.devices.check_device`, its errors naming the command's flag."""
    from ..devices import check_device as check

    return check(text, flag)


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
    """:func:`astroco_hf.loading.check_model_folder`, its errors naming the command's flag."""
    from ..loading import check_model_folder as check

    check(path, flag)
