"""Which torch device a user's name for one means on this machine, refused in one line when it does not
exist here (a misspelled type, CUDA without CUDA, an index past the visible GPUs) instead of torch's
assertion deep inside the first ``.to(device)``."""

from __future__ import annotations

import torch

from .errors import ConfigError

__all__ = ["check_device"]


def check_device(text: str | torch.device | None, flag: str = "device") -> torch.device:
    """The ``torch.device`` of ``text`` (default: cuda when available, else cpu), refused when it does not
    exist here: a misspelled type, CUDA on a machine without it, an index past the visible GPUs."""
    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def given(value: str, quoted: bool = False) -> str:  # as written: `--device cuda` (CLI), `device='cuda'` (Python)
        if flag.startswith("-"):
            return f"{flag} {value!r}" if quoted else f"{flag} {value}"
        return f"{flag}={value!r}"

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{given(str(text), quoted=True)} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ConfigError(f"{given(str(text))}: {why}; use {given('cpu')}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{given(str(text))}: only {torch.cuda.device_count()} CUDA device(s) visible; "
                              f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    elif device.type not in ("cpu", "mps", "xpu"):
        raise ConfigError(f"{given(str(text), quoted=True)}: astroco runs on cpu or cuda (also mps, xpu)")
    return device
