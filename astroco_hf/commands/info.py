"""``astroco info``: architecture summary and parameter counts of a preset or a saved model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# What each model class puts on the encoder, as `astroco info` names it.
HEAD_NAMES = {
    "AstroCoModel": "no head",
    "AstroCoForMaskedReconstruction": "regression head",
    "AstroCoForSequenceClassification": "classification head",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default="astroco-s", help="astroco-tiny, astroco-s or astroco-l (default: astroco-s)")
    source.add_argument("--model", metavar="DIR", help="a saved model folder instead of a preset")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def parameter_counts(model) -> dict[str, int]:
    """Parameters of the encoder, of the heads, and in total."""
    encoder = model.astroco if hasattr(model, "astroco") else model
    encoder_count = sum(p.numel() for p in encoder.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"encoder": encoder_count, "heads": total - encoder_count, "total": total}


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import AstroCoConfig, AstroCoForMaskedReconstruction, modeling_astroco
    from ..loading import saved_model_class
    from ._checks import check_model_folder

    if args.model:
        if not (Path(args.model) / "config.json").is_file():
            raise FileNotFoundError(2, "no model folder (config.json missing)", args.model)
        check_model_folder(args.model)  # weights of the shapes config.json describes (their headers only)
        config = AstroCoConfig.from_pretrained(args.model)
        class_name, name = saved_model_class(config), args.model
        # Only the architecture is summarised: built on the meta device, without reading the weights.
        with torch.device("meta"):
            model = getattr(modeling_astroco, class_name)(config)
    else:
        config, name = AstroCoConfig.from_preset(args.preset), args.preset
        class_name = "AstroCoForMaskedReconstruction"
        model = AstroCoForMaskedReconstruction(config)
    counts = parameter_counts(model)
    summary = {
        "model": name,
        "architecture": class_name,
        "d_model": config.d_model,
        "num_layers": config.num_layers,
        "num_heads": config.num_heads,
        "head_dim": config.d_model // config.num_heads,
        "conv_kernel_size": config.conv_kernel_size,
        "ffn_expansion": config.ffn_expansion,
        "max_sequence_length": config.max_sequence_length,
        "parameters": counts,
    }
    if class_name == "AstroCoForSequenceClassification":
        summary["num_labels"] = config.num_labels
        summary["labels"] = [config.id2label[i] for i in sorted(config.id2label)]
        summary["freeze_encoder"] = config.freeze_encoder
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"AstroCo {name} ({class_name}): {config.num_layers} layers, {config.num_heads} heads x "
          f"{summary['head_dim']}, d_model {config.d_model}, conv kernel {config.conv_kernel_size}, "
          f"FFN x{config.ffn_expansion}, window {config.max_sequence_length}")
    print(f"parameters: {counts['total']:,} ({counts['total'] / 1e6:.2f}M) = encoder {counts['encoder']:,} "
          f"+ {HEAD_NAMES[class_name]} {counts['heads']:,}")
    if "labels" in summary:
        print(f"labels ({config.num_labels}): {', '.join(map(str, summary['labels']))}"
              f"{'; encoder frozen' if config.freeze_encoder else ''}")
    return 0
