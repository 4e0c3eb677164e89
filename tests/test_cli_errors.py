"""User errors end every `astroco` command with exit status 2 and one line on stderr naming the culprit
(`--debug` / ASTROCO_DEBUG=1: the traceback); strict pretraining configs (more in test_training_arguments.py);
locked and atomic outputs; the LOAD REPORT of an expected head swap silenced (`astroco --help` /
`--version` without heavy imports: test_cli_startup.py).

Most cases call the CLI's `main` in this process (cheap); `test_commands_in_subprocesses` runs the real
`astroco` executable for each command."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from transformers import AutoModel

from astroco_hf import AstroCoConfig, AstroCoForMaskedReconstruction, AstroCoForSequenceClassification, AstroCoModel
from astroco_hf.cli import describe_user_error, main
from astroco_hf.errors import OutputError, PretrainingInputError
from astroco_hf.loading import load_pretrained
from astroco_hf.outputs import LOCK_NAME, atomic_output, lock_output_dir, read_lock
from astroco_hf.precision import native_bf16
from astroco_hf.training import resolve_arguments


def _cli(capsys, *argv: str) -> tuple[int, str]:
    """(exit status, the single error line) of ``astroco ARGV`` run in this process."""
    code = main(list(argv))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("astroco ")]
    assert len(lines) == 1, lines
    return code, lines[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A saved pretraining checkpoint (encoder + reconstruction head) of a 1-layer model."""
    path = tmp_path_factory.mktemp("model")
    AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny", d_model=32, num_layers=1)).save_pretrained(path)
    return path


# ---- pretraining arguments: strict keys and types, before any output ----

@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model-overrides", "d_modle=96"], "unknown model config key 'd_modle' (did you mean 'd_model'?)"),
        (["--model-overrides", "d_model=abc"], "d_model='abc': expected int"),
        (["--model-overrides", "dropout=high"], "dropout='high': expected float or int"),
        (["--model-overrides", "max_sequence_length=100"], "max_sequence_length is the window: set --window"),
        (["--model-overrides", "d_model=90"], "d_model (90) must be divisible by num_heads (4)"),
        (["--preset", "astroco-m"], "unknown preset 'astroco-m'"),
        (["--batch-size", "30", "--gradient-accumulation-steps", "4"], "batch_size 30 is not divisible"),
    ],
)
def test_bad_pretraining_flags(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    code, line = _cli(capsys, "pretrain", "--output-dir", str(out), *argv)
    assert code == 2 and line.startswith("astroco pretrain: error:") and message in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rat: 1.0e-3\n", "unknown pretraining argument 'learning_rat' (did you mean 'learning_rate'?)"),
        ("model_overrides: {num_layer: 2}\n", "unknown model config key 'num_layer' (did you mean 'num_layers'?)"),
        ("model_overrides: {d_model: '64'}\n", "d_model='64': expected int"),
        ("max_steps: many\n", "max_steps='many': expected int"),
        ("patience: [3]\n", "patience=[3]: expected int or None"),
        ("learning_rate: 1e-3\nwindow: 200: 3\n", "not valid YAML"),
    ],
)
def test_bad_config_file(text, message, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    code, line = _cli(capsys, "pretrain", "--config", str(config), "--output-dir", str(tmp_path / "out"))
    assert code == 2 and str(config) in line and message in line
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(native_bf16("cpu"), reason="this CPU multiplies bf16 natively")
@pytest.mark.parametrize("flags", [["--bf16"], ["--precision", "bf16"]])
def test_bf16_refused_where_emulated(flags, tmp_path, capsys):
    code, line = _cli(capsys, "pretrain", "--output-dir", str(tmp_path / "out"), *flags)
    assert code == 2 and "bf16 refused for training" in line and "--precision fp32" in line
    assert resolve_arguments(bf16=False).precision == "fp32"  # --no-bf16 / bf16: false: plain fp32


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    with pytest.raises(PretrainingInputError, match="d_modle"):
        main(["--debug", "pretrain", "--output-dir", str(tmp_path), "--model-overrides", "d_modle=1"])
    monkeypatch.setenv("ASTROCO_DEBUG", "1")
    with pytest.raises(PretrainingInputError, match="d_modle"):
        main(["pretrain", "--output-dir", str(tmp_path), "--model-overrides", "d_modle=1"])


# ---- output folders: lock, stale lock, earlier results ----

def _lock_of(folder: Path, pid: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier",
                                                 "command": "astroco pretrain"}))


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_second_run_on_a_locked_folder_is_refused(tmp_path, capsys):
    holder = subprocess.Popen(["sleep", "60"])  # a live process holding the folder, as a running job would
    try:
        _lock_of(tmp_path / "run", holder.pid)
        code, line = _cli(capsys, "pretrain", "--output-dir", str(tmp_path / "run"), "--overwrite")
        assert code == 2 and f"in use by another run: pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    assert read_lock(tmp_path / "run")["pid"] == holder.pid  # the refused run left the lock alone


def test_stale_lock_is_reported_and_taken_over_only_when_asked(tmp_path, capsys):
    folder = tmp_path / "run"
    _lock_of(folder, _dead_pid())
    code, line = _cli(capsys, "pretrain", "--output-dir", str(folder))
    assert code == 2 and "stale lock of a dead process" in line and "--resume or --overwrite" in line
    with lock_output_dir(folder, take_over=True):
        assert read_lock(folder)["pid"] == os.getpid()
    assert "Taking over the stale lock" in capsys.readouterr().err
    assert not (folder / LOCK_NAME).exists()


