"""``astroco export``: a saved AstroCo encoder in a serving format (ONNX, loadable by ``light_curve.embed``)."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=("onnx",), help="export format")
    parser.add_argument("--model", required=True, metavar="DIR", help="saved AstroCo model folder (any head)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 17 (default: 18)")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="largest ONNX Runtime - PyTorch difference allowed on real windows (default: 1e-4)")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an existing output folder")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import OutputError, UserError
    from ..export.onnx import export_folder
    from ._checks import check_model_folder

    out = Path(args.out)
    if out.is_file():
        raise OutputError(f"--out {out} is a file; export writes a folder (astroco.onnx and its files)")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise UserError(f"output folder {out} is not empty; pass --overwrite to replace its files")
    if args.opset < 17:
        raise UserError(f"--opset must be >= 17 (LayerNormalization), got {args.opset}")
    check_model_folder(args.model)
    record = export_folder(args.model, out, opset=args.opset, atol=args.atol)
    check = record["verification"]
    print(f"wrote {out / record['file']} (opset {record['opset']}, dynamic batch, window "
          f"{record['inputs']['times'][1]}); ONNX Runtime vs PyTorch on {check['windows']}: max |diff| "
          + ", ".join(f"{name} {diff:.2e}" for name, diff in check["max_abs_diff"].items()))
    print(json.dumps({"light_curve.embed": record["light_curve_embed"]}))
    return 0
