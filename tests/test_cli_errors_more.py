"""Issue 15, the bad inputs tried after its listed cases: each ends with exit status 2 and one line on
stderr naming the file / curve / key / flag, raised before any work, with no output or half-written
file left (Python API: a clear error naming the culprit). Signals: SIGINT and SIGTERM during
`astroco prepare`'s save leave nothing behind (real signals to a real process).

The listed cases themselves: test_cli_errors.py, test_signals.py, test_cli_adoption.py."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from astroco_hf import AstroCoConfig, AstroCoForMaskedReconstruction
from astroco_hf.cli import main
from astroco_hf.errors import ConfigError
from astroco_hf.evaluation.finetune import checkpoint_folder, finetune_classifier
from astroco_hf.outputs import LOCK_NAME

REPO = Path(__file__).resolve().parents[1]


def _tiny_model(path: Path, d_model: int = 32) -> Path:
    AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny", d_model=d_model, num_layers=1)).save_pretrained(path)
    return path


def _curves(path: Path, n_objects: int = 4, n_points: int = 40, **overrides) -> Path:
    """A long-layout CSV (object_id, time, mag, mag_err, label) of smooth curves; ``overrides`` replace columns."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame([{"object_id": f"s{i}", "time": t, "mag": 17 + 0.1 * math.sin(t), "mag_err": 0.05,
                           "label": "AB"[i % 2]} for i in range(n_objects) for t in np.sort(rng.uniform(0, 100, n_points))])
    frame.assign(**overrides).to_csv(path, index=False)
    return path


def _nested(path: Path, **columns) -> Path:
    pq.write_table(pa.table({"object_id": ["a"], **{k: [v] for k, v in columns.items()}}), path)
    return path


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> dict[str, Path]:
    """Inputs, good and bad: a model, a model of another size's weights, broken configs, data files."""
    root = tmp_path_factory.mktemp("inputs")
    model = _tiny_model(root / "model")
    files = {"model": model, "good": _curves(root / "good.csv"), "root": root}
    files["wrong_size"] = root / "wrong_size"
    shutil.copytree(model, files["wrong_size"])
    shutil.copy(_tiny_model(root / "wide", d_model=64) / "model.safetensors", files["wrong_size"] / "model.safetensors")
    files["bad_heads"] = root / "bad_heads"
    shutil.copytree(model, files["bad_heads"])
    config = json.loads((model / "config.json").read_text())
    (files["bad_heads"] / "config.json").write_text(json.dumps(config | {"num_heads": 5}))
    files["bad_json"] = root / "bad_json"
    shutil.copytree(model, files["bad_json"])
    (files["bad_json"] / "config.json").write_text("{not json")
    six = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    files["strings"] = _nested(root / "strings.parquet", time=six, mag=list("xyzabc"), mag_err=[0.1] * 6)
    files["ragged"] = _nested(root / "ragged.parquet", time=six, mag=[17.0] * 5, mag_err=[0.1] * 6)
    files["one_point"] = _nested(root / "one_point.parquet", time=[1.0], mag=[17.0], mag_err=[0.1])
    files["negative_err"] = _curves(root / "negative_err.csv", mag_err=-0.1)
    pd.read_csv(files["good"]).drop(columns=["object_id"]).to_parquet(root / "long_noid.parquet")  # one row per point
    files["long_noid"] = root / "long_noid.parquet"
    files["empty_dir"] = root / "empty_dir"
    files["empty_dir"].mkdir()
    files["a_file"] = root / "a_file"
    files["a_file"].write_text("not a folder")
    files["list_yaml"] = root / "list.yaml"
    files["list_yaml"].write_text("- learning_rate\n- 1e-3\n")
    return files


def _fill(argv: list[str], f: dict[str, Path], out: Path) -> list[str]:
    return [a.replace("{OUT}", str(out)).format(**{k: str(v) for k, v in f.items()}) if "{" in a else a for a in argv]


def _one_error_line(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("astroco ")]
    assert len(lines) == 1 and "Traceback" not in err and "LOAD REPORT" not in err, err[-3000:]
    return code, lines[0]


