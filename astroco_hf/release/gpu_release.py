"""One device run that measures, pretrains, scores and releases AstroCo-S and AstroCo-L, with its CPU-side
preparation and unpacking. Subcommands of ``python -m astroco_hf.release.gpu_release``:

``prepare`` (here, on the CPU)
    Copy every light curve of ``../shared/data/lightcurves`` into ``carry/lightcurves`` (zstd parquet,
    only the columns the run reads) and the Python packages the device image lacks into
    ``carry/site.tar.xz``; check that the working tree plus ``carry/`` fits the 64 MiB that travel.
``run`` (on the device, started by ``scripts/gpu_release.sh``)
    Phases, each a time-boxed subprocess whose failure is recorded and does not stop the others:
    throughput and MFU (:mod:`astroco_hf.benchmark.gpu_check`), ``astroco pretrain`` of S then L (split by
    object as the CPU recipe, a wall-clock budget each, the device-side input path when the checkout has
    it), their held-out scores (``eval_results.json``), ``astroco fewshot`` on crts, eros1 and
    ogle-cepheids with each frozen encoder, ``astroco release --dry-run`` of both. S's few-shot and release
    run while L trains. ``$OUT/gpu_report.json`` is rewritten after every phase, so a timeout still
    returns what finished; ``$OUT`` ends with at most 8 files of at most 16 MiB (:data:`RETURNED`).
``collect`` (on the device, only in a follow-up call on the still-warm machine)
    Pack what a run that was cut off left in ``runs/gpu_release`` into ``$OUT``.
``unpack`` (here)
    From the returned files: the run folders under ``runs/gpu_release``, ``releases/astroco-s`` (complete,
    fp32 weights in 15 MB shards, loadable with ``AutoModel.from_pretrained``) and ``releases/astroco-l``
    (card, records and ``release_info.json``; the weights stay on the device).

docs/gpu-release.md gives the exact device call.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..outputs import atomic_write_text

__all__ = ["RETURNED", "RunPlan", "collect", "prepare", "run", "unpack", "main"]

TRAVEL_LIMIT = 64 * 2**20  # the device tool's working tree + carry
FILE_LIMIT = 16 * 2**20  # one returned file
MAX_FILES = 8  # returned files per command
SHARD_SIZE = "15MB"
# What a command returns in $OUT: the report, one archive of every small file, S's weights in shards.
REPORT, ARCHIVE = "gpu_report.json", "gpu_results.tar.gz"
RETURNED = (REPORT, ARCHIVE, "model.safetensors.index.json", "model-*-of-*.safetensors")

# Columns the readers use; orig_label, period, split and n_obs are not read by pretraining or few-shot.
DATA_COLUMNS = ("object_id", "survey", "band", "label", "source", "time", "mag", "mag_err")
FLOAT_COLUMNS = ("time.list.element", "mag.list.element", "mag_err.list.element")
# Dictionary encoding takes precedence over byte-stream-split: only the repetitive strings get it there.
DICTIONARY_COLUMNS = ("survey", "band", "label", "source")
# Not in the device image (docs/gpu-release.md): carried at the versions installed here.
DEVICE_PACKAGES = ("datasets", "dill", "multiprocess", "evaluate", "light-curve")
DEVICE_PYTHON = "3.12"  # the device image's python3 (.library/device/KINDS.md)
BENCHMARKS = ("crts", "eros1", "ogle-cepheids")
MODELS = ("astroco-s", "astroco-l")


# ----------------------------------------------------------------------------------------------
# prepare (CPU)
# ----------------------------------------------------------------------------------------------


def compact_parquet(source: Path, target: Path, objects_per_label: int | None = None) -> dict[str, Any]:
    """Copy one light-curve file with :data:`DATA_COLUMNS` only, as the smaller of plain and
    byte-stream-split zstd-19 (the float lists compress better split for some surveys, worse for others).

    ``objects_per_label`` keeps the first N objects of every label (all their bands): small data for the
    CPU smoke run that still has every class of the few-shot benchmarks."""
    table = pq.read_table(source, columns=[c for c in DATA_COLUMNS if c in pq.read_schema(source).names])
    if objects_per_label is not None:
        keep, seen = [], {}
        for row, (obj, label) in enumerate(zip(table["object_id"].to_pylist(), table["label"].to_pylist(),
                                               strict=True)):
            chosen = seen.setdefault(label, [])
            if obj in chosen or len(chosen) < objects_per_label:
                if obj not in chosen:
                    chosen.append(obj)
                keep.append(row)
        table = table.take(keep)
    candidates = []
    split = {"use_byte_stream_split": list(FLOAT_COLUMNS),
             "use_dictionary": [c for c in DICTIONARY_COLUMNS if c in table.column_names]}
    for name, extra in (("plain", {}), ("byte_stream_split", split)):
        path = target.with_suffix(f".{name}.tmp")
        pq.write_table(table, path, compression="zstd", compression_level=19, **extra)
        candidates.append((path.stat().st_size, name, path))
    size, encoding, best = min(candidates)
    os.replace(best, target)
    for _, _, path in candidates:
        path.unlink(missing_ok=True)
    return {"file": target.name, "rows": table.num_rows, "bytes": size, "source_bytes": source.stat().st_size,
            "encoding": encoding}


def pack_site(target: Path, packages: Sequence[str] = DEVICE_PACKAGES) -> dict[str, Any]:
    """Wheels of ``packages`` at this machine's versions, installed into a folder and packed as tar.xz
    (light-curve's 150 MB library is 46 MB as a wheel and ~26 MB in xz: the difference is what lets it
    travel beside the data)."""
    pins = [f"{name}=={installed_version(name)}" for name in packages]
    with tempfile.TemporaryDirectory() as folder:
        wheels, site = Path(folder, "wheels"), Path(folder, "site")
        platform = ["--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux_2_28_x86_64"]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platform, "-d", str(wheels), *pins],
                       check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile",
                        "--only-binary=:all:", "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platform,
                        "--target", str(site), *map(str, sorted(wheels.glob("*.whl")))], check=True)
        env = {**os.environ, "XZ_OPT": "-9 -T0"}
        subprocess.run(["tar", "-C", str(site), "-cJf", str(target), "."], check=True, env=env)
    return {"packages": pins, "bytes": target.stat().st_size}


def travelling_bytes(repo: Path, carry: Path) -> int:
    """Bytes the device tool sends: tracked and untracked-not-ignored files, plus the carried folder."""
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            check=True, capture_output=True).stdout.split(b"\0")
    tree = sum((repo / name.decode()).stat().st_size for name in listed if name and (repo / name.decode()).is_file())
    return tree + sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())


def prepare(source: Path, carry: Path, *, site: bool = True, objects_per_label: int | None = None,
            repo: Path | None = None) -> dict[str, Any]:
    """Fill ``carry`` (see the module docstring); returns and writes ``carry/manifest.json``.

    Raises:
        FileNotFoundError: ``source`` holds no ``*.parquet``.
        ValueError: what would travel exceeds :data:`TRAVEL_LIMIT`.
    """
    files = sorted(Path(source).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no light-curve files (*.parquet) in {source}")
    data = carry / "lightcurves"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    manifest: dict[str, Any] = {"source": str(source), "objects_per_label": objects_per_label,
                                "files": [compact_parquet(f, data / f.name, objects_per_label) for f in files]}
    if site:
        manifest["site"] = pack_site(carry / "site.tar.xz")
    if repo is not None:
        manifest["travelling_bytes"] = travelling_bytes(repo, carry)
        if manifest["travelling_bytes"] > TRAVEL_LIMIT:
            raise ValueError(f"working tree + {carry} = {manifest['travelling_bytes'] / 2**20:.1f} MiB, over the "
                             f"{TRAVEL_LIMIT / 2**20:.0f} MiB the device tool sends")
    atomic_write_text(carry / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


# ----------------------------------------------------------------------------------------------
# run (device)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Sizes and time boxes of one run. :meth:`gpu` fits one H100/H200 in ~9 minutes with the setup of
    scripts/gpu_release.sh; :meth:`cpu_smoke` runs every phase with tiny sizes on the CPU."""

    smoke: bool
    deadline_s: float  # from the start of `run`: no phase is started that cannot end before it
    presets: tuple[str, str]  # the models trained as S and L
    throughput_s: float  # gpu_check's budget
    s_minutes: float  # S's training budget (--max-time-minutes)
    l_max_minutes: float  # L's: what is left before the deadline, at most this
    after_l_s: float  # kept for L's few-shot, release and packing
    pretrain_overhead_s: float  # data preparation, test evaluation and saving around a training budget
    pretrain_args: tuple[str, ...]
    fewshot_args: tuple[str, ...]
    fewshot_s: float  # time box of one few-shot command
    device_batch_size: int = 1024  # global batch on the --device-data path (learning rate by sqrt(B / 256))

    @classmethod
    def gpu(cls, deadline_s: float = 500.0) -> RunPlan:
        # The CPU recipe's split (configs/pretrain/cpu-public-data.yaml: 85/5/10 by object, seed 42), so
        # the held-out objects are those astroco-tiny was scored on. Batch and learning rate: the recipe's
        # (paper: 256) on the DataLoader path, device_batch_size and sqrt-scaled rates on --device-data.
        common = ("--validation-fraction", "0.05", "--test-fraction", "0.1", "--seed", "42", "--epochs", "1000",
                  "--lr-scheduler-type", "constant_with_warmup", "--warmup-steps", "100", "--eval-strategy", "steps",
                  "--eval-steps", "400", "--patience", "10", "--logging-steps", "100", "--eval-batch-size", "1024",
                  "--precision", "auto", "--save-total-limit", "1")
        fewshot = ("--shots", "20", "100", "--folds", "2", "--seeds", "1")
        return cls(False, deadline_s, MODELS, 95.0, 1.75, 4.0, 100.0, 50.0, common, fewshot, 150.0)

    @classmethod
    def cpu_smoke(cls, deadline_s: float = 900.0) -> RunPlan:
        common = ("--validation-fraction", "0.1", "--test-fraction", "0.1", "--seed", "42", "--max-steps", "2",
                  "--batch-size", "8", "--window", "100", "--eval-strategy", "steps", "--eval-steps", "2",
                  "--logging-steps", "1", "--eval-batch-size", "64", "--precision", "fp32", "--save-total-limit", "1",
                  "--plot-windows", "2")
        fewshot = ("--shots", "4", "--folds", "1", "--seeds", "1", "--n-test", "4", "--n-validation", "2",
                   "--device", "cpu", "--batch-size", "64")
        return cls(True, deadline_s, ("astroco-tiny", "astroco-tiny"), 40.0, 1.0, 1.0, 60.0, 90.0, common, fewshot,
                   240.0)