def test_earlier_results_need_resume_or_overwrite(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "eval_results.json").write_text("{}")
    code, line = _cli(capsys, "pretrain", "--output-dir", str(tmp_path / "run"))
    assert code == 2 and "already holds an earlier run (eval_results.json)" in line
    assert (tmp_path / "run" / "eval_results.json").read_text() == "{}"


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "embeddings.parquet"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as temporary:
        temporary.write_text("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as temporary:
        temporary.write_text("done")
    assert target.read_text() == "done"
    with pytest.raises(OutputError, match="already exists; pass --overwrite"), atomic_output(target):
        pass
    with atomic_output(tmp_path / "folder") as temporary:  # folders too
        temporary.mkdir()
        (temporary / "a.txt").write_text("a")
    assert (tmp_path / "folder" / "a.txt").read_text() == "a" and sorted(p.name for p in tmp_path.iterdir()) == [
        "embeddings.parquet", "folder"]


# ---- other commands: foreign errors become one line at the CLI boundary ----

def test_model_path_errors(model_dir, tmp_path, capsys):
    code, line = _cli(capsys, "info", "--model", str(tmp_path / "missing"))  # the command's own check or the CLI's
    assert code == 2 and "model folder" in line and str(tmp_path / "missing") in line
    with pytest.raises(OSError) as raised:  # what a command that does not check the path itself gets
        AstroCoModel.from_pretrained(str(tmp_path / "missing"))
    assert describe_user_error(raised.value).startswith(f"no such model folder: {tmp_path / 'missing'} (pass a folder")
    truncated = tmp_path / "truncated"
    shutil.copytree(model_dir, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(Exception) as raised:  # whichever command loads the weights
        AstroCoModel.from_pretrained(truncated)
    assert describe_user_error(raised.value).startswith(f"cannot read {weights}: ")


def test_bugs_keep_their_traceback():
    import numpy as np

    with pytest.raises(ValueError) as raised:  # a ValueError from a library, not from our validation
        np.zeros(3).reshape(2, 2)
    assert describe_user_error(raised.value) is None and describe_user_error(KeyError("x")) is None


def test_unreadable_and_missing_inputs(model_dir, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out = tmp_path / "embeddings.parquet"
    code, line = _cli(capsys, "embed", "--model", str(model_dir), "--data", str(empty), "--out", str(out), "--no-progress")
    assert code == 2 and f"cannot read {empty}: Empty CSV file" in line  # (no output left: the embed owner's atomic_output)
    code, line = _cli(capsys, "prepare", str(tmp_path / "nowhere.csv"), "--out", str(tmp_path / "prepared"))
    assert code == 2 and "nowhere.csv" in line and not (tmp_path / "prepared").exists()


# ---- item 9: no LOAD REPORT for the expected head swap ----

class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_head_swap_without_load_report(model_dir, tmp_path):
    records = _Records()  # on the logger transformers writes its report to (it does not propagate to pytest's)
    logging.getLogger("transformers.modeling_utils").addHandler(records)
    try:
        assert isinstance(load_pretrained(AstroCoModel, model_dir), AstroCoModel)
        classifier = load_pretrained(AstroCoForSequenceClassification, model_dir, num_labels=3)
        assert classifier.config.num_labels == 3 and not any("LOAD REPORT" in m for m in records.messages)
        # Plain transformers too (AutoModel, pipeline("feature-extraction")): the encoder ignores head keys.
        assert isinstance(AutoModel.from_pretrained(model_dir), AstroCoModel) and not records.messages
        from safetensors.torch import load_file, save_file

        broken = tmp_path / "broken"  # an encoder weight missing: the report is shown
        shutil.copytree(model_dir, broken)
        weights = load_file(broken / "model.safetensors")
        weights.pop("astroco.embeddings.layer_norm.weight")
        save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
        load_pretrained(AstroCoModel, broken)
    finally:
        logging.getLogger("transformers.modeling_utils").removeHandler(records)
    assert len(records.messages) == 1 and "LOAD REPORT" in records.messages[0]
    assert "embeddings.layer_norm.weight" in records.messages[0]


# ---- real processes ----

@pytest.mark.slow
def test_commands_in_subprocesses(model_dir, tmp_path):
    """The installed `astroco` executable, one bad input per command, all run at once."""
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("object_id,time,mag,mag_err\n")
    cases = {
        "pretrain": (["pretrain", "--output-dir", str(tmp_path / "p"), "--model-overrides", "d_modle=96"], "'d_model'"),
        "info": (["info", "--model", str(tmp_path / "nomodel")], str(tmp_path / "nomodel")),
        "embed": (["embed", "--model", str(model_dir), "--data", str(tmp_path / "empty.csv"), "--out",
                   str(tmp_path / "e.parquet"), "--no-progress"], f"cannot read {tmp_path / 'empty.csv'}"),
        "prepare": (["prepare", str(tmp_path / "nowhere.csv"), "--out", str(tmp_path / "prep")], "nowhere.csv"),
        "fewshot": (["fewshot", "--model", str(tmp_path / "nomodel"), "--data", str(tmp_path / "nowhere.parquet"),
                     "--out", str(tmp_path / "f")], ("nomodel", "nowhere.parquet")),  # whichever it checks first
    }
    executable = shutil.which("astroco") or pytest.skip("the astroco executable is not installed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    processes = {name: subprocess.Popen([executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=env) for name, (argv, _) in cases.items()}
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=600)
        lines = [line for line in stderr.splitlines() if line.startswith("astroco ")]
        assert process.returncode == 2 and len(lines) == 1, (name, stderr[-2000:])
        culprits = cases[name][1] if isinstance(cases[name][1], tuple) else (cases[name][1],)
        assert lines[0].startswith(f"astroco {name}: error:") and any(c in lines[0] for c in culprits), lines[0]
        assert "Traceback" not in stderr
    assert not any((tmp_path / name).exists() for name in ("p", "prep", "f"))
