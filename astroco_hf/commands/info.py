"""``astroco info``: architecture summary and parameter counts of a preset or a saved model."""

from __future__ import annotations

import argparse
import json

NAME = "info"
HELP = "Show an AstroCo configuration and its parameter counts (a preset or a saved model folder)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default="astroco-s", help="astroco-tiny, astroco-s or astroco-l (default: astroco-s)")
    source.add_argument("--model", metavar="DIR", help="a saved model folder instead of a preset")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def parameter_counts(model) -> dict[str, int]:
    """Parameters of the encoder, of the heads, and in total."""
    encoder = sum(p.numel() for p in model.astroco.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"encoder": encoder, "heads": total - encoder, "total": total}


def run(args: argparse.Namespace) -> int:
    from .. import AstroCoConfig, AstroCoForMaskedReconstruction

    if args.model:
        model = AstroCoForMaskedReconstruction.from_pretrained(args.model)
        config, name = model.config, args.model
    else:
        config, name = AstroCoConfig.from_preset(args.preset), args.preset
        model = AstroCoForMaskedReconstruction(config)
    counts = parameter_counts(model)
    summary = {
        "model": name,
        "d_model": config.d_model,
        "num_layers": config.num_layers,
        "num_heads": config.num_heads,
        "head_dim": config.d_model // config.num_heads,
        "conv_kernel_size": config.conv_kernel_size,
        "ffn_expansion": config.ffn_expansion,
        "max_sequence_length": config.max_sequence_length,
        "parameters": counts,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"AstroCo {name}: {config.num_layers} layers, {config.num_heads} heads x {summary['head_dim']}, "
          f"d_model {config.d_model}, conv kernel {config.conv_kernel_size}, FFN x{config.ffn_expansion}, "
          f"window {config.max_sequence_length}")
    print(f"parameters: {counts['total']:,} ({counts['total'] / 1e6:.2f}M) = encoder {counts['encoder']:,} "
          f"+ regression head {counts['heads']:,}")
    return 0
