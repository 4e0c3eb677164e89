"""``astroco embed``: one embedding per light curve (or per window), streamed to parquet."""

from __future__ import annotations

import argparse

NAME = "embed"
HELP = "Embed light curves of any length with a saved AstroCo model and write them to parquet."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="saved AstroCo model folder (pretraining or classification)")
    parser.add_argument("--data", required=True, nargs="+", metavar="PATH",
                        help="parquet/CSV files, folders of them, or a folder written by `astroco prepare` / save_to_disk")
    parser.add_argument("--out", required=True, metavar="FILE", help="output parquet file (e.g. embeddings.parquet)")
    parser.add_argument("--batch-size", type=int, default=256, help="windows per forward pass (default: 256)")
    parser.add_argument("--chunk-size", type=int, default=2048,
                        help="light curves read, embedded and written at a time; bounds memory (default: 2048)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")
    parser.add_argument("--bf16", action="store_true", help="run the encoder under bfloat16 autocast")
    parser.add_argument("--per-window", action="store_true", help="one row per 200-point window instead of per light curve")
    parser.add_argument("--no-clean", action="store_true",
                        help="skip the data layer's counted cleaning (the input must then be clean: NaN or empty curves raise)")
    parser.add_argument("--column", action="append", default=[], metavar="FIELD=NAME",
                        help="column names of generic files, e.g. --column time=mjd --column mag=m (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import CleaningConfig, ColumnMap
    from ..evaluation import AstroCoEmbedder

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    embedder = AstroCoEmbedder.from_pretrained(
        args.model, batch_size=args.batch_size, device=device,
        autocast_dtype=torch.bfloat16 if args.bf16 else None, progress=not args.no_progress,
    )
    summary = embedder.to_parquet(
        args.data, args.out, chunk_size=args.chunk_size, per_window=args.per_window,
        cleaning=None if args.no_clean else CleaningConfig(), columns=ColumnMap.from_pairs(args.column),
    )
    if summary.cleaning is not None:
        print(summary.cleaning.to_text())
    rate = summary.windows / summary.seconds if summary.seconds else float("nan")
    print(f"wrote {summary.rows:,} rows ({summary.curves:,} light curves, {summary.windows:,} windows, "
          f"d={embedder.hidden_size}) to {summary.path} in {summary.seconds:.1f} s ({rate:,.0f} windows/s on {device})")
    return 0
