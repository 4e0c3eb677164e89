"""SIGTERM / SIGINT sent to a real `astroco pretrain` process: it checkpoints the current step, prints the
exact resume command, exits 143 / 130 and leaves no lock and no results; `--resume` then logs the same
losses as an uninterrupted run. (A second run on a locked folder: tests/test_cli_errors.py.)"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from astroco_hf.cli import main
from astroco_hf.outputs import LOCK_NAME
from astroco_hf.training import pretrain, resolve_arguments

STEPS = 20  # more than the one or two steps the child runs before the signal arrives
FLAGS = ["--model-overrides", "d_model=32", "num_layers=1", "--window", "64", "--batch-size", "8",
         "--max-steps", str(STEPS), "--eval-steps", "10", "--logging-steps", "1", "--crops-per-curve", "2",
         "--warmup-steps", "0", "--plot-windows", "1"]


def _losses(output_dir: Path) -> dict[int, float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


def _interrupt(output_dir: Path, signum: int, stderr_file: Path) -> tuple[int, str]:
    """Start `astroco pretrain`, wait for its first loss log, send ``signum``; (exit status, stderr)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with stderr_file.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "astroco_hf.cli", "pretrain", "--output-dir", str(output_dir),
                                    *FLAGS], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        try:
            for line in process.stdout:  # Trainer prints each log dict on stdout
                if "'loss'" in line:
                    break
            else:
                pytest.fail(f"no training step logged: {stderr_file.read_text()[-2000:]}")
            process.send_signal(signum)
            process.stdout.read()
            code = process.wait(timeout=120)
        finally:
            process.kill()
    return code, stderr_file.read_text()


def test_sigterm_checkpoints_and_resume_matches_uninterrupted_run(tmp_path):
    run = tmp_path / "run"
    code, stderr = _interrupt(run, signal.SIGTERM, tmp_path / "stderr.txt")
    assert code == 143, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    config = run / "training_config.json"
    resume = shlex.join(["astroco", "pretrain", "--config", str(config), "--resume"])
    assert last.startswith("astroco pretrain: stopped by SIGTERM after step ") and last.endswith(f"resume with: {resume}")
    step = int(last.split("after step ")[1].split(";")[0])
    assert 1 <= step < STEPS and (run / f"checkpoint-{step}" / "trainer_state.json").is_file()
    assert not (run / "eval_results.json").exists() and not (run / LOCK_NAME).exists()

    assert main(shlex.split(resume)[1:]) == 0  # the printed command, in this process
    reference = pretrain(resolve_arguments(config_file=config, output_dir=str(tmp_path / "reference")), verbose=False)
    resumed, uninterrupted = _losses(run), _losses(reference.output_dir)
    assert sorted(resumed) == sorted(uninterrupted) == list(range(1, STEPS + 1))
    assert resumed == pytest.approx(uninterrupted, rel=1e-5)


@pytest.mark.slow
def test_sigint_stops_with_status_130(tmp_path):
    code, stderr = _interrupt(tmp_path / "run", signal.SIGINT, tmp_path / "stderr.txt")
    assert code == 130, stderr[-3000:]
    assert "stopped by SIGINT after step" in stderr and "--resume" in stderr
    assert list((tmp_path / "run").glob("checkpoint-*")) and not (tmp_path / "run" / LOCK_NAME).exists()
