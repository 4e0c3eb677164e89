"""The model family: paper parameter counts, invariances, leakage, attention kernels, errors."""

from __future__ import annotations

import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError

from astroco_hf import (
    AstroCoConfig,
    AstroCoForMaskedReconstruction,
    AstroCoForSequenceClassification,
    AstroCoModel,
)
from astroco_hf.cli import main as cli_main
from astroco_hf.modeling_astroco import AstroCoConvolutionModule


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("preset", "paper_millions"), [("astroco-s", 5.93), ("astroco-l", 15.19)])
def test_preset_parameter_counts_match_paper(preset, paper_millions, capsys):
    model = AstroCoForMaskedReconstruction(AstroCoConfig.from_preset(preset))
    assert abs(count(model) / 1e6 - paper_millions) / paper_millions < 0.01
    assert cli_main(["info", "--preset", preset, "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)["parameters"]
    assert reported["total"] == count(model)
    assert reported["heads"] == model.config.d_model + 1  # the one-unit regression head


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 30}, "divisible by num_heads"),
        ({"d_model": 42, "num_heads": 6}, "divisible by 4"),
        ({"conv_kernel_size": 0}, "conv_kernel_size must be positive"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"pooling": "max"}, "pooling must be one of"),
        ({"input_fusion": "sum"}, "input_fusion must be one of"),
    ],
)
def test_bad_config_fails_at_construction(overrides, message):
    with pytest.raises(StrictDataclassError, match=message):
        AstroCoConfig(**overrides)


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown AstroCo preset"):
        AstroCoConfig.from_preset("astroco-xl")


def test_forward_shapes_and_outputs(tiny_config, batch_factory):
    model = AstroCoForMaskedReconstruction(tiny_config).eval()
    batch = batch_factory(3, 25, lengths=[25, 10, 18])
    probed = torch.rand(3, 25) < 0.5
    out = model(**batch, labels=batch["magnitudes"], probed_positions=probed, output_hidden_states=True)
    assert out.reconstruction.shape == (3, 25)
    assert out.pooler_output.shape == (3, tiny_config.d_model)
    assert len(out.hidden_states) == tiny_config.num_layers + 1
    assert torch.allclose(out.layer_weights.sum(), torch.tensor(1.0))
    valid = probed & batch["attention_mask"].bool()
    expected = (out.reconstruction - batch["magnitudes"])[valid].square().mean().sqrt()
    assert torch.allclose(out.loss, expected, atol=1e-6)
    assert model(**batch).loss is None
    tuple_out = model(**batch, return_dict=False)
    assert torch.equal(tuple_out[0], out.reconstruction)


