"""``astroco benchmark``: windows/s and peak memory of AstroCo against a plain PyTorch reference.

Every figure is a ratio against the reference (`astroco_hf.benchmark.reference`) measured in the same
process, alternating, as the median of several repeats. Examples::

    astroco benchmark --presets s --precisions fp32,auto --json speed.json       # what `embed --precision auto` gains
    astroco benchmark --presets s --precisions fp32,bf16 --json speed.json
    astroco benchmark --presets s --modes train --batch-sizes 32
    astroco benchmark --presets s --lengths 100,200,400,800 --precisions bf16
    astroco benchmark --presets astromer --precisions bf16-pure --compile on --profile
"""

from __future__ import annotations

import argparse


def _csv(kind):
    def parse(text: str) -> list:
        return [kind(item) for item in text.split(",") if item]

    return parse


def _on_off(text: str) -> list[bool]:
    values = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}
    try:
        return [values[item.lower()] for item in text.split(",") if item]
    except KeyError as error:
        raise argparse.ArgumentTypeError(f"--compile takes on/off values, got {text!r}") from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", type=_csv(str), default=["s"],
                        help="comma list of tiny, s, l, astromer (2 layers, d_model 128) (default: s)")
    parser.add_argument("--modes", type=_csv(str), default=["inference"], help="inference,train (default: inference)")
    parser.add_argument("--batch-sizes", type=_csv(int), default=[64], help="comma list (default: 64)")
    parser.add_argument("--lengths", type=_csv(int), default=[200], help="window lengths, e.g. 100,200,400,800 (default: 200)")
    parser.add_argument("--precisions", type=_csv(str), default=None,
                        help="fp32, bf16 (autocast), bf16-pure (bf16 weights, inference), auto (the inference path "
                             "`astroco embed --precision auto` picks, with every candidate measured) "
                             "(default: fp32,auto, plus bf16 where the device has native bf16)")
    parser.add_argument("--attn", type=_csv(str), default=["sdpa"], help="sdpa,eager (default: sdpa)")
    parser.add_argument("--compile", type=_on_off, default=[False], help="torch.compile the model: off, on or off,on")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per case (default: 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per implementation (default: 1)")
    parser.add_argument("--ragged", action="store_true", help="random lengths in [T/2, T] with padding")
    parser.add_argument("--no-reference", action="store_true", help="time the model only (no ratios)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--profile", action="store_true", help="add a torch.profiler summary of the first case")
    parser.add_argument("--json", metavar="PATH", help="also write the full report as JSON")


def run(args: argparse.Namespace) -> int:
    import itertools
    import warnings

    import torch

    from ..benchmark.runner import INFERENCE_ONLY, MODES, PRECISIONS, PRESET_CONFIGS, Case, format_table, run_benchmark
    from ..errors import ConfigError, PrecisionWarning
    from ..precision import bf16_problem
    from ._checks import check_at_least, check_device, check_output_file

    for name, values, allowed in (("presets", args.presets, PRESET_CONFIGS), ("modes", args.modes, MODES),
                                  ("precisions", args.precisions or (), PRECISIONS), ("attn", args.attn, ("sdpa", "eager"))):
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise ConfigError(f"--{name}: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(sorted(allowed))}")
    check_at_least(1, batch_sizes=args.batch_sizes, repeats=args.repeats, threads=args.threads)
    check_at_least(2, lengths=args.lengths)  # a window of one point has no neighbours to attend to
    check_at_least(0, warmup=args.warmup)
    check_device(args.device)
    check_output_file(args.json, "--json")
    problem = bf16_problem(args.device)
    if args.precisions is None:
        args.precisions = ["fp32", "auto"] + (["bf16"] if problem is None else [])
    elif problem is not None and any(p.startswith("bf16") for p in args.precisions):
        warnings.warn(problem, PrecisionWarning, stacklevel=1)  # asked for anyway: measured, with one warning line

    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [
        Case(preset, mode, batch, length, precision, attn, compiled)
        for preset, mode, batch, length, precision, attn, compiled in itertools.product(
            args.presets, args.modes, args.batch_sizes, args.lengths, args.precisions, args.attn, args.compile)
        if not (precision in INFERENCE_ONLY and mode == "train") and not (precision == "auto" and compiled)
    ]
    if not cases:
        raise ConfigError(f"no case to run: {' and '.join(INFERENCE_ONLY)} time inference only and "
                          "auto is not compiled; add --modes inference or another --precisions")
    report = run_benchmark(cases, repeats=args.repeats, warmup=args.warmup, device=args.device,
                           with_reference=not args.no_reference, ragged=args.ragged,
                           profile=cases[:1] if args.profile else (), json_path=args.json)
    print()
    print(format_table(report))
    if args.json:
        print(f"\nwrote {args.json}")
    return 1 if report["errors"] else 0