def training_input_flags() -> dict[str, Any]:
    """Which training input path and compile switch this checkout's ``astroco pretrain`` offers."""
    from ..training.recipes import PretrainingArguments

    names = {f.name for f in dataclasses.fields(PretrainingArguments)}
    return {"device_data": "device_data" in names, "torch_compile": "torch_compile" in names}


class Runner:
    """The report and the phases. Every phase is a subprocess in its own session with a time box:
    SIGTERM at the box (pretraining saves a checkpoint), SIGKILL 20 s later."""

    def __init__(self, out: Path, work: Path, plan: RunPlan) -> None:
        self.out, self.work, self.plan = out, work, plan
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.report: dict[str, Any] = {
            "kind": "cpu-smoke" if plan.smoke else "gpu", "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "plan": dataclasses.asdict(plan), "work": str(work), "phases": {}, "pretraining": {}, "fewshot": {}, "release": {},
            "weights": {}, "returned": [],
        }
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.save()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.plan.deadline_s - self.elapsed()

    def save(self) -> None:
        with self.lock:
            self.report["wall_s"] = round(self.elapsed(), 1)
            text = json.dumps(self.report, indent=2, default=str) + "\n"
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / REPORT, text)
            atomic_write_text(self.work / REPORT, text)  # for `collect` in a follow-up call ($OUT is emptied)

    def record(self, section: str, key: str, value: Any) -> None:
        with self.lock:
            self.report[section][key] = value
        self.save()

    def phase(self, name: str, command: Sequence[str], box_s: float, needs_s: float = 10.0) -> bool:
        """Run ``command`` within ``box_s`` seconds (cut to the deadline); True if it exited 0."""
        box_s = min(box_s, self.left())
        entry: dict[str, Any] = {"command": list(command), "started_s": round(self.elapsed(), 1), "box_s": round(box_s, 1)}
        if box_s < needs_s:
            entry |= {"status": "skipped", "reason": f"{box_s:.0f}s left before the deadline, needs ~{needs_s:.0f}s"}
            self.record("phases", name, entry)
            print(f"[skip] {name}: {entry['reason']}", flush=True)
            return False
        log = self.work / "logs" / f"{name}.log"
        print(f"[run ] {name} (t={self.elapsed():.0f}s, box {box_s:.0f}s)", flush=True)
        self.record("phases", name, entry | {"status": "running"})
        began = time.monotonic()
        with log.open("w") as handle:
            process = subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                code = process.wait(timeout=box_s)
                status = "ok" if code == 0 else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    code = process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    code = process.wait()
                status = "timeout"
        text = log.read_text(errors="replace")
        entry |= {"status": status, "returncode": code, "wall_s": round(time.monotonic() - began, 1),
                  "log": str(log), "tail": text[-1500:] if status != "ok" else text[-300:]}
        self.record("phases", name, entry)
        print(f"[{'done' if status == 'ok' else 'fail'}] {name}: {status} in {entry['wall_s']}s", flush=True)
        return status == "ok"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "astroco_hf.cli", *args]