# (command line, text the one line must hold); {OUT} is a fresh output path, {name} an input of `f`.
EMBED = ["embed", "--no-progress", "--precision", "fp32", "--out", "{OUT}/e.parquet"]
CASES = {
    # embed: data
    "embed-strings-in-mag": ([*EMBED, "--model", "{model}", "--data", "{strings}"], ["strings.parquet", "'mag'", "not numbers"]),
    "embed-strings-no-clean": ([*EMBED, "--model", "{model}", "--data", "{strings}", "--no-clean"], ["strings.parquet", "'mag'"]),
    "embed-ragged-lists": ([*EMBED, "--model", "{model}", "--data", "{ragged}"], ["ragged.parquet", "'a'", "5 values"]),
    "embed-column-map-missing": ([*EMBED, "--model", "{model}", "--data", "{good}", "--column", "time=mjd"], ["good.csv", "'mjd'"]),
    "embed-empty-folder": ([*EMBED, "--model", "{model}", "--data", "{empty_dir}"], ["empty_dir"]),
    "embed-long-layout-parquet-without-ids": ([*EMBED, "--model", "{model}", "--data", "{long_noid}"],
                                              ["long_noid.parquet", "missing column(s) ['object_id']",
                                               "--column object_id=NAME"]),
    "embed-one-point": ([*EMBED, "--model", "{model}", "--data", "{one_point}"], ["one_point.parquet", "too_short: 1"]),
    # embed: flags
    "embed-batch-size-0": ([*EMBED, "--model", "{model}", "--data", "{good}", "--batch-size", "0"], ["--batch-size must be >= 1"]),
    "embed-chunk-size-0": ([*EMBED, "--model", "{model}", "--data", "{good}", "--chunk-size", "0"], ["--chunk-size must be >= 1"]),
    "embed-out-is-a-file": ([*EMBED[:-2], "--model", "{model}", "--data", "{good}", "--out", "{a_file}"],
                            ["a_file is a file", ".parquet"]),
    "embed-device-typo": ([*EMBED, "--model", "{model}", "--data", "{good}", "--device", "gpu"], ["--device 'gpu' is not a device"]),
    # embed: model folders
    "embed-weights-of-another-size": ([*EMBED, "--model", "{wrong_size}", "--data", "{good}"],
                                      ["wrong_size", "does not match its config.json", "d_model=32"]),
    "embed-model-is-a-file": ([*EMBED, "--model", "{good}", "--data", "{good}"], ["good.csv is a file"]),
    "embed-model-is-a-data-folder": ([*EMBED, "--model", "{empty_dir}", "--data", "{good}"], ["empty_dir is not a model folder"]),
    "embed-model-missing": ([*EMBED, "--model", "{root}/nowhere", "--data", "{good}"], ["no such model folder", "nowhere"]),
    "embed-config-not-json": ([*EMBED, "--model", "{bad_json}", "--data", "{good}"], ["bad_json/config.json"]),
    "embed-heads-do-not-divide": ([*EMBED, "--model", "{bad_heads}", "--data", "{good}"], ["divisible by num_heads (5)"]),
    # prepare
    "prepare-one-point": (["prepare", "{one_point}", "--out", "{OUT}/p", "--no-progress"],
                          ["one_point.parquet survived cleaning", "too_short 1"]),
    "prepare-negative-errors": (["prepare", "{negative_err}", "--out", "{OUT}/p", "--no-progress"],
                                ["negative_err.csv", "err_out_of_range 160"]),
    "prepare-model-folder-as-data": (["prepare", "{model}", "--out", "{OUT}/p", "--no-progress"], ["model is a model folder"]),
    "prepare-window-0": (["prepare", "{good}", "--out", "{OUT}/p", "--no-progress", "--window", "0"], ["--window must be >= 2, got 0"]),
    "prepare-window-negative": (["prepare", "{good}", "--out", "{OUT}/p", "--no-progress", "--window", "-5"], ["--window"]),
    "prepare-max-curves-0": (["prepare", "{good}", "--out", "{OUT}/p", "--no-progress", "--max-curves", "0"], ["--max-curves"]),
    "prepare-fractions": (["prepare", "{good}", "--out", "{OUT}/p", "--no-progress", "--validation-fraction", "1.5"],
                          ["--validation-fraction", "1.5"]),
    "prepare-dry-run-without-repo": (["prepare", "{good}", "--out", "{OUT}/p", "--no-progress", "--dry-run"],
                                     ["--dry-run needs --push-to-hub"]),
    "prepare-catalogue-missing": (["prepare", "{good}", "--out", "{OUT}/p", "--macho-catalog", "{root}/nowhere.csv"],
                                  ["nowhere.csv"]),
    "prepare-catalogue-is-not-one": (["prepare", "--out", "{OUT}/p", "--no-progress", "--macho-catalog", "{good}"],
                                     ["--macho-catalog", "good.csv", "'classification'"]),
    "prepare-bad-repo-id": (["prepare", "{good}", "--out", "{OUT}/p", "--push-to-hub", "bad repo", "--dry-run"],
                            ["'bad repo'", "ORG/NAME"]),
    "prepare-push-without-token": (["prepare", "{good}", "--out", "{OUT}/p", "--push-to-hub", "me/x"],
                                   ["--push-to-hub me/x needs a Hub token"]),
    # benchmark (was SystemExit("...") or a traceback)
    "benchmark-unknown-preset": (["benchmark", "--presets", "xl"], ["--presets: unknown 'xl'"]),
    "benchmark-unknown-mode": (["benchmark", "--modes", "training"], ["--modes: unknown 'training'"]),
    "benchmark-batch-0": (["benchmark", "--batch-sizes", "0"], ["--batch-sizes must be >= 1"]),
    "benchmark-length-1": (["benchmark", "--lengths", "1"], ["--lengths must be >= 2"]),
    "benchmark-repeats-0": (["benchmark", "--repeats", "0"], ["--repeats must be >= 1"]),
    "benchmark-threads-negative": (["benchmark", "--threads", "-2"], ["--threads must be >= 1"]),
    "benchmark-json-is-a-folder": (["benchmark", "--json", "{empty_dir}"], ["--json", "is a folder"]),
    "benchmark-json-under-a-file": (["benchmark", "--json", "{a_file}/x.json"], ["--json", "not an existing folder"]),
    "benchmark-no-case": (["benchmark", "--modes", "train", "--precisions", "auto"], ["no case to run"]),
    # fewshot
    "fewshot-shots-0": (["fewshot", "--model", "{model}", "--data", "{good}", "--out", "{OUT}/fs", "--shots", "0"], ["--shots"]),
    "fewshot-folds-0": (["fewshot", "--model", "{model}", "--data", "{good}", "--out", "{OUT}/fs", "--folds", "0"], ["--folds"]),
    "fewshot-seeds-negative": (["fewshot", "--model", "{model}", "--data", "{good}", "--out", "{OUT}/fs", "--seeds", "-1"],
                               ["--seeds must be >= 1, got -1"]),
    "fewshot-weights-of-another-size": (["fewshot", "--model", "{wrong_size}", "--data", "{good}", "--out", "{OUT}/fs"],
                                        ["does not match its config.json"]),
    "info-weights-of-another-size": (["info", "--model", "{wrong_size}"], ["does not match its config.json"]),
    # export, release
    "export-weights-of-another-size": (["export", "--format", "onnx", "--model", "{wrong_size}", "--out", "{OUT}/x"],
                                       ["does not match its config.json"]),
    "export-out-is-a-file": (["export", "--format", "onnx", "--model", "{model}", "--out", "{a_file}"], ["a_file is a file"]),
    "release-out-is-a-file": (["release", "--model", "{model}", "--repo-id", "me/x", "--dry-run", "--out", "{a_file}"],
                              ["a_file is a file"]),
    # ablate (each used to create the output folder, then fail on the data root)
    "ablate-max-steps-0": (["ablate", "--output-dir", "{OUT}/a", "--data", "{good}", "--max-steps", "0"], ["--max-steps"]),
    "ablate-seeds-negative": (["ablate", "--output-dir", "{OUT}/a", "--data", "{good}", "--seeds", "0", "-1"],
                              ["--seeds must be >= 0, got [0, -1]"]),
    "ablate-unknown-preset": (["ablate", "--output-dir", "{OUT}/a", "--data", "{good}", "--preset", "astroco-m"],
                              ["unknown preset 'astroco-m'"]),
    "ablate-learning-rate-huge": (["ablate", "--output-dir", "{OUT}/a", "--data", "{good}", "--learning-rate", "5"],
                                  ["learning_rate must be in (0, 1]"]),
    "ablate-data-missing": (["ablate", "--output-dir", "{OUT}/a", "--data", "{root}/nowhere.parquet"], ["nowhere.parquet"]),
    # pretrain
    "pretrain-seed-negative": (["pretrain", "--output-dir", "{OUT}/r", "--seed", "-1"], ["seed must be in [0, 2**32)"]),
    "pretrain-learning-rate-huge": (["pretrain", "--output-dir", "{OUT}/r", "--learning-rate", "1e9"],
                                    ["learning_rate must be in (0, 1]"]),
    "pretrain-learning-rate-nan": (["pretrain", "--output-dir", "{OUT}/r", "--learning-rate", "nan"], ["learning_rate"]),
    "pretrain-config-is-a-model-config": (["pretrain", "--output-dir", "{OUT}/r", "--config", "{model}/config.json"],
                                          ["is a model's config.json", "training_config.json"]),
    "pretrain-config-is-a-list": (["pretrain", "--output-dir", "{OUT}/r", "--config", "{list_yaml}"], ["list.yaml", "mapping"]),
    "pretrain-window-beyond-memory": (["pretrain", "--output-dir", "{OUT}/r", "--window", "1000000"],
                                      ["window 1000000 cannot fit", "GiB"]),
    "pretrain-eval-batch-0": (["pretrain", "--output-dir", "{OUT}/r", "--eval-batch-size", "0"], ["eval_batch_size must be >= 1"]),
    "pretrain-workers-negative": (["pretrain", "--output-dir", "{OUT}/r", "--dataloader-num-workers", "-1"],
                                  ["dataloader_num_workers must be >= 0"]),
    "pretrain-output-dir-is-a-file": (["pretrain", "--output-dir", "{a_file}"], ["a_file is a file"]),
    "pretrain-model-folder-as-data": (["pretrain", "--output-dir", "{OUT}/r", "--data", "{model}"], ["model is a model folder"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_before_any_output(case, f, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ASTROCO_DEBUG", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)  # no stored login or HF_TOKEN
    monkeypatch.chdir(tmp_path)  # a command that wrote anywhere by default would write here
    argv, culprits = CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    code, line = _one_error_line(capsys, _fill(argv, f, out))
    assert code == 2 and line.startswith(f"astroco {argv[0]}: error: "), line
    assert all(c in line for c in culprits), (culprits, line)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out"]  # no output, no .partial, no temporary
    assert sorted(p.name for p in f["root"].iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["prepare", "{good}", "--out", "{OUT}/p", "--mag-range", "MACHO=a:b"], "argument --mag-range: expected SURVEY=LOW:HIGH"),
    (["embed", "--model", "{model}", "--data", "{good}", "--out", "{OUT}/e.parquet", "--bogus"], "unrecognized arguments: --bogus"),
    (["embed", "--model", "{model}"], "the following arguments are required: --data, --out"),
    (["pretrain", "--output-dir", "{OUT}/r", "--max-steps", "abc"], "argument --max-steps/--max_steps: invalid int value"),
], ids=["bad-type", "unknown-flag", "missing-flag", "pretrain-bad-type"])
def test_usage_errors_are_one_line(argv, message, f, tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        main(_fill(argv, f, tmp_path))
    err = capsys.readouterr().err
    assert raised.value.code == 2 and err == f"astroco {argv[0]}: error: {message}" + err.split(message, 1)[1]
    assert err.count("\n") == 1 and err.endswith(f" (see astroco {argv[0]} --help)\n") and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["embed", "fewshot", "benchmark"])
def test_cuda_without_cuda_is_one_line(command, f, tmp_path, capsys):
    argv = {"embed": [*EMBED, "--model", "{model}", "--data", "{good}"],
            "fewshot": ["fewshot", "--model", "{model}", "--data", "{good}", "--out", "{OUT}/fs"],
            "benchmark": ["benchmark"]}[command]
    code, line = _one_error_line(capsys, _fill([*argv, "--device", "cuda"], f, tmp_path))
    assert code == 2 and f"astroco {command}: error: --device cuda: " in line and "use --device cpu" in line
    assert list(tmp_path.iterdir()) == []


def test_unicode_and_spaces_in_paths(f, tmp_path, capsys):
    folder = tmp_path / "dâta ö"
    folder.mkdir()
    data = shutil.copy(f["good"], folder / "light curves é.csv")
    out = tmp_path / "ü out" / "e.parquet"
    assert main([*EMBED[:-2], "--model", str(f["model"]), "--data", str(data), "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 4
    code, line = _one_error_line(capsys, [*EMBED[:-2], "--model", str(f["model"]), "--data", str(data), "--out", str(out)])
    assert code == 2 and f"{out} already exists" in line  # named as given, spaces and accents included


# ---- the Python API: errors naming the culprit, raised before any work ----

def _finetune(f, out: Path, **kwargs):
    curves = [(np.sort(np.random.default_rng(i).uniform(0, 100, 40)), np.full(40, 17.0) + 0.01 * i, np.full(40, 0.05))
              for i in range(6)]
    arguments = {"model": f["model"], "train_data": curves, "train_labels": [0, 1] * 3, "eval_data": curves,
                 "eval_labels": [0, 1] * 3, "class_names": ["a", "b"], "output_dir": out, "epochs": 1, "batch_size": 4,
                 "use_cpu": True, "disable_tqdm": True}
    return finetune_classifier(**(arguments | kwargs))


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"train_labels": [0, 1, 2, 0, 1, 2]}, ConfigError, "train_labels holds 2, not a class index of class_names (0 .. 1)"),
    ({"eval_labels": [0.5] * 6}, ConfigError, "eval_labels must be a 1-d sequence of class indices"),
    ({"class_names": []}, ConfigError, "class_names needs at least two classes"),
    ({"batch_size": 0}, ConfigError, "batch_size must be positive, got 0"),
    ({"epochs": 0}, ConfigError, "epochs must be positive, got 0"),
    ({"model": "WRONG_SIZE"}, ConfigError, "model.safetensors does not match its config.json"),
    ({"model": "MISSING"}, FileNotFoundError, "no such model folder"),
], ids=["label-out-of-range", "float-labels", "no-classes", "batch-0", "epochs-0", "wrong-size", "missing-model"])
def test_finetune_refuses_bad_arguments_before_work(kwargs, error, message, f, tmp_path, capfd):
    kwargs = {k: {"WRONG_SIZE": f["wrong_size"], "MISSING": tmp_path / "nowhere"}.get(v, v) if isinstance(v, str) else v
              for k, v in kwargs.items()}
    with pytest.raises(error, match=re.escape(message)):
        _finetune(f, tmp_path / "classifier", **kwargs)
    assert list(tmp_path.iterdir()) == [] and "LOAD REPORT" not in capfd.readouterr().err


