"""Two-process DDP on CPU (gloo) through `torchrun`, the launcher that works for Trainer on CPU here
(``accelerate launch --cpu`` does not initialise the process group, see the HF-stack notes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap

import pytest
from transformers import AutoModelForPreTraining

import astroco_hf

WORKER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    from astroco_hf.training import pretrain, resolve_arguments
    from astroco_hf.training.data import TrainingWindows

    out = Path(sys.argv[1])
    seen = []
    fetch = TrainingWindows.__getitems__

    def recording(self, indices):  # which (epoch, sample) pairs this rank fetched, in order
        seen.extend((self.epoch, int(i), len(self)) for i in indices)
        return fetch(self, indices)

    TrainingWindows.__getitems__ = recording
    args = resolve_arguments(
        "astroco-tiny", output_dir=str(out / "run"), model_overrides={"d_model": 32, "num_layers": 1}, window=64,
        batch_size=8, max_steps=4, eval_steps=2, logging_steps=1, crops_per_curve=2, warmup_steps=0,
        exact_batch_rmse=True, plot_windows=1,
    )
    pretrain(args, verbose=False)
    (out / f"seen-{os.environ['RANK']}.json").write_text(json.dumps(seen))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_process_ddp_on_cpu(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = ["torchrun", "--standalone", "--nproc_per_node", "2", str(tmp_path / "worker.py"), str(tmp_path)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]

    # Crops and masks are keyed by (seed, epoch, sample): different samples are different windows.
    seen = [json.loads((tmp_path / f"seen-{rank}.json").read_text()) for rank in (0, 1)]
    size = seen[0][0][2]
    first_steps = [{index for _, index, _ in rank[:8]} for rank in seen]  # 2 steps x 4 windows per rank
    assert len(first_steps[0]) == len(first_steps[1]) == 8 and not first_steps[0] & first_steps[1]
    # Together the ranks cover the whole first epoch (accelerate repeats a few samples to even out the
    # last batches, so the epochs overlap only there).
    assert {index for rank in seen for epoch, index, _ in rank if epoch == 0} == set(range(size))

    run = tmp_path / "run"
    results = json.loads((run / "eval_results.json").read_text())
    assert results["training"]["num_processes"] == 2
    assert results["training"]["hyperparameters"]["per_device_batch_size"] == 4  # global batch 8 over 2 ranks
    assert results["training"]["global_step"] == 4
    model = AutoModelForPreTraining.from_pretrained(run)
    assert isinstance(model, astroco_hf.AstroCoForMaskedReconstruction)