# The throughput phase's box beyond gpu_check's budget: start-up, CUDA initialisation and the overrun of
# the last case started (a kill loses only that case: the report is rewritten after each).
THROUGHPUT_SLACK_S = 60.0


def throughput_command(plan: RunPlan, report: Path) -> list[str]:
    """gpu_check's attention-kernel item, then its eager and (as the budget allows) compiled cases at
    batches that fill the chip (the pretraining phases measure the real training path); the smoke run
    keeps gpu_check's tiny sizes."""
    sizes = ["--cpu-smoke"] if plan.smoke else ["--train-batch", str(plan.device_batch_size), "--infer-batch", "4096"]
    return [sys.executable, "-m", "astroco_hf.benchmark.gpu_check", "--items", "attention", "train", "inference",
            "--budget-s", str(plan.throughput_s), "--out", str(report), *sizes]


def _throughput(runner: Runner) -> None:
    plan = runner.plan
    path = runner.work / "throughput.json"
    runner.phase("throughput", throughput_command(plan, path), plan.throughput_s + THROUGHPUT_SLACK_S)
    if path.is_file():
        measured = json.loads(path.read_text())
        with runner.lock:
            runner.report["device"] = measured.get("device")
            runner.report["environment"] = measured.get("environment")
            runner.report["throughput"] = {k: measured.get(k) for k in ("summary", "attention", "measurements",
                                                                          "errors", "skipped", "bf16_emulated")}
        runner.save()