def test_finetune_stale_lock_hint_and_no_empty_partial_folder(f, tmp_path):
    out = tmp_path / "classifier"
    work = checkpoint_folder(out)
    work.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (work / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier",
                                              "command": "python train.py"}))
    with pytest.raises(OSError, match="stale lock") as refused:
        _finetune(f, out)
    assert "pass overwrite=True to take it over" in str(refused.value) and "--resume" not in str(refused.value)
    _finetune(f, out, overwrite=True)  # takes the stale lock over, trains, and leaves the finished folder only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classifier"]


# ---- signals during `astroco prepare`: real signals to a real process ----

SLOW_SAVE = """
import sys, time
from pathlib import Path
import datasets
save = datasets.DatasetDict.save_to_disk
def slow(self, path, *args, **kwargs):  # half the folder written, then a pause to be interrupted in
    save(self, path, *args, **kwargs)
    Path(sys.argv[1]).write_text("saving")
    time.sleep(120)
datasets.DatasetDict.save_to_disk = slow
from astroco_hf.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_signals_during_prepare_leave_nothing(f, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ASTROCO_DEBUG"} | {"PYTHONPATH": str(REPO)}
    runs = {}
    for name in ("SIGINT", "SIGTERM"):
        folder = tmp_path / name
        folder.mkdir()
        command = [sys.executable, "-c", SLOW_SAVE, str(folder / "marker"), "prepare", str(f["good"]), "--out",
                   str(folder / "prepared"), "--no-progress"]
        runs[name] = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for name, process in runs.items():
        marker = tmp_path / name / "marker"
        for _ in range(1200):
            if marker.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), process.communicate()[1][-2000:]
        temporary = [p.name for p in (tmp_path / name).iterdir() if p.name.startswith(".prepared.tmp-")]
        assert temporary, "the save had begun"
        process.send_signal(getattr(signal, name))
    for name, process in runs.items():
        _, err = process.communicate(timeout=120)
        assert process.returncode == 128 + getattr(signal, name)
        assert [line for line in err.splitlines() if line.strip()] == [f"astroco prepare: interrupted by {name}"]
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == ["marker"]  # no folder, no temporary


def test_sigterm_during_embed_keeps_shards_for_resume(f, tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "curves.parquet"
    pq.write_table(pa.table({"object_id": [f"o{i}" for i in range(1500)],
                             "time": [np.arange(150) * 1.3] * 1500,
                             "mag": list(17 + rng.normal(0, 0.1, (1500, 150))),
                             "mag_err": [np.full(150, 0.05)] * 1500}), data)
    out = tmp_path / "e.parquet"
    argv = ["embed", "--model", str(f["model"]), "--data", str(data), "--out", str(out), "--chunk-size", "100",
            "--batch-size", "2", "--precision", "fp32", "--no-progress"]  # small batches: the run outlasts its first shard
    env = {k: v for k, v in os.environ.items() if k != "ASTROCO_DEBUG"} | {"PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "astroco_hf.cli", *argv], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "e.parquet.partial"
    for _ in range(1200):
        if list(partial.glob("part-*.parquet")) or process.poll() is not None:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.startswith("astroco ")]
    assert process.returncode == 143 and len(lines) == 1, err[-2000:]
    assert lines[0].startswith("astroco embed: stopped by SIGTERM; ") and f"kept in {partial}" in lines[0]
    assert "--resume" in lines[0] and not out.exists()
    assert main([*argv, "--resume"]) == 0
    assert pq.read_table(out).num_rows == 1500 and not partial.exists()

