"""A plain PyTorch AstroCo: the yardstick every benchmark figure is divided by.

This is what a competent engineer writes from the paper without optimising: `nn.MultiheadAttention`
with a `key_padding_mask`, separate `nn.Linear` layers for W_val and W_gate, `F.glu`, `nn.Conv1d`
with padding, masked BatchNorm statistics written out plainly, unfused activations, fp32 parameters.
It computes the same function as `astroco_hf.modeling_astroco` (same parameters, same outputs within
float tolerance) so `load_astroco_state_dict` can copy an `AstroCoModel` /
`AstroCoForMaskedReconstruction` into it and the two can be timed and compared on the same inputs.
It is deliberately not tuned to be slow either: no Python loops over time steps, no needless copies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration_astroco import AstroCoConfig

__all__ = ["ReferenceAstroCo", "ReferenceAstroCoForMaskedReconstruction", "load_astroco_state_dict", "reference_from"]


class ReferenceMaskedBatchNorm(nn.Module):
    """BatchNorm over channels with statistics over valid positions only. x: (B, T, D), valid: (B, T)."""

    def __init__(self, num_features: int, eps: float, momentum: float) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()  # statistics in fp32
        if self.training:
            mask = valid.unsqueeze(-1).float()  # (B, T, 1)
            count = mask.sum()
            mean = (x * mask).sum(dim=(0, 1)) / count
            var = (((x - mean) * mask) ** 2).sum(dim=(0, 1)) / count
            with torch.no_grad():
                unbiased = var * count / (count - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        x = (x - mean) / torch.sqrt(var + self.eps)
        return (x * self.weight + self.bias).to(dtype)


class ReferenceConvModule(nn.Module):
    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        d, k = config.d_model, config.conv_kernel_size
        self.layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.pointwise_in = nn.Linear(d, 2 * d)
        # Padding K//2 on both sides gives T + 1 - K%2 outputs; the first T are the paper's
        # Y[t] = sum_k W[k] X[t + k - K//2].
        self.depthwise = nn.Conv1d(d, d, k, padding=k // 2, groups=d)
        self.batch_norm = ReferenceMaskedBatchNorm(d, config.layer_norm_eps, config.batch_norm_momentum)
        self.pointwise_out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        x = self.layer_norm(x)
        x = F.glu(self.pointwise_in(x), dim=-1)
        x = x * valid.unsqueeze(-1).to(x.dtype)
        x = self.depthwise(x.transpose(1, 2))[:, :, :length].transpose(1, 2)
        x = self.batch_norm(x, valid)
        x = F.silu(x)
        return self.pointwise_out(x)


class ReferenceFeedForward(nn.Module):
    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        d, hidden = config.d_model, config.ffn_expansion * config.d_model
        self.gated = config.ffn_type == "gated"
        self.w_val = nn.Linear(d, hidden)
        self.w_gate = nn.Linear(d, hidden) if self.gated else None
        self.w_out = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = F.gelu(self.w_val(x))
        if self.gated:
            value = value * torch.sigmoid(self.w_gate(x))
        return self.w_out(value)


class ReferenceLayer(nn.Module):
    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        d = config.d_model
        self.attention = nn.MultiheadAttention(d, config.num_heads, dropout=config.attention_dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.conv = ReferenceConvModule(config) if config.use_conv_module else None
        self.norm2 = nn.LayerNorm(d, eps=config.layer_norm_eps) if config.use_conv_module else None
        self.ffn = ReferenceFeedForward(config)
        self.norm3 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.dropout3 = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(x, x, x, key_padding_mask=~valid, need_weights=False)
        x = self.norm1(x + self.dropout1(attended))
        if self.conv is not None:
            x = self.norm2(x + self.dropout2(self.conv(x, valid)))
        x = self.norm3(x + self.dropout3(self.ffn(x)))
        return x


class ReferenceAstroCo(nn.Module):
    """Plain AstroCo encoder. Same inputs as `AstroCoModel`; returns (last_hidden_state, pooled)."""

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        part = d // 2 if config.input_fusion == "concat" else d
        self.photometry_proj = nn.Linear(2, part)
        self.time_dim = part
        self.fusion_proj = nn.Linear(d, d)
        self.input_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(ReferenceLayer(config) for _ in range(config.num_layers))
        self.layer_weights = nn.Parameter(torch.zeros(config.num_layers + 1))

    def time_embedding(self, times: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(0, self.time_dim, 2, device=times.device, dtype=torch.float32)
        inv_freq = self.config.time_embedding_base ** (-steps / self.time_dim)
        angles = times.float()[:, :, None] * inv_freq[None, None, :]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    def mixing_weights(self) -> torch.Tensor:
        n = self.config.num_layers + 1
        if self.config.pooling == "scalar_mix":
            return torch.softmax(self.layer_weights, dim=0)
        if self.config.pooling == "last":
            return F.one_hot(torch.tensor(n - 1), n).float().to(self.layer_weights.device)
        return torch.full((n,), 1.0 / n, device=self.layer_weights.device)

    def forward(self, times, magnitudes, uncertainties, attention_mask=None, masked_positions=None):
        config = self.config
        valid = torch.ones_like(magnitudes, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        hidden = valid & masked_positions if masked_positions is not None else torch.zeros_like(valid)
        replace = hidden | ~valid
        magnitudes = torch.where(replace, torch.full_like(magnitudes, config.mask_value), magnitudes)
        uncertainties = torch.where(replace, torch.full_like(uncertainties, config.mask_value), uncertainties)
        times = torch.where(valid, times, torch.zeros_like(times))
        if config.center_times:
            mean_time = times.sum(dim=1, keepdim=True) / valid.sum(dim=1, keepdim=True)
            times = torch.where(valid, times - mean_time, torch.zeros_like(times))

        dtype = self.photometry_proj.weight.dtype
        photometry = self.photometry_proj(torch.stack([magnitudes.to(dtype), uncertainties.to(dtype)], dim=-1))
        time = self.time_embedding(times).to(photometry.dtype)
        if config.input_fusion == "concat":
            x = torch.cat([photometry, time], dim=-1)
        else:
            x = photometry + time
        x = self.input_norm(F.gelu(self.fusion_proj(x)))

        alphas = self.mixing_weights()
        states = [x]
        for layer in self.layers:
            x = layer(x, valid)
            states.append(x)
        mixed = sum(alpha * state for alpha, state in zip(alphas, states, strict=True))
        weights = valid.unsqueeze(-1).to(mixed.dtype)
        pooled = (mixed * weights).sum(dim=1) / weights.sum(dim=1)
        return x, pooled


class ReferenceAstroCoForMaskedReconstruction(nn.Module):
    """Plain encoder + per-step regression head + RMSE over probed valid points."""

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        self.encoder = ReferenceAstroCo(config)
        self.head = nn.Linear(config.d_model, 1)
        self.encoder.layer_weights.requires_grad_(False)  # as in AstroCoForMaskedReconstruction

    def forward(self, times, magnitudes, uncertainties, attention_mask=None, masked_positions=None,
                labels=None, probed_positions=None):
        last, pooled = self.encoder(times, magnitudes, uncertainties, attention_mask, masked_positions)
        reconstruction = self.head(last).squeeze(-1)
        loss = None
        if labels is not None:
            probed = probed_positions if attention_mask is None else probed_positions & attention_mask.bool()
            probed = probed.float()
            squared = (reconstruction.float() - labels.float()) ** 2 * probed
            loss = torch.sqrt(torch.clamp(squared.sum() / torch.clamp(probed.sum(), min=1.0), min=1e-12))
        return loss, reconstruction, pooled


def _reference_state_dict(source: dict[str, torch.Tensor], config: AstroCoConfig) -> dict[str, torch.Tensor]:
    """Rename (and split) an AstroCo encoder state dict into the reference's parameter names."""
    out = {
        "photometry_proj.weight": source["embeddings.photometry_proj.weight"],
        "photometry_proj.bias": source["embeddings.photometry_proj.bias"],
        "fusion_proj.weight": source["embeddings.fusion_proj.weight"],
        "fusion_proj.bias": source["embeddings.fusion_proj.bias"],
        "input_norm.weight": source["embeddings.layer_norm.weight"],
        "input_norm.bias": source["embeddings.layer_norm.bias"],
        "layer_weights": source.get("layer_weights", torch.zeros(config.num_layers + 1)),
    }
    for i in range(config.num_layers):
        s, r = f"layers.{i}.", f"layers.{i}."
        out[r + "attention.in_proj_weight"] = source[s + "self_attention.qkv_proj.weight"]
        out[r + "attention.in_proj_bias"] = source[s + "self_attention.qkv_proj.bias"]
        out[r + "attention.out_proj.weight"] = source[s + "self_attention.out_proj.weight"]
        out[r + "attention.out_proj.bias"] = source[s + "self_attention.out_proj.bias"]
        for mine, theirs in (("norm1", "attention_norm"), ("norm3", "feed_forward_norm")):
            out[r + mine + ".weight"] = source[s + theirs + ".weight"]
            out[r + mine + ".bias"] = source[s + theirs + ".bias"]
        if config.use_conv_module:
            out[r + "norm2.weight"] = source[s + "conv_norm.weight"]
            out[r + "norm2.bias"] = source[s + "conv_norm.bias"]
            c = s + "conv_module."
            out[r + "conv.layer_norm.weight"] = source[c + "layer_norm.weight"]
            out[r + "conv.layer_norm.bias"] = source[c + "layer_norm.bias"]
            out[r + "conv.pointwise_in.weight"] = source[c + "pointwise_in.weight"]
            out[r + "conv.pointwise_in.bias"] = source[c + "pointwise_in.bias"]
            out[r + "conv.depthwise.weight"] = source[c + "depthwise.weight"]
            out[r + "conv.depthwise.bias"] = source[c + "depthwise.bias"]
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                out[r + "conv.batch_norm." + name] = source[c + "batch_norm." + name]
            out[r + "conv.pointwise_out.weight"] = source[c + "pointwise_out.weight"]
            out[r + "conv.pointwise_out.bias"] = source[c + "pointwise_out.bias"]
        f = s + "feed_forward."
        w_in, b_in = source[f + "in_proj.weight"], source[f + "in_proj.bias"]
        if config.ffn_type == "gated":
            hidden = w_in.shape[0] // 2
            out[r + "ffn.w_val.weight"], out[r + "ffn.w_gate.weight"] = w_in[:hidden], w_in[hidden:]
            out[r + "ffn.w_val.bias"], out[r + "ffn.w_gate.bias"] = b_in[:hidden], b_in[hidden:]
        else:
            out[r + "ffn.w_val.weight"], out[r + "ffn.w_val.bias"] = w_in, b_in
        out[r + "ffn.w_out.weight"] = source[f + "out_proj.weight"]
        out[r + "ffn.w_out.bias"] = source[f + "out_proj.bias"]
    return {k: v.detach().clone() for k, v in out.items()}