def pretrain_command(plan: RunPlan, preset: str, data: Path, folder: Path, minutes: float,
                     flags: dict[str, Any], attention: str | None = None) -> tuple[list[str], list[str]]:
    """The ``astroco pretrain`` command line of one model, and the input-path and kernel flags it adds
    (``attention``: the attention kernel the throughput phase chose for this model, if any)."""
    extra = ["--attn-implementation", attention] if attention else []
    if flags["device_data"]:
        extra.append("--device-data")
        if not plan.smoke:  # static shapes on the device path: one compile; a batch that fills the chip
            extra += ["--torch-compile"] if flags["torch_compile"] else []
            extra += ["--batch-size", str(plan.device_batch_size),
                      "--learning-rate", f"{_scaled_learning_rate(preset, plan.device_batch_size):.4g}"]
    command = _cli("pretrain", "--preset", preset, "--data", str(data), "--output-dir", str(folder), "--overwrite",
                   "--max-time-minutes", f"{minutes:.2f}", *plan.pretrain_args, *extra)
    return command, extra


def fewshot_command(plan: RunPlan, folder: Path, benchmark: str, data: Path, out: Path) -> list[str]:
    return _cli("fewshot", "--model", str(folder), "--benchmark", benchmark, "--data-root", str(data), "--out", str(out),
                "--overwrite", "--no-progress", *plan.fewshot_args)


