"""Save -> load through every Auto class, in fresh processes, with and without the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

from astroco_hf import AstroCoConfig, AstroCoForMaskedReconstruction, AstroCoForSequenceClassification

AUTO_CLASSES = ("AutoModel", "AutoModelForPreTraining", "AutoModelForSequenceClassification")

# Loads the folder with each Auto class and saves the eval-mode outputs on the fixed batch.
LOADER = textwrap.dedent(
    """
    import sys, torch
    if sys.argv[3] == "remote":
        sys.modules["astroco_hf"] = None  # the package must not be importable: Hub remote code only
    else:
        import astroco_hf  # noqa: F401  (registers the Auto classes)
    import transformers
    folder, out = sys.argv[1], sys.argv[2]
    batch = torch.load(folder + "/batch.pt")
    results = {}
    for name in ("AutoModel", "AutoModelForPreTraining", "AutoModelForSequenceClassification"):
        model = getattr(transformers, name).from_pretrained(folder, trust_remote_code=sys.argv[3] == "remote").eval()
        results[name + ".module"] = type(model).__module__
        results[name + ".kernels"] = model.cpu_kernels_enabled
        kernel = model.get_submodule("layers.0.feed_forward" if name == "AutoModel" else "astroco.layers.0.feed_forward")
        results[name + ".kernel_module"] = kernel.forward.func.__module__
        with torch.no_grad():
            output = model(**batch)
        results[name] = [v for v in output.values() if isinstance(v, torch.Tensor)]
    torch.save(results, out)
    """
)


def trained_tiny_model(batch_factory: Callable[..., dict[str, torch.Tensor]]) -> AstroCoForMaskedReconstruction:
    """A tiny model after a few optimiser steps, so BatchNorm statistics and weights are not at init."""
    torch.manual_seed(0)
    config = AstroCoConfig.from_preset("astroco-tiny", num_labels=3)
    model = AstroCoForMaskedReconstruction(config)
    model.astroco.layer_weights.data = torch.tensor([0.3, -0.2, 0.5])  # as if learned downstream
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(3):
        batch = batch_factory(4, 30, seed=step, lengths=[30, 20, 25, 11])
        probed = torch.rand(4, 30) < 0.5
        model(**batch, labels=batch["magnitudes"], probed_positions=probed).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def run_loader(folder: Path, tmp_path: Path, mode: str) -> dict:
    out = tmp_path / f"{mode}.pt"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / f"modules-{mode}"))
    if mode == "remote":
        env["PYTHONPATH"] = ""
    subprocess.run([sys.executable, "-c", LOADER, str(folder), str(out), mode], check=True, env=env,
                   cwd=tmp_path, timeout=300)
    return torch.load(out)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, batch_factory):
    folder = tmp_path_factory.mktemp("astroco-tiny")
    model = trained_tiny_model(batch_factory)
    model.save_pretrained(folder)
    batch = batch_factory(3, 30, seed=42, lengths=[30, 17, 24])
    torch.save(batch, folder / "batch.pt")
    with torch.no_grad():
        expected = {
            "AutoModel": model.astroco(**batch),
            "AutoModelForPreTraining": model(**batch),
        }
    classifier, info = AstroCoForSequenceClassification.from_pretrained(folder, output_loading_info=True)
    return folder, model, batch, expected, classifier.eval(), info


def test_saved_folder_is_complete(saved):
    folder = saved[0]
    assert (folder / "model.safetensors").is_file()
    assert (folder / "modeling_astroco.py").is_file() and (folder / "configuration_astroco.py").is_file()
    assert (folder / "_cpu_kernels.py").is_file()  # modeling_astroco's relative import, shipped with it
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", *AUTO_CLASSES}


def test_pretraining_checkpoint_loads_into_classifier_with_only_head_missing(saved):
    info = saved[5]
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    # The pretraining head is dropped as declared (AstroCoModel._keys_to_ignore_on_load_unexpected), unreported.
    assert sorted(info["unexpected_keys"]) == []
    assert info["mismatched_keys"] == [] or not info["mismatched_keys"]


def test_in_process_auto_classes_and_buffers(saved):
    folder, model, batch, expected = saved[:4]
    loaded = AutoModel.from_pretrained(folder).eval()
    inv_freq = loaded.embeddings.time_embedding.inv_freq
    torch.testing.assert_close(inv_freq, model.astroco.embeddings.time_embedding.inv_freq, atol=0, rtol=0)
    assert inv_freq.abs().min() > 0
    with torch.no_grad():
        assert torch.equal(loaded(**batch).pooler_output, expected["AutoModel"].pooler_output)
    assert type(AutoModelForPreTraining.from_pretrained(folder)).__name__ == "AstroCoForMaskedReconstruction"
    assert type(AutoModelForSequenceClassification.from_pretrained(folder)).__name__ == "AstroCoForSequenceClassification"


@pytest.mark.parametrize("mode", ["installed", "remote"])
def test_fresh_process_outputs_are_bit_identical(saved, tmp_path, mode):
    folder, _, batch, expected, classifier, _ = saved
    results = run_loader(folder, tmp_path, mode)
    if mode == "remote":
        assert all(results[f"{name}.module"].startswith("transformers_modules") for name in AUTO_CLASSES)
        # The CPU kernels come from the shipped _cpu_kernels.py, on by default there too.
        assert all(results[f"{name}.kernel_module"].startswith("transformers_modules")
                   and results[f"{name}.kernel_module"].endswith("._cpu_kernels") for name in AUTO_CLASSES)
    else:
        assert all(results[f"{name}.module"] == "astroco_hf.modeling_astroco" for name in AUTO_CLASSES)
        assert all(results[f"{name}.kernel_module"] == "astroco_hf._cpu_kernels" for name in AUTO_CLASSES)
    assert all(results[f"{name}.kernels"] for name in AUTO_CLASSES)
    # Per-step outputs are compared where they mean something: at padding they are unused and may
    # differ in the last bit with memory alignment.
    valid = batch["attention_mask"].bool()
    assert torch.equal(results["AutoModel"][0][valid], expected["AutoModel"].last_hidden_state[valid])
    assert torch.equal(results["AutoModel"][1], expected["AutoModel"].pooler_output)
    assert torch.equal(results["AutoModelForPreTraining"][0][valid], expected["AutoModelForPreTraining"].reconstruction[valid])
    assert torch.equal(results["AutoModelForPreTraining"][1], expected["AutoModelForPreTraining"].pooler_output)
    # The classifier head is freshly initialised in each process; the embedding it reads is not.
    with torch.no_grad():
        reference = classifier(**batch)
    assert torch.equal(results["AutoModelForSequenceClassification"][1], reference.pooler_output)
