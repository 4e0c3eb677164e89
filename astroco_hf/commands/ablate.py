"""``astroco ablate``: pretrain and score the paper's ablation variants on the same data and budget."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..ablation import VARIANTS, AblationConfig

    defaults = AblationConfig()
    parser.add_argument("--data", nargs="+", default=[], metavar="PATH",
                        help="pretraining sources (default: every parquet file of the data root)")
    parser.add_argument("--output-dir", default=defaults.output_dir, help="where runs, JSON, table and plot go")
    parser.add_argument("--variants", nargs="+", default=list(defaults.variants), choices=sorted(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds), help="encoder seeds (>= 2 advised)")
    parser.add_argument("--split-seed", type=int, default=defaults.split_seed, help="seed of the one object split")
    parser.add_argument("--preset", default=defaults.preset, help="base architecture and recipe")
    parser.add_argument("--d-model", type=int, help="override the preset's width")
    parser.add_argument("--num-layers", type=int, help="override the preset's depth")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps, help="optimizer steps per pretraining run")
    parser.add_argument("--max-time-minutes", type=float, default=defaults.max_time_minutes,
                        help="wall-time cap per pretraining run")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--benchmarks", nargs="+", default=list(defaults.benchmarks), help="few-shot benchmarks")
    parser.add_argument("--shots", nargs="+", type=int, default=list(defaults.shots))
    parser.add_argument("--folds", type=int, default=defaults.folds)
    parser.add_argument("--head-seeds", type=int, default=defaults.head_seeds, help="linear-head seeds per fold")
    parser.add_argument("--bands", nargs="+", help="keep only these bands for pretraining")
    parser.add_argument("--data-root", help="folder of the light-curve *.parquet files (default: $ASTROCO_DATA_ROOT)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..ablation import AblationConfig, format_ablation_table, run_ablation
    from ..data import data_root
    from ..training.recipes import resolve_arguments
    from ._checks import check_at_least

    overrides = {key: value for key, value in (("d_model", args.d_model), ("num_layers", args.num_layers))
                 if value is not None}
    # Before run_ablation creates the output folder: the numbers, the pretraining arguments every variant
    # starts from (preset, width, batch, learning rate), the data files and the benchmarks' data root.
    check_at_least(1, max_steps=args.max_steps, shots=args.shots, folds=args.folds, head_seeds=args.head_seeds)
    check_at_least(0, seeds=args.seeds)
    resolve_arguments(preset=args.preset, model_overrides=overrides, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, split_seed=args.split_seed)
    for path in args.data:
        if not Path(path).exists():
            raise FileNotFoundError(2, "--data: no such file or folder", path)
    data_root(args.data_root)
    config = AblationConfig(
        data=args.data, output_dir=args.output_dir, variants=tuple(args.variants), seeds=tuple(args.seeds),
        split_seed=args.split_seed, preset=args.preset, model_overrides=overrides, max_steps=args.max_steps,
        max_time_minutes=args.max_time_minutes, batch_size=args.batch_size, learning_rate=args.learning_rate,
        benchmarks=tuple(args.benchmarks), shots=tuple(args.shots), folds=args.folds, head_seeds=args.head_seeds,
        bands=args.bands, data_root=args.data_root,
    )
    report = run_ablation(config)
    print(format_ablation_table(report))
    print(f"\nSaved {args.output_dir}/ablation.json, ablation.md and ablation.png "
          f"({report['wall_time_s'] / 60:.1f} min)")
    return 0