def _pretrain(runner: Runner, model: str, preset: str, data: Path, minutes: float, flags: dict[str, Any]) -> None:
    """Pretrain one model on the fast path; if that run fails without saving a model, once more in what
    is left of its time on the plain path (the Trainer's DataLoader at the recipe's batch, eager, sdpa):
    there is one device call, and a release needs a model more than it needs the fast path."""
    plan = runner.plan
    folder = runner.work / model
    throughput = runner.report.get("throughput") or {}
    # The throughput phase measured S's head size in the attention kernel and chose sdpa or the padded head,
    # and tried compiled training: a compile that failed there is not tried again here.
    chosen = throughput.get("attention") or {}
    attention = chosen.get("chosen") if chosen.get("preset") == "s" and preset == "astroco-s" else None
    if any("compiled" in error.get("name", "") for error in throughput.get("errors") or []):
        flags = flags | {"torch_compile": False}
    command, extra = pretrain_command(plan, preset, data, folder, minutes, flags, attention)
    began = runner.elapsed()
    box_s = minutes * 60 + plan.pretrain_overhead_s + 60
    ok = runner.phase(f"pretrain-{model}", command, box_s)
    if not ok and not (folder / "eval_results.json").is_file() and extra:
        left_minutes = minutes - (runner.elapsed() - began) / 60
        if left_minutes >= 0.25:
            command, extra = pretrain_command(plan, preset, data, folder, left_minutes,
                                              {"device_data": False, "torch_compile": False})
            runner.phase(f"pretrain-{model}-plain", command, left_minutes * 60 + plan.pretrain_overhead_s + 60)
            minutes = left_minutes
    runner.record("pretraining", model, summarize_pretraining(folder, minutes, extra))


def _scaled_learning_rate(preset: str, batch_size: int) -> float:
    """The recipe's learning rate scaled by sqrt(batch / recipe batch) (``astroco pretrain --help``'s GPU example)."""
    from ..training.recipes import RECIPES

    recipe = RECIPES[preset]
    return recipe["learning_rate"] * math.sqrt(batch_size / recipe["batch_size"])


def summarize_pretraining(folder: Path, minutes: float, flags: Sequence[str]) -> dict[str, Any]:
    """The numbers of a finished ``astroco pretrain`` folder (eval_results.json, trainer_state.json)."""
    summary: dict[str, Any] = {"folder": str(folder), "max_time_minutes": minutes, "input_flags": list(flags)}
    results_path = folder / "eval_results.json"
    if not results_path.is_file():
        return summary | {"finished": False}
    results = json.loads(results_path.read_text())
    test, training = results["test"], results["training"]
    summary |= {
        "finished": True, "parameters": results["model"]["parameters"], "global_step": training["global_step"],
        "epochs": training["epochs"], "wall_time_s": training["wall_time_s"], "precision": training["precision"],
        "stopped_by": training["hyperparameters"]["stopped_by"],
        "batch_size": training["hyperparameters"]["batch_size"],
        "test": {k: test[k] for k in ("rmse_hidden", "baseline_rmse_hidden", "noise_floor", "rmse", "n_hidden")},
        "per_survey": results["per_survey"],
        "beats_baseline_on_every_survey": all(row["rmse_hidden"] < row["baseline_rmse_hidden"]
                                              for row in results["per_survey"].values()),
    }
    state_path = folder / "trainer_state.json"
    if state_path.is_file():
        final = [e for e in json.loads(state_path.read_text()).get("log_history", []) if "train_runtime" in e]
        if final:  # Trainer's own count: validation passes included in the runtime
            summary["train_runtime_s"] = final[-1]["train_runtime"]
            summary["train_windows_per_s"] = final[-1]["train_samples_per_second"]
    return summary


