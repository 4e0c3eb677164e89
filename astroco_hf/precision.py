"""The one ``--precision`` vocabulary of the ``astroco`` commands, and where bf16 is native.

Vocabulary (``astroco embed``, ``fewshot``, ``pretrain``, ``benchmark``):

- ``auto``: training: bf16 autocast where the device multiplies bf16 natively, else fp32. Inference:
  the fastest measured path that keeps the pooled embeddings within cosine 0.999 of fp32
  (:func:`prepare_for_inference`).
- ``fp32``: float32 weights and activations.
- ``bf16``: bf16 autocast (fp32 weights). Where bf16 is emulated it is refused for training and
  warned about for inference (:func:`bf16_problem`).
- ``int8``: inference only: dynamic int8 quantization of the linear layers (weights int8, activations
  quantized per batch), the rest in fp32.

How the model is run (eager PyTorch, ``torch.compile``, ONNX Runtime) is a separate choice, the
inference *backend* (:data:`BACKENDS`); ``auto`` picks both.

Why bf16 has to be checked: a CPU without AVX512-BF16 or AMX (AVX2 only, as on many laptops and older
clusters) has no bf16 multiply; oneDNN converts every operand and product. Measured on the 2-core
AVX2-only AMD EPYC of the project machine (torch 2.13, under load from other jobs), one 2048 x 2048
matrix product: 85.9 GFLOP/s in fp32 and 0.16 GFLOP/s in bf16 (0.2 s against 106 s), ~500x slower.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

__all__ = [
    "PRECISIONS",
    "TRAINING_PRECISIONS",
    "INFERENCE_PRECISIONS",
    "BACKENDS",
    "check_precision",
    "native_bf16",
    "bf16_problem",
    "training_uses_bf16",
]

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")
TRAINING_PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
INFERENCE_PRECISIONS: tuple[str, ...] = PRECISIONS
BACKENDS: tuple[str, ...] = ("eager", "compile", "onnx")


def check_precision(precision: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    """``precision`` itself, or a ``ValueError`` naming it and the allowed values."""
    if precision not in allowed:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(allowed)}")
    return precision


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """CPU feature flags of /proc/cpuinfo (x86 ``flags``, aarch64 ``Features``); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` multiplies bf16 in hardware (so bf16 is faster than fp32, not ~500x slower).

    CPU: AVX512-BF16 (``torch.cpu._is_avx512_bf16_supported``), AMX-BF16 or the aarch64 ``bf16``
    extension. CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later). Other devices: False.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        flags = _cpu_flags()
        return torch.cpu._is_avx512_bf16_supported() or "amx_bf16" in flags or "bf16" in flags
    return False


def bf16_problem(device: str | torch.device = "cpu") -> str | None:
    """One line saying why bf16 is a bad idea on ``device``, or None where bf16 is native."""
    device = torch.device(device)
    if native_bf16(device):
        return None
    if device.type == "cpu":
        return ("bf16 is emulated on this CPU (no AVX512-BF16 or AMX flag): its matrix products run hundreds of "
                "times slower than fp32 (measurement in astroco_hf.precision); use --precision fp32 or auto")
    return f"bf16 is not supported natively on {device}; use --precision fp32 or auto"


def training_uses_bf16(precision: str, device: str | torch.device = "cpu") -> bool:
    """Resolve a training ``--precision`` to bf16 autocast on/off; bf16 where emulated is refused.

    Raises:
        ValueError: unknown precision, or ``bf16`` on a device without native bf16 (one line, with the cause).
    """
    check_precision(precision, TRAINING_PRECISIONS)
    if precision == "auto":
        return native_bf16(device)
    if precision == "bf16":
        problem = bf16_problem(device)
        if problem is not None:
            raise ValueError(f"--precision bf16 refused for training: {problem}")
        return True
    return False