def test_padding_invariance(tiny_config, batch_factory):
    model = AstroCoModel(tiny_config).eval()
    single = batch_factory(1, 30, seed=3)
    reference = model(**single)

    padded = {k: torch.cat([v, torch.full((1, 20), 7.0, dtype=v.dtype)], dim=1) for k, v in single.items()}
    padded["attention_mask"][:, 30:] = 0
    others = batch_factory(2, 50, seed=4)
    batched = {k: torch.cat([padded[k], others[k]], dim=0) for k in padded}
    for inputs in (padded, batched):
        out = model(**inputs)
        torch.testing.assert_close(out.last_hidden_state[0, :30], reference.last_hidden_state[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.pooler_output[0], reference.pooler_output[0], atol=1e-5, rtol=0)


def test_batch_norm_statistics_ignore_padding(tiny_config, batch_factory):
    """Training-mode statistics (and so the running buffers) only count valid points."""
    torch.manual_seed(0)
    tiny_config.dropout = 0.0
    short = AstroCoModel(tiny_config).train()
    long = AstroCoModel(tiny_config).train()
    long.load_state_dict(short.state_dict())
    batch = batch_factory(2, 20, seed=5)
    padded = {k: torch.cat([v, torch.full((2, 30), -3.0, dtype=v.dtype)], dim=1) for k, v in batch.items()}
    padded["attention_mask"][:, 20:] = 0
    out_short, out_long = short(**batch), long(**padded)
    torch.testing.assert_close(out_long.last_hidden_state[:, :20], out_short.last_hidden_state, atol=1e-5, rtol=0)
    bn_short = short.layers[0].conv_module.batch_norm
    bn_long = long.layers[0].conv_module.batch_norm
    torch.testing.assert_close(bn_long.running_mean, bn_short.running_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(bn_long.running_var, bn_short.running_var, atol=1e-6, rtol=0)


@pytest.mark.parametrize("train_mode", [False, True])
def test_hidden_values_never_leak(tiny_config, train_mode, batch_factory):
    model = AstroCoForMaskedReconstruction(tiny_config).train(train_mode)
    batch = batch_factory(2, 30, seed=6)
    hidden = torch.zeros(2, 30, dtype=torch.bool)
    hidden[:, ::3] = True
    tampered = dict(batch)
    tampered["magnitudes"] = torch.where(hidden, torch.tensor(float("nan")), batch["magnitudes"])
    tampered["uncertainties"] = torch.where(hidden, torch.randn(2, 30) * 100, batch["uncertainties"])
    torch.manual_seed(1)
    first = model(**batch, masked_positions=hidden, output_hidden_states=True)
    torch.manual_seed(1)
    second = model(**tampered, masked_positions=hidden, output_hidden_states=True)
    assert torch.equal(first.reconstruction, second.reconstruction)
    for a, b in zip(first.hidden_states, second.hidden_states, strict=True):
        assert torch.equal(a, b)
    # Gradients confirm it: the loss does not depend on any hidden input value.
    magnitudes = batch["magnitudes"].clone().requires_grad_(True)
    uncertainties = batch["uncertainties"].clone().requires_grad_(True)
    out = model(batch["times"], magnitudes, uncertainties, batch["attention_mask"], hidden,
                labels=batch["magnitudes"], probed_positions=hidden)
    out.loss.backward()
    assert torch.all(magnitudes.grad[hidden] == 0) and torch.all(uncertainties.grad[hidden] == 0)
    assert magnitudes.grad[~hidden].abs().sum() > 0


def test_eager_and_sdpa_agree(tiny_config, batch_factory):
    torch.manual_seed(0)
    eager = AstroCoModel(AstroCoConfig.from_preset("astroco-tiny", attn_implementation="eager")).eval()
    sdpa = AstroCoModel(AstroCoConfig.from_preset("astroco-tiny")).eval()
    sdpa.load_state_dict(eager.state_dict())
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    batch = batch_factory(3, 40, seed=7, lengths=[40, 13, 27])
    a, b = eager(**batch), sdpa(**batch)
    valid = batch["attention_mask"].bool()
    torch.testing.assert_close(a.last_hidden_state[valid], b.last_hidden_state[valid], atol=1e-5, rtol=0)
    torch.testing.assert_close(a.pooler_output, b.pooler_output, atol=1e-5, rtol=0)


def test_depthwise_convolution_offsets_follow_paper_formula():
    """Y[t] = sum_k W[k] X[t + k - K//2] for even K: an impulse at t0 lands at t0 + K//2 - k."""
    config = AstroCoConfig.from_preset("astroco-tiny", conv_kernel_size=4)
    module = AstroCoConvolutionModule(config)
    kernel = config.conv_kernel_size
    x = torch.zeros(1, config.d_model, 12)
    x[0, :, 6] = 1.0
    for k in range(kernel):
        weight = torch.zeros_like(module.depthwise.weight)
        weight[:, 0, k] = 1.0
        module.depthwise.weight.data.copy_(weight)
        module.depthwise.bias.data.zero_()
        y = module.depthwise(torch.nn.functional.pad(x, module.pad))
        assert y.shape[-1] == 12
        assert int(y[0, 0].argmax()) == 6 + kernel // 2 - k


def test_time_origin_invariance(tiny_config, batch_factory):
    model = AstroCoModel(tiny_config).eval()
    batch = batch_factory(2, 30, seed=8)
    shifted = dict(batch, times=batch["times"] - 50000.0)
    torch.testing.assert_close(model(**batch).pooler_output, model(**shifted).pooler_output, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(magnitudes=b["magnitudes"][:, :-1]), "`magnitudes` has shape"),
        (lambda b: b["magnitudes"].__setitem__((0, 3), float("nan")), "`magnitudes` has a non-finite value"),
        (lambda b: b["times"].__setitem__((1, 2), float("inf")), "`times` has a non-finite value"),
        (lambda b: b["attention_mask"].__setitem__(1, 0), "no valid observation"),
        (lambda b: b.update({k: v.repeat(1, 6) for k, v in b.items()}), "exceeds config.max_sequence_length"),
        (lambda b: b.update(magnitudes=b["magnitudes"].long()), "`magnitudes` must be a floating-point tensor"),
        (lambda b: b.update(attention_mask=b["attention_mask"].float()), "`attention_mask` must be bool or integer"),
        (lambda b: b.update(masked_positions=torch.zeros(2, 40)), "`masked_positions` must be a bool tensor"),
        (lambda b: b.update(times=b["times"].numpy()), "`times` must be a torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error(tiny_config, change, message, batch_factory):
    model = AstroCoModel(tiny_config)
    batch = batch_factory(2, 40, seed=9)
    change(batch)
    with pytest.raises(ValueError, match=message):
        model(**batch)


def test_nan_at_padding_is_harmless(tiny_config, batch_factory):
    model = AstroCoModel(tiny_config).eval()
    batch = batch_factory(2, 20, seed=10, lengths=[20, 12])
    batch["magnitudes"][1, 12:] = float("nan")
    batch["times"][1, 12:] = float("nan")
    assert torch.isfinite(model(**batch).pooler_output).all()


def test_frozen_encoder_trains_only_head_and_mix(tiny_config, batch_factory):
    tiny_config.freeze_encoder = True
    model = AstroCoForSequenceClassification(tiny_config).train()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"astroco.layer_weights", "classifier.weight", "classifier.bias"}
    assert model.training and not model.astroco.training  # BatchNorm statistics and dropout fixed
    batch = batch_factory(4, 30, seed=11)
    labels = torch.tensor([0, 1, 2, 1])
    out = model(**batch, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    out.loss.backward()
    assert model.astroco.layer_weights.grad is not None
    with pytest.raises(ValueError, match="class indices"):
        model(**batch, labels=torch.tensor([0, 1, 2, 3]))


def test_frozen_encoder_survives_from_pretrained(tiny_config, tmp_path):
    AstroCoForMaskedReconstruction(tiny_config).save_pretrained(tmp_path)
    model = AstroCoForSequenceClassification.from_pretrained(tmp_path, freeze_encoder=True, num_labels=3)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"astroco.layer_weights", "classifier.weight", "classifier.bias"}
    assert not model.train().astroco.training


def test_gradient_checkpointing_matches(tiny_config, batch_factory):
    tiny_config.dropout = 0.0
    model = AstroCoForMaskedReconstruction(tiny_config).eval()
    batch = batch_factory(2, 30, seed=12)
    probed = torch.rand(2, 30) < 0.5
    loss = model(**batch, labels=batch["magnitudes"], probed_positions=probed).loss
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    model.activation_checkpointing_enable()
    model.train()
    model.apply(lambda m: m.eval() if not isinstance(m, AstroCoForMaskedReconstruction) else None)
    loss_ckpt = model(**batch, labels=batch["magnitudes"], probed_positions=probed).loss
    grads_ckpt = torch.autograd.grad(loss_ckpt, params)
    torch.testing.assert_close(loss_ckpt, loss)
    for a, b in zip(grads, grads_ckpt, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("switches", [
    {"use_conv_module": False},
    {"ffn_type": "mlp"},
    {"input_fusion": "additive"},
    {"pooling": "last"},
    {"pooling": "mean_layers"},
])
def test_ablation_switches_run(switches, batch_factory):
    model = AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny", **switches))
    batch = batch_factory(2, 20, seed=13)
    out = model(**batch, labels=batch["magnitudes"], probed_positions=torch.ones(2, 20, dtype=torch.bool))
    out.loss.backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []  # DDP runs with find_unused_parameters=False
    if switches.get("pooling") == "last":
        assert out.layer_weights[-1] == 1.0


def test_unknown_config_key_warns_once_with_the_closest_field(tiny_config, tmp_path, caplog):
    tiny_config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, "d_modle": 96}))
    with caplog.at_level("WARNING", logger="astroco_hf.configuration_astroco"):
        config = AstroCoConfig.from_pretrained(tmp_path)
    warnings = [r.getMessage() for r in caplog.records if r.name == "astroco_hf.configuration_astroco"]
    assert len(warnings) == 1 and "'d_modle' (did you mean 'd_model'?)" in warnings[0]
    assert config.d_model == tiny_config.d_model
    caplog.clear()
    (tmp_path / "config.json").write_text(json.dumps({**saved, "astroco_hf_version": "1.0"}))  # written by release
    with caplog.at_level("WARNING", logger="astroco_hf.configuration_astroco"):
        AstroCoConfig.from_pretrained(tmp_path, num_labels=3, attn_implementation="eager")
    assert not [r for r in caplog.records if r.name == "astroco_hf.configuration_astroco"]


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("d_model", "64", "AstroCoConfig: d_model='64' (str) must be int."),
    ("dropout", True, "AstroCoConfig: dropout=True (bool) must be float or int."),
    ("center_times", 1, "AstroCoConfig: center_times=1 (int) must be bool."),
    ("ffn_type", None, "AstroCoConfig: ffn_type=None (NoneType) must be str."),
])
def test_wrong_config_type_is_one_line_value_error(tiny_config, tmp_path, key, value, expected):
    tiny_config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, key: value}))
    with pytest.raises(ValueError) as error:
        AstroCoConfig.from_pretrained(tmp_path)
    assert str(error.value) == expected
    with pytest.raises(ValueError, match="must be"):
        AstroCoConfig(**{key: value})