def _fewshot_and_release(runner: Runner, model: str, data: Path, repo_id: str) -> None:
    """Few-shot on the three benchmarks in parallel (CPU feature extraction overlaps), then the dry-run release."""
    plan = runner.plan
    folder = runner.work / model
    if not (folder / "eval_results.json").is_file():
        for name in (*[f"fewshot-{model}-{b}" for b in BENCHMARKS], f"release-{model}"):
            runner.record("phases", name, {"status": "skipped", "reason": f"{folder} has no finished run"})
        return

    def fewshot(benchmark: str) -> Path:
        out = runner.work / "fewshot" / f"{model}-{benchmark}"
        runner.phase(f"fewshot-{model}-{benchmark}", fewshot_command(plan, folder, benchmark, data, out), plan.fewshot_s)
        return out / "fewshot_results.json"

    with ThreadPoolExecutor(len(BENCHMARKS)) as pool:
        results = [path for path in pool.map(fewshot, BENCHMARKS) if path.is_file()]
    runner.record("fewshot", model, {json.loads(p.read_text())["benchmark"]: summarize_fewshot(p) for p in results})
    release = runner.work / "release" / model
    runner.phase(f"release-{model}", _cli("release", "--model", str(folder), "--repo-id", repo_id, "--dry-run",
                                          "--out", str(release), "--overwrite",
                                          *(["--fewshot", *map(str, results)] if results else [])), 120)
    if (release / "release_info.json").is_file():
        runner.record("release", model, json.loads((release / "release_info.json").read_text()))


def summarize_fewshot(path: Path) -> dict[str, Any]:
    """Macro-F1 mean per method and N of one ``fewshot_results.json``."""
    record = json.loads(path.read_text())
    return {"macro_f1": {method: {n: row.get("macro_f1_mean") for n, row in by_n.items()}
                         for method, by_n in record["results"].items()},
            "skipped": record.get("skipped"), "timing_s": record.get("timing_s")}


def export_weights(model_dir: Path, out: Path, max_shard_size: str = SHARD_SIZE) -> list[str]:
    """``model_dir``'s weights into ``out`` as safetensors shards and their index (fp32, as trained)."""
    from ..modeling_astroco import AstroCoForMaskedReconstruction

    model = AstroCoForMaskedReconstruction.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, max_shard_size=max_shard_size)
        names = []
        for path in sorted(Path(folder).iterdir()):
            if path.suffix == ".safetensors" or path.name == "model.safetensors.index.json":
                shutil.copyfile(path, out / path.name)
                names.append(path.name)
    # One shard comes without an index: write the index unpack reads either way.
    if "model.safetensors.index.json" not in names:
        os.replace(out / "model.safetensors", out / "model-00001-of-00001.safetensors")
        from safetensors import safe_open

        with safe_open(out / "model-00001-of-00001.safetensors", "pt") as handle:
            weight_map = {key: "model-00001-of-00001.safetensors" for key in handle.keys()}  # noqa: SIM118
        atomic_write_text(out / "model.safetensors.index.json",
                          json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2) + "\n")
        names = ["model-00001-of-00001.safetensors", "model.safetensors.index.json"]
    return names


def pack(work: Path, out: Path, skip: Sequence[str] = ()) -> int:
    """Every small file of the run (records, cards, plots, logs; no weights, no checkpoints) into
    ``out/gpu_results.tar.gz``, paths relative to the current folder (unpack restores them there).
    ``skip``: top-level folders of ``work`` left out (a run still writing them)."""
    archive = out / ARCHIVE
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(work.rglob("*")):
            parts = path.relative_to(work).parts
            if (not path.is_file() or path.suffix == ".safetensors" or parts[0] in skip
                    or any(p.startswith(("checkpoint-", ".")) for p in parts)):
                continue
            tar.add(path, arcname=str(path))
    os.replace(partial, archive)
    return archive.stat().st_size


