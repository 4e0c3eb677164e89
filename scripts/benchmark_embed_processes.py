"""Two-process catalogue embedding equals the one-process result row for row, and how long each takes.

Embeds the first ``--curves`` light curves of ``../shared/data/lightcurves/*.parquet`` (files in name
order) with ``astroco embed`` once in one process and once under ``torchrun --nproc_per_node 2`` (CPU,
gloo), both with one torch thread per process and the same inference path, and compares the two
parquet files: same columns and rows in the same order, embeddings equal (max abs difference printed).

    python scripts/benchmark_embed_processes.py --curves 20000 --json runs/embed_processes.json
    python scripts/benchmark_embed_processes.py --model runs/cpu_public_data --precision int8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lightcurves"


def first_curves(folder: Path, count: int) -> pa.Table:
    tables, rows = [], 0
    for file in sorted(folder.glob("*.parquet")):
        table = pq.read_table(file, columns=["object_id", "survey", "band", "label", "time", "mag", "mag_err"])
        tables.append(table.slice(0, count - rows))
        rows += tables[-1].num_rows
        if rows >= count:
            break
    return pa.concat_tables(tables)


def embed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    print(result.stdout.strip().splitlines()[-1])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--curves", type=int, default=20_000)
    parser.add_argument("--model", help="saved AstroCo model (default: a random astroco-tiny)")
    parser.add_argument("--precision", default="fp32", help="one path for both runs (default: fp32)")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        source = work / "source.parquet"
        pq.write_table(first_curves(args.data, args.curves), source)
        model = args.model
        if model is None:
            import torch

            from astroco_hf import AstroCoConfig, AstroCoModel

            torch.manual_seed(0)
            model = str(work / "model")
            AstroCoModel(AstroCoConfig.from_preset("astroco-tiny")).save_pretrained(model)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        common = ["-m", "astroco_hf.cli", "embed", "--model", model, "--data", str(source), "--precision", args.precision,
                  "--chunk-size", str(args.chunk_size), "--no-progress"]
        one, two = work / "one.parquet", work / "two.parquet"
        seconds_one = embed([sys.executable, *common, "--out", str(one)], env)
        seconds_two = embed([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *common, "--out", str(two)], env)
        a, b = pq.read_table(one), pq.read_table(two)
        same_rows = a.drop_columns(["embedding"]).equals(b.drop_columns(["embedding"]))
        ea = np.stack(a["embedding"].to_numpy(zero_copy_only=False))
        eb = np.stack(b["embedding"].to_numpy(zero_copy_only=False))
        report = {
            "curves_in": args.curves, "rows": a.num_rows, "precision": args.precision, "model": args.model or "random astroco-tiny",
            "same_rows_same_order": same_rows, "embeddings_identical": bool(np.array_equal(ea, eb)),
            "max_abs_diff": float(np.abs(ea - eb).max()) if ea.shape == eb.shape else None,
            "seconds_one_process": seconds_one, "seconds_two_processes": seconds_two,
            "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
        }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