def test_output_attentions_eager_and_sdpa(tiny_config, caplog, batch_factory):
    """Per-layer weights (B, H, T, T), rows summing to 1, zero on padded keys; sdpa gives the eager ones."""
    torch.manual_seed(0)
    eager = AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny", attn_implementation="eager")).eval()
    sdpa = AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny")).eval()
    sdpa.load_state_dict(eager.state_dict())
    batch = batch_factory(3, 20, seed=14, lengths=[20, 9, 15])
    out = eager(**batch, output_attentions=True)
    assert len(out.attentions) == tiny_config.num_layers
    for weights in out.attentions:
        assert weights.shape == (3, tiny_config.num_heads, 20, 20)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, tiny_config.num_heads, 20))
        assert int(torch.count_nonzero(weights[1, :, :, 9:])) == 0  # padded keys
    assert eager(**batch).attentions is None
    with caplog.at_level("WARNING"):
        fallback = sdpa(**batch, output_attentions=True)
    assert any("use eager attention" in r.getMessage() for r in caplog.records)
    for a, b in zip(out.attentions, fallback.attentions, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(fallback.reconstruction, out.reconstruction, atol=1e-5, rtol=0)
    assert sdpa.config._attn_implementation == "sdpa"  # only those calls ran eager
    classifier = AstroCoForSequenceClassification(tiny_config).eval()
    assert len(classifier(**batch, output_attentions=True, return_dict=False)[-1]) == tiny_config.num_layers


@pytest.mark.parametrize("model_class", [AstroCoModel, AstroCoForMaskedReconstruction, AstroCoForSequenceClassification])
def test_dummy_inputs_are_astroco_inputs(tiny_config, model_class):
    model = model_class(tiny_config).eval()
    inputs = model.dummy_inputs
    assert set(inputs) == {"times", "magnitudes", "uncertainties", "attention_mask"}
    assert inputs["attention_mask"][1].tolist() == [1] * 5 + [0] * 3
    out = model(**inputs)
    assert torch.isfinite(out.pooler_output).all() and out.pooler_output.shape == (2, tiny_config.d_model)


def test_info_reports_a_classifier_folder_as_a_classifier(tmp_path, capsys):
    labels = ["rr_lyrae", "mira", "cepheid"]
    config = AstroCoConfig.from_preset("astroco-tiny", num_labels=3, id2label=dict(enumerate(labels)),
                                       label2id={name: i for i, name in enumerate(labels)})
    classifier = AstroCoForSequenceClassification(config)
    classifier.save_pretrained(tmp_path / "classifier")
    AstroCoForMaskedReconstruction(config).save_pretrained(tmp_path / "pretrained")
    capsys.readouterr()
    assert cli_main(["info", "--model", str(tmp_path / "classifier"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["architecture"] == "AstroCoForSequenceClassification"
    assert summary["num_labels"] == 3 and summary["labels"] == labels
    assert summary["parameters"] == {"encoder": count(classifier.astroco), "heads": 3 * (config.d_model + 1),
                                     "total": count(classifier)}
    assert cli_main(["info", "--model", str(tmp_path / "classifier")]) == 0
    text = capsys.readouterr().out
    assert "classification head 195" in text and "regression head" not in text and "rr_lyrae, mira, cepheid" in text
    assert cli_main(["info", "--model", str(tmp_path / "pretrained")]) == 0
    assert "regression head 65" in capsys.readouterr().out
    assert cli_main(["info", "--model", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"config.json missing): {tmp_path / 'missing'}")


@pytest.mark.parametrize("padded", [False, True])
def test_padded_head_sdpa_is_the_same_function(padded, batch_factory):
    """AstroCo-S's head size 69, padded to 72 inside the sdpa call: the same outputs and gradients as sdpa."""
    torch.manual_seed(0)
    config = AstroCoConfig.from_preset("astroco-s", num_layers=2, dropout=0.0)
    assert config.d_model // config.num_heads == 69
    model = AstroCoForMaskedReconstruction(config)
    batch = batch_factory(batch=3, length=50, lengths=[50, 31, 7] if padded else None)
    batch["times"] = batch["times"].float()
    batch |= {"labels": batch["magnitudes"].clone(), "probed_positions": batch["attention_mask"].bool()}
    results = []
    for kernel in ("sdpa", "sdpa_padded_head"):
        model.zero_grad()
        model.set_attn_implementation(kernel)
        output = model(**batch)
        output.loss.backward()
        results.append((output.reconstruction.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (reference, reference_grads), (padded_out, padded_grads) = results
    torch.testing.assert_close(padded_out, reference, rtol=1e-5, atol=1e-6)
    for a, b in zip(padded_grads, reference_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