def run(data: Path, out: Path, work: Path, plan: RunPlan, repo_org: str = "astroco-hf") -> dict[str, Any]:
    """The device run (module docstring). ``work`` is relative to the repository root, which is the
    current folder: the few-shot files name their model by that path and unpack restores it."""
    if work.is_absolute():
        raise ValueError(f"--work must be relative to the repository root (unpack restores it there), got {work}")
    if not any(Path(data).glob("*.parquet")):
        raise FileNotFoundError(f"no light-curve files (*.parquet) in {data}: run `prepare` here and carry it")
    if work.exists():
        shutil.rmtree(work)
    runner = Runner(out, work, plan)
    flags = training_input_flags()
    runner.report["training_input"] = {
        "path": "device-data" if flags["device_data"] else "cpu-collator",
        "note": None if flags["device_data"] else "this checkout's astroco pretrain has no --device-data: the "
                "Trainer's DataLoader path was used", **flags}
    runner.report["data"] = json.loads((data.parent / "manifest.json").read_text()) \
        if (data.parent / "manifest.json").is_file() else {"folder": str(data)}
    runner.save()

    _throughput(runner)
    s_model, l_model = MODELS
    _pretrain(runner, s_model, plan.presets[0], data, plan.s_minutes, flags)
    with ThreadPoolExecutor(1) as background:  # S's few-shot and release while L trains
        s_done = background.submit(_after_s, runner, data, out, f"{repo_org}/{s_model}")
        l_minutes = min(plan.l_max_minutes, max(0.25, (runner.left() - plan.after_l_s - plan.pretrain_overhead_s) / 60))
        _pretrain(runner, l_model, plan.presets[1], data, l_minutes, flags)
        # Its Trainer windows/s shared the chip and the CPUs; the throughput phase has L alone.
        runner.report["pretraining"][l_model]["concurrent_with"] = f"{s_model} few-shot and release"
        _fewshot_and_release(runner, l_model, data, f"{repo_org}/{l_model}")
        s_done.result()
    size = pack(work, out)
    runner.report["returned"] = sorted(p.name for p in out.iterdir() if p.is_file())
    runner.report["returned_bytes"] = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    runner.save()
    problems = [f"{name} {size_} bytes" for name, size_ in runner.report["returned_bytes"].items() if size_ > FILE_LIMIT]
    if len(runner.report["returned"]) > MAX_FILES or problems:
        runner.report.setdefault("errors", []).append(f"returned files over the limits: {problems or runner.report['returned']}")
        runner.save()
    print(f"archive {size:,} bytes; report {out / REPORT}; wall {runner.elapsed():.0f}s", flush=True)
    return runner.report


def _after_s(runner: Runner, data: Path, out: Path, repo_id: str) -> None:
    """S's few-shot, release, weight export and a first archive (so a later timeout still returns S)."""
    try:
        _fewshot_and_release(runner, MODELS[0], data, repo_id)
        folder = runner.work / MODELS[0]
        if (folder / "eval_results.json").is_file():
            runner.record("weights", MODELS[0], export_weights(folder, out))
        pack(runner.work, out, skip=[MODELS[1]])  # L is still training
    except Exception as error:  # noqa: BLE001 - recorded; the L phases go on
        runner.record("phases", "after-astroco-s", {"status": "failed", "error": f"{type(error).__name__}: {error}"})


def collect(work: Path, out: Path) -> list[str]:
    """What a run left in ``work`` into ``out`` again: the follow-up call on a still-warm machine when a
    run was cut off before its last archive (docs/gpu-release.md)."""
    if not (work / REPORT).is_file():
        raise FileNotFoundError(f"{work} holds no {REPORT}: no run was started there on this machine")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / REPORT, out / REPORT)
    if (work / MODELS[0] / "eval_results.json").is_file():
        export_weights(work / MODELS[0], out)
    pack(work, out)
    return sorted(p.name for p in out.iterdir() if p.is_file())


# ----------------------------------------------------------------------------------------------
# unpack (CPU)
# ----------------------------------------------------------------------------------------------


