"""``astroco embed``: one embedding per light curve (or per window), streamed to parquet.

Runs as one process or as many under ``torchrun`` / ``accelerate launch`` (chunks shared among the
processes, atomic resumable shards, one merge): :mod:`astroco_hf.evaluation.catalogue`. The inference
path (``--precision``, ``--backend``) is :mod:`astroco_hf.precision`'s.
"""

from __future__ import annotations

import argparse
import sys

_PRECISIONS = ("auto", "fp32", "bf16", "int8")  # astroco_hf.precision.INFERENCE_PRECISIONS (not imported: fast --help)
_BACKENDS = ("auto", "eager", "compile", "onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="saved AstroCo model folder (pretraining or classification)")
    parser.add_argument("--data", required=True, nargs="+", metavar="PATH",
                        help="parquet/CSV files, folders of them, or a folder written by `astroco prepare` / save_to_disk")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="output: a .parquet file (one file, rows in input order), or a folder of parquet shards")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from the shards it wrote")
    parser.add_argument("--batch-size", type=int, default=256, help="windows per forward pass (default: 256)")
    parser.add_argument("--chunk-size", type=int, default=2048,
                        help="light curves read, embedded and written (one shard) at a time; bounds memory (default: 2048)")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu; cuda:LOCAL_RANK under a launcher)")
    parser.add_argument("--precision", choices=_PRECISIONS, default="auto",
                        help="auto (default): the fastest path measured on the first batch that keeps cosine >= 0.999 with "
                             "fp32 (cached per model and hardware); fp32; bf16 (autocast; warns where emulated); int8 "
                             "(dynamic quantization of the linear layers)")
    parser.add_argument("--backend", choices=_BACKENDS, default="auto",
                        help="eager PyTorch, torch.compile or ONNX Runtime (CPU); auto: measured with --precision auto, "
                             "else eager")
    parser.add_argument("--bf16", action="store_true", help="deprecated: --precision bf16")
    parser.add_argument("--per-window", action="store_true", help="one row per 200-point window instead of per light curve")
    parser.add_argument("--no-clean", action="store_true",
                        help="skip the data layer's counted cleaning (the input must then be clean: NaN or empty curves raise)")
    parser.add_argument("--column", action="append", default=[], metavar="FIELD=NAME",
                        help="column names of generic files, e.g. --column time=mjd --column mag=m (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    import contextlib
    import signal
    from pathlib import Path

    import torch

    from ..data import CleaningConfig, ColumnMap
    from ..errors import TrainingInterrupted
    from ..evaluation import AstroCoEmbedder
    from ..evaluation import catalogue as cat
    from ..outputs import lock_output_dir
    from ..precision import InferencePath, candidate_paths, choose_inference_path, prepare_for_inference
    from ._checks import check_at_least, check_device, check_model_folder

    if args.bf16:
        print("astroco embed: --bf16 is deprecated; use --precision bf16", file=sys.stderr)
        args.precision = "bf16"
    check_at_least(1, batch_size=args.batch_size, chunk_size=args.chunk_size)  # before any work or output
    device = check_device(args.device)
    check_model_folder(args.model)
    dist = cat.Distributed.from_environment()
    if device.type == "cuda" and device.index is None and dist.world_size > 1:
        device = torch.device("cuda", dist.local_rank)
    out = Path(args.out)
    cleaning = None if args.no_clean else CleaningConfig()
    columns = ColumnMap.from_pairs(args.column)
    settings = cat.settings_of(model=str(Path(args.model).resolve()), data=[str(Path(d).resolve()) for d in args.data],
                               chunk_size=args.chunk_size, per_window=args.per_window, cleaning=cleaning,
                               columns=columns, precision=args.precision, backend=args.backend)
    dist.start(device)
    try:
        # Process 0 checks the output before any work; the others learn the outcome.
        outcome: object = None
        if dist.rank == 0:
            try:
                outcome = cat.prepare_output(out, settings, overwrite=args.overwrite, resume=args.resume)
            except Exception as error:  # noqa: BLE001 - re-raised in every process
                outcome = error
        outcome = dist.from_rank0(outcome)
        if isinstance(outcome, Exception):
            raise outcome
        folder: Path = outcome
        lock = lock_output_dir(folder, take_over=args.resume or args.overwrite) if dist.rank == 0 else contextlib.nullcontext()
        with lock:
            try:
                first, names = cat.first_clean_chunk(args.data, args.chunk_size, columns, cleaning)
                loaded = AstroCoEmbedder.from_pretrained(args.model, device=device)  # with the folder's feature extractor
                model = loaded.model
                # At most 64 windows: enough to rank the paths (cosine over real windows, time per window).
                example = {k: v.to(device) for k, v in
                           cat.example_batch(first, loaded.window, min(args.batch_size, 64), names).items()}
                path = cat.inference_path_of(folder) if dist.rank == 0 else None  # a resumed run keeps its path
                if path is None and dist.rank == 0:
                    if args.precision == "auto":
                        candidates = [p for p in candidate_paths(device) if args.backend in ("auto", p.backend)]
                        calibration = choose_inference_path(model, example, candidates=candidates or None)
                        print(calibration.to_text(), file=sys.stderr)
                        path = calibration.chosen
                    else:
                        path = InferencePath(args.precision, "eager" if args.backend == "auto" else args.backend).name
                    cat.record_inference_path(folder, path)
                path = dist.from_rank0(path)

                # bf16 where it is emulated: a PrecisionWarning, one line at the CLI boundary.
                encoder = prepare_for_inference(model, path, example)
                embedder = AstroCoEmbedder(encoder, batch_size=args.batch_size, device=device,
                                           feature_extractor=loaded.feature_extractor,
                                           progress=not args.no_progress and dist.rank == 0)
                summary = cat.embed_catalogue(embedder, args.data, folder, chunk_size=args.chunk_size,
                                              per_window=args.per_window, cleaning=cleaning, columns=columns, dist=dist)
            except Exception:  # bad data, a model that does not load, ...: a folder without rows goes
                if dist.rank == 0:
                    cat.abandon(folder)
                raise
            except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: the shards written are kept for --resume
                if dist.rank == 0:
                    cat.abandon(folder)
                    if folder.exists():
                        signum = getattr(stop, "signal_number", signal.SIGINT)
                        shards = len(list(folder.glob("part-*.parquet")))
                        raise TrainingInterrupted(
                            f"stopped by {signal.Signals(signum).name}; {shards} shard(s) kept in {folder}; the same "
                            "command with --resume continues from them", signum) from None
                raise
        if dist.rank == 0:
            cat.finish(folder, out, overwrite=args.overwrite)
            if summary.cleaning is not None:
                print(summary.cleaning.to_text())
            print(f"wrote {summary.rows:,} rows ({summary.curves_in:,} light curves read, d={embedder.hidden_size}, "
                  f"{path} on {device} x {dist.world_size} processes; this process {summary.shards_written} shards "
                  f"written, {summary.shards_skipped} resumed) to {out} in {summary.seconds:.1f} s")
        dist.barrier()
    finally:
        dist.stop()
    return 0
