"""The ablation driver: variants, claim verdicts, table and plot (the full run is `astroco ablate`)."""

from __future__ import annotations

import pytest
import torch

from astroco_hf import AstroCoConfig, AstroCoForMaskedReconstruction
from astroco_hf.ablation import (
    VARIANTS,
    AblationConfig,
    _default_sources,
    assess_claims,
    format_ablation_table,
    plot_ablation,
)


def _summary(rmse: float, f1: float, std: float = 0.01) -> dict:
    stats = {"mean": f1, "std": std, "n": 2}
    return {"parameters": 1000, "test_rmse_hidden": {"mean": rmse, "std": std / 10, "n": 2},
            "baseline_rmse_hidden": {"mean": 0.2, "std": 0.0, "n": 2},
            "fewshot": {"crts": {"20": stats}}}


def _model(variant: str) -> AstroCoForMaskedReconstruction:
    return AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny", **VARIANTS[variant].switches))


def _size(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_variant_builds_and_astromer_like_switches_everything_off():
    models = {name: _model(name) for name in VARIANTS}
    has_conv = {name: any(isinstance(m, torch.nn.Conv1d) for m in model.modules()) for name, model in models.items()}
    assert not has_conv["astromer_like"] and not has_conv["no_conv"] and has_conv["astroco"]
    # The convolution and gated-FFN switches remove parameters; astromer_like removes them all.
    assert _size(models["plain_ffn"]) < _size(models["astroco"]) and _size(models["no_conv"]) < _size(models["astroco"])
    assert _size(models["astromer_like"]) == min(_size(model) for model in models.values())
    batch = {"times": torch.linspace(0, 50, 30)[None].double(), "magnitudes": torch.randn(1, 30),
             "uncertainties": torch.full((1, 30), 0.05)}
    last = models["astromer_like"].astroco.eval()(**batch, output_hidden_states=True)
    torch.testing.assert_close(last.pooler_output, last.hidden_states[-1].mean(dim=1))  # pools the last layer
    # Pooling never changes pretraining, so the pooling variants share the paper variant's encoder.
    assert VARIANTS["last_layer"].pretraining_switches() == VARIANTS["astroco"].pretraining_switches() == ()


def test_claim_verdicts_follow_the_numbers(tmp_path):
    summary = {
        "astroco": _summary(0.10, 0.60),
        "astromer_like": _summary(0.15, 0.40),  # clearly worse on both metrics
        "last_layer": _summary(0.10, 0.605),  # within noise
        "mean_layers": _summary(0.10, 0.60),
        "additive_fusion": _summary(0.08, 0.70),  # clearly better: the claim is reversed
    }
    claims = assess_claims(summary)
    assert claims["(1) convolutions and gating beat pure attention"]["verdict"] == "held"
    assert claims["(2) scalar mix beats fixed pooling"]["verdict"].startswith("not supported")
    assert claims["(3) concat fusion beats additive fusion"]["verdict"] == "reversed"
    report = {"summary": summary, "claims": claims, "complete": True, "config": {"seeds": [0, 1]}}
    table = format_ablation_table(report)
    assert "| astroco | 1,000 | 2 | 0.1000 ± 0.0010 | 0.600 ± 0.010 |" in table
    assert plot_ablation(report, tmp_path / "ablation.png").stat().st_size > 0


def test_bad_ablation_config():
    with pytest.raises(ValueError, match="unknown ablation variant"):
        AblationConfig(variants=("astroco", "no_attention"))
    with pytest.raises(ValueError, match="at least one seed"):
        AblationConfig(seeds=())


def test_pooling_variant_loads_a_scalar_mix_checkpoint(tmp_path):
    model = AstroCoForMaskedReconstruction(AstroCoConfig.from_preset("astroco-tiny"))
    model.save_pretrained(tmp_path)
    from astroco_hf import AstroCoModel

    last = AstroCoModel.from_pretrained(tmp_path, pooling="last").eval()
    batch = {"times": torch.linspace(0, 50, 30)[None].double(), "magnitudes": torch.randn(1, 30),
             "uncertainties": torch.full((1, 30), 0.05)}
    out = last(**batch, output_hidden_states=True)
    torch.testing.assert_close(out.pooler_output, out.hidden_states[-1].mean(dim=1))


def test_default_sources_come_from_the_data_root_option_or_env(tmp_path, monkeypatch):
    monkeypatch.delenv("ASTROCO_DATA_ROOT", raising=False)
    monkeypatch.delenv("ASTROCO_LIGHTCURVES", raising=False)
    with pytest.raises(FileNotFoundError, match=r"pass --data-root DIR .* or set \$ASTROCO_DATA_ROOT"):
        _default_sources(None)  # nothing outside the repository is guessed
    (tmp_path / "a.parquet").write_bytes(b"")
    monkeypatch.setenv("ASTROCO_DATA_ROOT", str(tmp_path))
    assert _default_sources(None) == [str(tmp_path / "a.parquet")]
    with pytest.raises(FileNotFoundError, match=r"'/no/such' \(from --data-root\) is not a folder"):
        _default_sources("/no/such")
