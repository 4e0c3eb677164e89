"""Issue 15 in embed / fewshot / prepare / ablation: no LOAD REPORT for the head swap, one --precision
vocabulary in fewshot, refused and atomic outputs, one-line user errors (exit 2) instead of tracebacks."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from astroco_hf import AstroCoConfig, AstroCoForMaskedReconstruction
from astroco_hf.precision import bf16_problem

FEWSHOT_FAST = ["--no-progress", "--shots", "2", "--n-test", "3", "--folds", "1", "--seeds", "1",
                "--feature-classifier", "logreg", "--no-feature-cache"]


def astroco(*args: str) -> subprocess.CompletedProcess:
    """`python -m astroco_hf.cli ARGS` as a user runs it (no --debug)."""
    env = {k: v for k, v in os.environ.items() if k != "ASTROCO_DEBUG"}
    return subprocess.run([sys.executable, "-m", "astroco_hf.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def error_lines(stderr: str) -> list[str]:
    """stderr without progress bars (transformers' 'Loading weights' bar)."""
    return [line for line in stderr.splitlines() if line.strip() and "it/s]" not in line]


@pytest.fixture(scope="module")
def pretraining_checkpoint(tmp_path_factory) -> Path:
    """A pretraining checkpoint (encoder + reconstruction head): loading it for embedding drops the head."""
    folder = tmp_path_factory.mktemp("model")
    AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory) -> Path:
    """Two classes of 12 objects (60 points each): a slow low-amplitude and a faster larger variation."""
    rng = np.random.default_rng(0)
    rows = []
    for code, label in enumerate(("quiet", "variable")):
        for i in range(12):
            t = np.sort(rng.uniform(0.0, 500.0, 60))
            m = 17.0 + (0.5 if code else 0.05) * np.sin(t / (3.0 + 20.0 * code)) + rng.normal(0, 0.02, 60)
            rows += [{"object_id": f"{label}{i}", "time": a, "mag": b, "mag_err": 0.02, "label": label}
                     for a, b in zip(t, m, strict=True)]
    path = tmp_path_factory.mktemp("data") / "labelled.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_embedding_a_pretraining_checkpoint_prints_no_load_report(pretraining_checkpoint, labelled_csv, tmp_path):
    out = tmp_path / "embeddings.parquet"
    run = astroco("embed", "--model", str(pretraining_checkpoint), "--data", str(labelled_csv), "--out", str(out),
                  "--precision", "fp32", "--no-progress")
    assert run.returncode == 0, run.stderr
    assert out.is_file()
    assert "LOAD REPORT" not in run.stderr and "Some weights" not in run.stderr
    assert "reconstruction_head" not in run.stderr


