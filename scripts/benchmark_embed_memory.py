"""Embed 20,000 real light curves to parquet and show that memory stays flat.

Streams ``../shared/data/lightcurves/*.parquet`` (files in name order, the first ``--curves`` rows)
through the data layer's counted cleaning and ``AstroCoEmbedder.to_parquet`` in chunks, while a
background thread samples the process RSS every 50 ms. Prints, per chunk, the curves done and the RSS
after the chunk and the peak while it ran), then the peak RSS of the first and last quarters of the
run and the throughput. After each chunk the C heap is trimmed (glibc ``malloc_trim``), so the
"after" column is what the process retains, not what the allocator keeps cached: it stays flat when
nothing accumulates; the per-chunk peak is the working set of one chunk and follows its content
(longer curves, more full 200-point windows).

    python scripts/benchmark_embed_memory.py --model runs/cpu_public_data
    python scripts/benchmark_embed_memory.py            # a random astroco-tiny (same cost as trained)
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pyarrow as pa
import torch

from astroco_hf import AstroCoConfig, AstroCoModel
from astroco_hf.data import CleaningConfig
from astroco_hf.evaluation import AstroCoEmbedder
from astroco_hf.evaluation.benchmarks import default_data_root
from astroco_hf.evaluation.inputs import iter_tables


class RSSSampler(threading.Thread):
    """Samples this process's resident set size (MiB) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.process = psutil.Process()
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter() - start, self.process.memory_info().rss / 2**20))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peak_since(self, index: int) -> float:
        return max(rss for _, rss in self.samples[index:]) if self.samples[index:] else float("nan")


def trim_heap() -> None:
    """Return freed memory to the OS (glibc only; elsewhere a no-op), after a garbage collection."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def first_rows(files: list[Path], limit: int, chunk_size: int) -> Iterator[pa.Table]:
    """The first ``limit`` light curves of ``files``, as chunks (read batch by batch)."""
    left = limit
    for table in iter_tables([str(f) for f in files], chunk_size):
        if left <= 0:
            return
        yield table.slice(0, left)
        left -= min(left, table.num_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="saved AstroCo model (default: a random astroco-tiny)")
    parser.add_argument("--data-root", type=Path, help="folder of lightcurves/*.parquet (default: ../shared/data/lightcurves)")
    parser.add_argument("--curves", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path, help="output parquet (default: a temporary file)")
    args = parser.parse_args()

    files = sorted((args.data_root or default_data_root()).glob("*.parquet"))
    if args.model:
        embedder = AstroCoEmbedder.from_pretrained(args.model, batch_size=args.batch_size, progress=False)
        model_name = args.model
    else:
        torch.manual_seed(0)
        embedder = AstroCoEmbedder(AstroCoModel(AstroCoConfig.from_preset("astroco-tiny")), batch_size=args.batch_size,
                                   progress=False)
        model_name = "random astroco-tiny"
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "embeddings.parquet"
        sampler = RSSSampler()
        marks: list[tuple[int, int]] = []  # (curves read, sample index) after each chunk
        retained: list[float] = []  # RSS after each chunk, heap trimmed
        print(f"model: {model_name}; {args.curves:,} curves from {[f.name for f in files]}; chunks of {args.chunk_size}")
        print(f"{'curves read':>12} {'elapsed s':>10} {'RSS after chunk MiB':>20} {'peak in chunk MiB':>18}")
        sampler.start()

        def on_chunk(curves_read: int) -> None:
            previous = marks[-1][1] if marks else 0
            peak = sampler.peak_since(previous)
            trim_heap()
            rss = sampler.process.memory_info().rss / 2**20
            retained.append(rss)
            marks.append((curves_read, len(sampler.samples)))
            elapsed = sampler.samples[-1][0]
            print(f"{curves_read:>12,} {elapsed:>10.1f} {rss:>20.1f} {peak:>18.1f}", flush=True)

        summary = embedder.to_parquet(first_rows(files, args.curves, args.chunk_size), out, chunk_size=args.chunk_size,
                                      cleaning=CleaningConfig(), on_chunk=on_chunk)
        sampler.stop()
    quarter = max(1, len(marks) // 4)
    first_peak = sampler.peak_since(0) if len(marks) < 2 else max(rss for _, rss in sampler.samples[: marks[quarter - 1][1]])
    last_peak = sampler.peak_since(marks[-quarter - 1][1]) if len(marks) > quarter else first_peak
    print(f"\n{summary.curves:,} curves embedded ({summary.windows:,} windows, "
          f"{summary.cleaning.total.curves_in - summary.cleaning.total.curves_out:,} removed by cleaning) in "
          f"{summary.seconds:.0f} s: {summary.windows / summary.seconds:,.0f} windows/s, "
          f"{summary.curves / summary.seconds:,.0f} curves/s, {torch.get_num_threads()} torch threads")
    print(f"RSS before the first chunk (model and libraries loaded): {sampler.samples[0][1]:.0f} MiB; after each "
          f"chunk (heap trimmed): first {retained[0]:.0f}, last {retained[-1]:.0f}, range {min(retained):.0f}-"
          f"{max(retained):.0f} MiB")
    print(f"peak RSS: first quarter of the chunks {first_peak:.0f} MiB, last quarter {last_peak:.0f} MiB, "
          f"whole run {max(rss for _, rss in sampler.samples):.0f} MiB")


if __name__ == "__main__":
    main()