def load_astroco_state_dict(reference: nn.Module, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Copy an `AstroCoModel` or `AstroCoForMaskedReconstruction` state dict into a reference model."""
    encoder = reference.encoder if isinstance(reference, ReferenceAstroCoForMaskedReconstruction) else reference
    config = encoder.config
    prefixed = any(k.startswith("astroco.") for k in state_dict)
    body = {k.removeprefix("astroco."): v for k, v in state_dict.items() if k.startswith("astroco.") or not prefixed}
    encoder.load_state_dict(_reference_state_dict(body, config), strict=True)
    if isinstance(reference, ReferenceAstroCoForMaskedReconstruction) and "reconstruction_head.weight" in state_dict:
        reference.head.load_state_dict({"weight": state_dict["reconstruction_head.weight"],
                                        "bias": state_dict["reconstruction_head.bias"]})
    return reference


def reference_from(model: nn.Module) -> nn.Module:
    """A reference model holding a copy of `model`'s weights, in the same train/eval mode.

    `model` is an `AstroCoModel` (-> `ReferenceAstroCo`) or an `AstroCoForMaskedReconstruction`
    (-> `ReferenceAstroCoForMaskedReconstruction`).
    """
    config = model.config
    if hasattr(model, "reconstruction_head"):
        reference = ReferenceAstroCoForMaskedReconstruction(config)
    else:
        reference = ReferenceAstroCo(config)
    device = next(model.parameters()).device
    load_astroco_state_dict(reference, model.state_dict())
    return reference.to(device).train(model.training)