def test_fewshot_bf16_alias_overwrite_refusal_and_atomic_results(pretraining_checkpoint, labelled_csv, tmp_path):
    out = tmp_path / "fewshot"
    base = ["fewshot", "--model", str(pretraining_checkpoint), "--data", str(labelled_csv), "--out", str(out),
            *FEWSHOT_FAST]
    run = astroco(*base, "--bf16")
    assert run.returncode == 0, run.stderr
    lines = error_lines(run.stderr)
    assert "astroco fewshot: --bf16 is deprecated; use --precision bf16" in lines
    problem = bf16_problem("cpu")
    assert sum("emulated" in line for line in lines) == (problem is not None)  # once, from the precision module
    assert "LOAD REPORT" not in run.stderr and "Some weights" not in run.stderr
    record = json.loads((out / "fewshot_results.json").read_text())
    assert record["embedding"]["inference_path"] == "bf16"
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.png", "fewshot_results.json", "fewshot_table.md"]
    assert not list(tmp_path.glob(".*tmp*")) and not list(out.glob(".*"))  # no temporaries, no lock left

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = astroco(*base)
    assert again.returncode == 2
    assert error_lines(again.stderr) == [f"astroco fewshot: error: {out / 'fewshot_results.json'} already exists; "
                                         "pass --overwrite to replace it or choose another output path"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("precision", ["int8", "auto"])
def test_fewshot_precision_vocabulary_eager_paths(pretraining_checkpoint, labelled_csv, tmp_path, capsys, precision):
    from astroco_hf.cli import main

    out = tmp_path / "fewshot"
    (out / "notes.txt").parent.mkdir()
    (out / "notes.txt").write_text("kept")  # --overwrite replaces the result files only
    (out / "fewshot_results.json").write_text("{}")
    assert main(["fewshot", "--model", str(pretraining_checkpoint), "--data", str(labelled_csv), "--out", str(out),
                 "--precision", precision, "--overwrite", *FEWSHOT_FAST]) == 0
    record = json.loads((out / "fewshot_results.json").read_text())
    path = record["embedding"]["inference_path"]
    assert path == "int8" if precision == "int8" else path in {"fp32", "int8", "bf16"}  # eager only: layer means
    assert (out / "notes.txt").read_text() == "kept"
    assert record["results"]["astroco"]["2"]["runs"] == 1


@pytest.mark.parametrize("content", ["object_id,time,mag,mag_err,label\n",
                                     "object_id,time,mag,mag_err,label\na,1.0,17.0,0.1,\na,2.0,17.1,0.1,\n"],
                         ids=["header-only", "unlabelled"])
def test_fewshot_without_labelled_curves_is_one_line(pretraining_checkpoint, tmp_path, content):
    data = tmp_path / "empty.csv"
    data.write_text(content)
    out = tmp_path / "fewshot"
    run = astroco("fewshot", "--model", str(pretraining_checkpoint), "--data", str(data), "--out", str(out),
                  *FEWSHOT_FAST)
    assert run.returncode == 2 and len(error_lines(run.stderr)) == 1, run.stderr
    assert str(data) in run.stderr and not out.exists()


def fifteen_stars_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = [{"object_id": f"star{i}", "time": 48_900.0 + k * 0.7, "mag": 17.0 + rng.normal(0, 0.1), "mag_err": 0.05}
            for i in range(15) for k in range(60)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_prepare_refuses_an_existing_folder_before_work_and_writes_atomically(tmp_path):
    data = fifteen_stars_csv(tmp_path / "stars.csv")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("x")
    refused = astroco("prepare", str(data), "--out", str(taken), "--no-progress")
    assert refused.returncode == 2
    assert error_lines(refused.stderr) == [f"astroco prepare: error: {taken} is not empty "
                                           "(pass overwrite=True / --overwrite to replace it)"]
    assert "Cleaning report" not in refused.stdout  # refused before reading the data
    forced = astroco("prepare", str(data), "--out", str(taken), "--no-progress", "--overwrite")
    assert forced.returncode == 2 and "not a prepared dataset folder" in forced.stderr
    assert (taken / "mine.txt").read_text() == "x"

    out = tmp_path / "prepared"
    assert astroco("prepare", str(data), "--out", str(out), "--no-progress").returncode == 0
    assert (out / "dataset_dict.json").is_file() and (out / "README.md").is_file()
    assert not list(tmp_path.glob(".prepared.tmp-*"))
    replaced = astroco("prepare", str(data), "--out", str(out), "--no-progress", "--overwrite", "--seed", "1")
    assert replaced.returncode == 0, replaced.stderr
    assert (out / "dataset_dict.json").is_file() and not list(tmp_path.glob(".prepared.tmp-*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_prepare_into_an_unwritable_folder_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        run = astroco("prepare", str(fifteen_stars_csv(tmp_path / "stars.csv")), "--out", str(locked / "prepared"),
                      "--no-progress")
    finally:
        locked.chmod(0o700)
    assert run.returncode == 2 and len(error_lines(run.stderr)) == 1, run.stderr
    assert f"{locked} is not writable" in run.stderr


def test_ablation_calls_the_pretrain_function_after_its_submodule_was_imported(monkeypatch, tmp_path):
    # The submodule first: it shadows the package attribute. import_module returns the module itself
    # (``import astroco_hf.training.pretrain as m`` may bind the function that shadows it).
    pretrain_module = importlib.import_module("astroco_hf.training.pretrain")
    from astroco_hf.ablation import AblationConfig, _pretrain_variant

    calls = []

    class Result:
        eval_results = {"eval_loss": 0.5}

    def fake_pretrain(args, *, verbose):
        calls.append(args)
        return Result()

    monkeypatch.setattr(pretrain_module, "pretrain", fake_pretrain)
    data = tmp_path / "curves.parquet"
    data.touch()
    results = _pretrain_variant(AblationConfig(max_steps=3), {"d_model": 64}, 7, tmp_path / "run", [str(data)])
    assert results == {"eval_loss": 0.5}
    assert len(calls) == 1 and calls[0].seed == 7 and calls[0].max_steps == 3
