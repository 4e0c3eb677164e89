"""Analytic FLOP count of AstroCo, for achieved FLOP/s and model FLOP utilisation (MFU).

Counts the multiply-adds of matrix products and convolutions as 2 FLOPs each (the MFU convention of
the PaLM / Megatron papers); element-wise work (activations, norms, softmax, sinusoids) is left out,
so MFU says how well the hardware's matrix units are used. A training step costs 3x the forward
(the backward computes gradients with respect to both inputs and weights).
"""

from __future__ import annotations

from ..configuration_astroco import AstroCoConfig

__all__ = ["forward_flops", "training_step_flops", "PEAK_BF16_TFLOPS", "peak_bf16_flops"]

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, matched against torch.cuda.get_device_name().
# Order matters: the first substring that matches wins.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM and NVL report "H100 80GB HBM3" / "H100 NVL"
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
)


def peak_bf16_flops(device_name: str) -> float | None:
    """Dense bf16 peak in FLOP/s for a CUDA device name, or None when unknown."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops * 1e12
    return None


def forward_flops(config: AstroCoConfig, length: int, with_head: bool = True) -> dict[str, float]:
    """FLOPs of one forward pass over one window of `length` valid steps, by component and in total."""
    d, t, k = config.d_model, length, config.conv_kernel_size
    part = d // 2 if config.input_fusion == "concat" else d
    hidden = config.ffn_expansion * d
    flops = {
        "embedding": 2 * t * (2 * part + d * d),
        "attention_projections": 2 * t * (3 * d * d + d * d) * config.num_layers,
        "attention_scores": 2 * 2 * t * t * d * config.num_layers,  # QK^T and AV
        "conv_module": (2 * t * (2 * d * d + d * d) + 2 * t * d * k) * config.num_layers if config.use_conv_module else 0,
        "feed_forward": 2 * t * d * hidden * (3 if config.ffn_type == "gated" else 2) * config.num_layers,
        "head": 2 * t * d if with_head else 0,
    }
    flops["total"] = float(sum(flops.values()))
    return flops


def training_step_flops(config: AstroCoConfig, length: int) -> float:
    """FLOPs of one training step (forward + backward) over one window with the regression head."""
    return 3.0 * forward_flops(config, length, with_head=True)["total"]
