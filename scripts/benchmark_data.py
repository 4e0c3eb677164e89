"""Windows per second of the pretraining input pipeline on the real light curves:
read (Arrow) -> random crop -> normalise -> mask -> collate, through a torch DataLoader exactly as
``transformers.Trainer`` drives it in pretraining (``RandomCrops`` + ``DataCollatorForMaskedReconstruction``).

    python scripts/benchmark_data.py                       # prepares $ASTROCO_DATA_ROOT first
    python scripts/benchmark_data.py --prepared runs/all   # a folder written by `astroco prepare`
    python scripts/benchmark_data.py --workers 0 2 --batches 300

Target: >= 20,000 windows/s (what one H100 consumes training AstroCo-S). Preparation is timed
separately: it happens once, not per epoch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from datasets import load_from_disk

from astroco_hf.data import DataCollatorForMaskedReconstruction, RandomCrops, data_root, prepare_dataset


def windows_per_second(
    dataset, *, window: int, batch_size: int, batches: int, workers: int, seed: int
) -> tuple[float, float]:
    """Windows per wall-clock second, and per CPU-second of this process (meaningful with
    ``workers=0``: on a shared machine it is what one dedicated core delivers)."""
    loader = torch.utils.data.DataLoader(
        RandomCrops(dataset, window, seed=seed),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=DataCollatorForMaskedReconstruction(window=window, seed=seed),
        num_workers=workers,
        persistent_workers=workers > 0,
        drop_last=True,
    )

    def forever():
        while True:
            yield from loader

    stream = forever()
    for _ in range(3):  # warm-up: worker start, first Arrow reads
        next(stream)
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(batches):
        batch = next(stream)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert batch["times"].shape == (batch_size, window)
    return batches * batch_size / elapsed, batches * batch_size / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, help="light-curve files to prepare (default: $ASTROCO_DATA_ROOT)"
    )
    parser.add_argument("--prepared", type=Path, help="a folder written by `astroco prepare` (skips preparation)")
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=200, help="timed batches per setting")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.prepared:
        train = load_from_disk(str(args.prepared))["train"]
        print(f"loaded {args.prepared}: {len(train):,} training light curves")
    else:
        started = time.perf_counter()
        data = args.data or data_root()
        prepared = prepare_dataset([data], seed=args.seed, window=args.window, progress=False)
        train = prepared.dataset["train"]
        print(f"prepared {data} in {time.perf_counter() - started:.1f} s: {len(train):,} training light curves")
    torch.set_num_threads(1)
    for workers in args.workers:
        rate, cpu_rate = windows_per_second(
            train, window=args.window, batch_size=args.batch_size, batches=args.batches, workers=workers, seed=args.seed
        )
        per_core = f", {cpu_rate:,.0f} windows per CPU-second" if workers == 0 else ""
        print(
            f"workers={workers}: {rate:,.0f} windows/s{per_core} (batch {args.batch_size} x {args.window}, "
            f"{args.batches} batches)"
        )


if __name__ == "__main__":
    main()
