"""The CPU kernels of `astroco_hf._cpu_kernels`: the plain model's function, one switch, nothing saved."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch
from conftest import make_batch

import astroco_hf.modeling_astroco as modeling
from astroco_hf import AstroCoConfig, AstroCoForMaskedReconstruction, AstroCoModel
from astroco_hf._cpu_kernels import (
    FEED_FORWARD_CHUNK_ROWS,
    KERNELS,
    _DepthwiseConv1dFunction,
    depthwise_conv1d,
    feed_forward_forward,
    kernel_of,
    set_cpu_kernels,
)
from astroco_hf.benchmark.runner import _perturb_batch_norm


def test_depthwise_backward_gradcheck_and_autograd():
    """The written-out backward: gradcheck in float64, equal to autograd of nn.Conv1d in fp32 and (to
    bf16 rounding) under bf16 autocast."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(3, 1, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(_DepthwiseConv1dFunction.apply, (x, weight, bias))

    conv = torch.nn.Conv1d(16, 16, 8, groups=16)
    x = torch.randn(4, 16, 47, generator=generator, requires_grad=True)
    grad = torch.randn(4, 16, 40, generator=generator)
    for autocast, tolerance in ((False, 1e-5), (True, 2e-2)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            expected = torch.autograd.grad(conv(x), (x, conv.weight, conv.bias), grad)
            output = depthwise_conv1d(x, conv)
        assert output.dtype == (torch.bfloat16 if autocast else torch.float32)
        actual = torch.autograd.grad(output, (x, conv.weight, conv.bias), grad)
        for a, e in zip(actual, expected, strict=True):
            assert a.dtype == e.dtype and a.shape == e.shape
            assert float((a - e).norm() / e.norm()) < tolerance


@pytest.mark.parametrize("lengths", [None, [200] * 12 + [150] * 12])
def test_inference_kernels_equal_plain_model(lengths):
    """Eval: folded BatchNorm and FFN row chunks (24 x 200 rows make two chunks) give the plain outputs."""
    torch.manual_seed(0)
    model = AstroCoModel(AstroCoConfig.from_preset("astroco-tiny"))
    _perturb_batch_norm(model, seed=0)  # running statistics away from (0, 1), so folding does real work
    model.eval()
    batch = make_batch(24, 200, seed=2, lengths=lengths)
    assert 24 * 200 // FEED_FORWARD_CHUNK_ROWS >= 2
    with torch.inference_mode():
        fused = model(**batch, output_hidden_states=True)
        plain = model.disable_cpu_kernels()(**batch, output_hidden_states=True)
    for a, b in zip(fused.hidden_states, plain.hidden_states, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused.pooler_output, plain.pooler_output, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lengths", [None, [40, 31, 12, 40]])
def test_training_step_equal_with_and_without_kernels(lengths):
    """Without dropout, loss, gradients and BatchNorm running statistics of a training step are the plain
    model's, with and without padding."""
    config = AstroCoConfig.from_preset("astroco-tiny", dropout=0.0)
    torch.manual_seed(0)
    model = AstroCoForMaskedReconstruction(config).train()
    start = copy.deepcopy(model.state_dict())
    batch = make_batch(batch=4, length=40, seed=1, lengths=lengths)
    targets = {"labels": batch["magnitudes"], "probed_positions": batch["attention_mask"].bool()}
    parameters = [p for p in model.parameters() if p.requires_grad]

    def step() -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        model.load_state_dict(start)
        loss = model(**batch, **targets).loss
        return [loss, *torch.autograd.grad(loss, parameters)], copy.deepcopy(model.state_dict())

    fast, fast_state = step()
    plain, plain_state = (model.disable_cpu_kernels(), step())[1]
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for name in fast_state:
        torch.testing.assert_close(fast_state[name], plain_state[name], rtol=1e-6, atol=1e-7)


def test_residual_dropout_kernel_keeps_probability_and_scale():
    dropout = modeling.AstroCoResidualDropout(0.25)
    set_cpu_kernels(dropout, True)
    residual = torch.randn(64, 50, 32)
    update = torch.full((64, 50, 32), 2.0, requires_grad=True)
    torch.manual_seed(0)
    output = dropout(residual, update)
    added = (output - residual).detach()
    kept = added.abs() > 1.0
    assert abs(float(kept.float().mean()) - 0.75) < 0.01  # keep probability 1 - p over 102,400 draws
    torch.testing.assert_close(added[kept], torch.full_like(added[kept], 2.0 / 0.75))
    assert float(added[~kept].abs().max()) < 1e-6
    (grad,) = torch.autograd.grad(output.sum(), update)
    torch.testing.assert_close(grad, kept.float() / 0.75)  # the gradient goes through the same mask
    torch.manual_seed(0)
    torch.testing.assert_close(dropout(residual, update), output)  # seeded like any torch dropout
    dropout.eval()
    torch.testing.assert_close(dropout(residual, update), residual + update)
    assert isinstance(dropout, torch.nn.Dropout)


def test_switch_is_runtime_state_only(tmp_path):
    """On by default, off and on again per model; state-dict keys, config.json and pickling unaffected."""
    assert set(KERNELS) <= set(vars(modeling))  # every kernel names a sublayer class of the model file
    model = AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny"))
    kernel_modules = [m for m in model.modules() if type(m).__name__ in KERNELS]
    assert model.cpu_kernels_enabled and all("forward" in vars(m) for m in kernel_modules)
    keys = list(model.state_dict())
    model.train().eval().train()
    assert model.cpu_kernels_enabled  # survives mode switches: the kernels read the live weights
    assert not model.disable_cpu_kernels().cpu_kernels_enabled
    assert all("forward" not in vars(m) for m in kernel_modules)
    assert list(model.state_dict()) == keys
    model.save_pretrained(tmp_path / "plain")
    model.enable_cpu_kernels().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()) == json.loads((tmp_path / "plain/config.json").read_text())
    assert (tmp_path / "_cpu_kernels.py").is_file()  # shipped with the remote code
    loaded = AstroCoForMaskedReconstruction.from_pretrained(tmp_path).eval()
    assert loaded.cpu_kernels_enabled
    batch = make_batch(2, 30, seed=3)
    clone = pickle.loads(pickle.dumps(loaded))
    assert clone.cpu_kernels_enabled
    assert torch.equal(clone(**batch).reconstruction, loaded(**batch).reconstruction)


def test_a_subclass_of_a_sublayer_is_switched_with_it():
    """A sublayer re-implemented by subclassing (the int8 copy's split FFN) gets its base class's kernel."""

    class SplitFeedForward(modeling.AstroCoFeedForward):
        pass

    config = AstroCoConfig.from_preset("astroco-tiny")
    model = AstroCoModel(config)
    model.layers[0].feed_forward = SplitFeedForward(config)
    assert kernel_of(model.layers[0].feed_forward) is feed_forward_forward and kernel_of(torch.nn.Linear(2, 2)) is None
    model.disable_cpu_kernels()
    assert "forward" not in vars(model.layers[0].feed_forward) and not model.cpu_kernels_enabled
    model.enable_cpu_kernels()
    assert "forward" in vars(model.layers[0].feed_forward) and model.cpu_kernels_enabled