def unpack(files: Path, releases: Path = Path("releases"), repo_org: str = "astroco-hf",
           overwrite: bool = False) -> dict[str, Path]:
    """Restore the run folders from ``files`` (what the device returned) into the current folder, then
    build ``releases/astroco-s`` (complete, sharded weights) and ``releases/astroco-l`` (no weights).

    Raises:
        FileNotFoundError: the archive, the report or S's weights are missing from ``files``.
    """
    from ..release import build_release_folder

    for name in (REPORT, ARCHIVE, "model.safetensors.index.json"):
        if not (files / name).is_file():
            raise FileNotFoundError(f"{files} has no {name}: fetch the device run's files first (docs/gpu-release.md)")
    report = json.loads((files / REPORT).read_text())
    work = Path(report["work"])
    with tarfile.open(files / ARCHIVE) as tar:
        tar.extractall(".", filter="data")
    s_dir = work / MODELS[0]
    if not (s_dir / "eval_results.json").is_file():
        raise FileNotFoundError(f"{files / ARCHIVE} holds no finished {MODELS[0]} run ({s_dir}/eval_results.json)")
    index = json.loads((files / "model.safetensors.index.json").read_text())
    for shard in sorted(set(index["weight_map"].values())) + ["model.safetensors.index.json"]:
        shutil.copyfile(files / shard, s_dir / shard)
    fewshots = sorted(work.glob(f"fewshot/{MODELS[0]}-*/fewshot_results.json"))
    built = {MODELS[0]: build_release_folder(s_dir, releases / MODELS[0], f"{repo_org}/{MODELS[0]}",
                                             fewshot=fewshots, max_shard_size=SHARD_SIZE, overwrite=overwrite)}
    l_release = work / "release" / MODELS[1]
    if l_release.is_dir():
        target = releases / MODELS[1]
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for path in l_release.iterdir():  # records and card; the weights' hash stays in release_info.json
            if path.is_file() and path.suffix != ".safetensors":
                shutil.copyfile(path, target / path.name)
        built[MODELS[1]] = target
    return built


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="step", required=True)
    p = commands.add_parser("prepare", help="fill carry/ with the data and packages the device run needs")
    p.add_argument("--source", default="../shared/data/lightcurves", help="light-curve parquet folder")
    p.add_argument("--carry", default="carry", help="ignored folder named in the device call's carry")
    p.add_argument("--no-site", action="store_true", help="skip the packages (data only)")
    p.add_argument("--objects-per-label", type=int, default=None, help="small sample (CPU smoke run)")
    r = commands.add_parser("run", help="the device run (scripts/gpu_release.sh)")
    r.add_argument("--data", default="carry/lightcurves")
    r.add_argument("--out", default=os.environ.get("OUT", "gpu_release_out"), help="returned files (default $OUT)")
    r.add_argument("--work", default="runs/gpu_release", help="run folders, relative to the repository root")
    r.add_argument("--deadline-s", type=float, default=None, help="start no phase that cannot end before this")
    r.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU, every phase")
    r.add_argument("--repo-org", default="astroco-hf", help="Hub organisation of the release folders")
    r.add_argument("--throughput-s", type=float, default=None, help="budget of the throughput phase")
    r.add_argument("--s-minutes", type=float, default=None, help="S's training budget (L gets what is left)")
    c = commands.add_parser("collect", help="on the device: pack what an interrupted run left in --work into $OUT")
    c.add_argument("--work", default="runs/gpu_release")
    c.add_argument("--out", default=os.environ.get("OUT", "gpu_release_out"))
    u = commands.add_parser("unpack", help="build releases/ from the returned files")
    u.add_argument("files", help="folder of the returned files")
    u.add_argument("--releases", default="releases")
    u.add_argument("--repo-org", default="astroco-hf")
    u.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    if args.step == "prepare":
        manifest = prepare(Path(args.source), Path(args.carry), site=not args.no_site,
                           objects_per_label=args.objects_per_label,
                           repo=Path(".") if Path(".git").exists() else None)  # the size check needs the checkout
        print(json.dumps(manifest, indent=2))
        return 0
    if args.step == "run":
        plan = RunPlan.cpu_smoke() if args.cpu_smoke else RunPlan.gpu()
        changes = {"deadline_s": args.deadline_s, "throughput_s": args.throughput_s, "s_minutes": args.s_minutes}
        plan = dataclasses.replace(plan, **{k: v for k, v in changes.items() if v is not None})
        report = run(Path(args.data), Path(args.out), Path(args.work), plan, args.repo_org)
        failed = [name for name, phase in report["phases"].items() if phase.get("status") != "ok"]
        print("phases not ok: " + (", ".join(failed) if failed else "none"))
        return 1 if failed else 0
    if args.step == "collect":
        print("\n".join(collect(Path(args.work), Path(args.out))))
        return 0
    built = unpack(Path(args.files), Path(args.releases), args.repo_org, args.overwrite)
    for name, folder in built.items():
        print(f"{name}: {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
