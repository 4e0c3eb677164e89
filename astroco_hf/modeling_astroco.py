"""PyTorch AstroCo: a Conformer-style encoder for irregular stellar light curves.

Read top to bottom, this file is the paper (sections 3.1-3.4, appendix A):

    (t, m, sigma) --hide/pad--> input embedding --> M x [MHSA -> conv module -> gated FFN] --> heads
                                      |                     |          |                |
                                      +------ x^(0) --------+-- x^(1) ... x^(M) --------+--> scalar mix
                                                                                              -> masked mean

Shapes: B batch, T sequence length (<= config.max_sequence_length), D = config.d_model,
H = config.num_heads, M = config.num_layers.

Every sublayer is plain PyTorch. Faster CPU implementations of the same functions live in
`_cpu_kernels`, switched per model: `model.disable_cpu_kernels()` runs the plain sublayers below,
`model.enable_cpu_kernels()` (the default) the kernels.

The file only uses relative imports so that `save_pretrained` can ship it (with `_cpu_kernels.py` and
`configuration_astroco.py`) as Hub remote code.
"""


from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import ModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface, PreTrainedModel
from transformers.utils import logging

from ._cpu_kernels import cpu_kernels_enabled, set_cpu_kernels
from .configuration_astroco import AstroCoConfig

logger = logging.get_logger(__name__)

__all__ = [
    "AstroCoPreTrainedModel",
    "AstroCoModel",
    "AstroCoForMaskedReconstruction",
    "AstroCoForSequenceClassification",
    "AstroCoModelOutput",
    "AstroCoMaskedReconstructionOutput",
    "AstroCoSequenceClassifierOutput",
]

# Entries written into every saved config so that any Auto class can load any AstroCo checkpoint as
# Hub remote code (save_pretrained alone only records AutoConfig and the class being saved).
AUTO_MAP = {
    "AutoConfig": "configuration_astroco.AstroCoConfig",
    "AutoModel": "modeling_astroco.AstroCoModel",
    "AutoModelForPreTraining": "modeling_astroco.AstroCoForMaskedReconstruction",
    "AutoModelForSequenceClassification": "modeling_astroco.AstroCoForSequenceClassification",
}


# ----------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------


def _validate_inputs(
    config: AstroCoConfig,
    times: torch.Tensor,
    magnitudes: torch.Tensor,
    uncertainties: torch.Tensor,
    attention_mask: torch.Tensor | None,
    masked_positions: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes, dtypes and values; return boolean `(valid, hidden)` masks, both (B, T).

    Values are only checked where the model reads them: times at every valid position, magnitudes and
    uncertainties at valid positions that are not hidden (hidden values are replaced, never read).
    """
    named = {"times": times, "magnitudes": magnitudes, "uncertainties": uncertainties}
    for name, tensor in named.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"`{name}` must be a torch.Tensor of shape (batch, seq_len), got {type(tensor).__name__}.")
        if not tensor.is_floating_point():
            raise ValueError(f"`{name}` must be a floating-point tensor, got dtype {tensor.dtype}.")
    if times.dim() != 2:
        raise ValueError(f"`times` must have shape (batch, seq_len), got {tuple(times.shape)}.")
    for name, tensor in {"magnitudes": magnitudes, "uncertainties": uncertainties,
                         "attention_mask": attention_mask, "masked_positions": masked_positions}.items():
        if tensor is not None and tensor.shape != times.shape:
            raise ValueError(f"`{name}` has shape {tuple(tensor.shape)} but `times` has {tuple(times.shape)}; "
                             "all inputs must be (batch, seq_len).")
    seq_len = times.shape[1]
    if seq_len > config.max_sequence_length:
        raise ValueError(
            f"Sequence length {seq_len} exceeds config.max_sequence_length={config.max_sequence_length}. "
            "Cut long light curves into windows (astroco_hf.data.sequential_windows or AstroCoEmbedder)."
        )
    if seq_len == 0:
        raise ValueError("Inputs have sequence length 0; every light curve needs at least one observation.")

    if attention_mask is None:
        valid = torch.ones_like(times, dtype=torch.bool)
    elif attention_mask.dtype == torch.bool:
        valid = attention_mask
    elif attention_mask.is_floating_point() or attention_mask.is_complex():
        raise ValueError(f"`attention_mask` must be bool or integer (1 = observation, 0 = padding), got {attention_mask.dtype}.")
    else:
        valid = attention_mask != 0
    if masked_positions is None:
        hidden = torch.zeros_like(valid)
    elif masked_positions.dtype != torch.bool:
        raise ValueError(f"`masked_positions` must be a bool tensor (True = value hidden), got {masked_positions.dtype}.")
    else:
        hidden = masked_positions & valid

    if torch.compiler.is_compiling():
        return valid, hidden  # value checks need a host sync; they ran in eager mode already
    empty_rows = (~valid.any(dim=1)).nonzero().flatten()
    if empty_rows.numel():
        raise ValueError(f"Rows {empty_rows.tolist()[:10]} of `attention_mask` have no valid observation.")
    read = valid & ~hidden
    for name, tensor, where in (("times", times, valid), ("magnitudes", magnitudes, read),
                                ("uncertainties", uncertainties, read)):
        bad = where & ~torch.isfinite(tensor)
        if bad.any():
            row, col = bad.nonzero()[0].tolist()
            raise ValueError(f"`{name}` has a non-finite value at a valid position (row {row}, position {col}); "
                             "clean the light curve or mark the point as padding in `attention_mask`.")
    return valid, hidden


# ----------------------------------------------------------------------------------------------
# Input embedding (paper section 3.1)
# ----------------------------------------------------------------------------------------------


class AstroCoTimeEmbedding(nn.Module):
    """Sinusoidal embedding of (centred) observation times in days: (B, T) -> (B, T, dim).

    Angular frequencies are geometric, `base ** (-2k / dim)` for k = 0 .. dim/2-1; the output is
    `[sin(t * w), cos(t * w)]`. The frequencies are a non-persistent buffer recomputed in
    `_init_weights`, so checkpoints stay small and loading never leaves them at zero.
    """

    def __init__(self, dim: int, base: float) -> None:
        super().__init__()
        self.dim = dim
        self.base = base
        self.register_buffer("inv_freq", self.frequencies(dim, base), persistent=False)

    @staticmethod
    def frequencies(dim: int, base: float) -> torch.Tensor:
        return base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)

    def forward(self, times: torch.Tensor) -> torch.Tensor:
        inv_freq = self.inv_freq
        if inv_freq.dtype != torch.float32:
            # A model cast to bf16 casts this buffer too; three significant digits would shift the phases
            # of a long baseline by radians, so the frequencies are recomputed in fp32.
            inv_freq = self.frequencies(self.dim, self.base).to(times.device)
        angles = times.float().unsqueeze(-1) * inv_freq  # (B, T, dim/2), fp32 even under autocast
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class AstroCoInputEmbedding(nn.Module):
    """Photometry and time fused into one D-vector per observation: (B, T) x 3 -> (B, T, D).

    `concat` (the paper): Linear(m, sigma) -> D/2 and sinusoid(t) -> D/2 are concatenated, then
    Linear(D, D) -> GELU -> LayerNorm. `additive` (ablation, Astromer-like): Linear(m, sigma) -> D plus a
    D-wide sinusoid, followed by the same Linear -> GELU -> LayerNorm.
    """

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        self.fusion = config.input_fusion
        part = config.d_model // 2 if self.fusion == "concat" else config.d_model
        self.photometry_proj = nn.Linear(2, part)
        self.time_embedding = AstroCoTimeEmbedding(part, config.time_embedding_base)
        self.fusion_proj = nn.Linear(config.d_model, config.d_model)
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(self, times: torch.Tensor, magnitudes: torch.Tensor, uncertainties: torch.Tensor) -> torch.Tensor:
        photometry = self.photometry_proj(torch.stack([magnitudes, uncertainties], dim=-1))
        time = self.time_embedding(times).to(photometry.dtype)
        fused = torch.cat([photometry, time], dim=-1) if self.fusion == "concat" else photometry + time
        return self.layer_norm(F.gelu(self.fusion_proj(fused)))


# ----------------------------------------------------------------------------------------------
# Encoder block sublayers (paper section 3.2)
# ----------------------------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention. q, k, v: (B, H, T, hd); additive mask (B, 1, 1, T) -> (B, T, H, hd)."""
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = F.dropout(scores.softmax(dim=-1), p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def sdpa_padded_head_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """sdpa with the head dimension zero-padded to a multiple of 8 (AstroCo-S: 69 -> 72), for GPU kernels that
    want aligned heads. The same function: zero columns add nothing to q.k, the scale stays 1/sqrt(hd) of
    the real head, and the padded output columns (weights times zero values) are dropped.
    q, k, v: (B, H, T, hd); additive mask (B, 1, 1, T) -> (B, T, H, hd)."""
    head_dim = query.shape[-1]
    pad = -head_dim % 8
    if pad:
        query, key, value = (F.pad(tensor, (0, pad)) for tensor in (query, key, value))
    output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    return output[..., :head_dim], weights


# `config._attn_implementation = "sdpa_padded_head"` (or `model.set_attn_implementation(...)`) selects it.
AttentionInterface.register("sdpa_padded_head", sdpa_padded_head_attention_forward)


class AstroCoSelfAttention(nn.Module):
    """Bidirectional multi-head self-attention with a key padding mask: (B, T, D) -> (B, T, D).

    Query, key and value come from one fused projection (the same parameters as three D x D layers).
    The kernel is chosen by `config._attn_implementation` ("sdpa" by default, "eager" as reference).
    """

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        self.config = config
        self.num_heads = config.num_heads
        self.head_dim = config.d_model // config.num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.qkv_proj = nn.Linear(config.d_model, 3 * config.d_model)
        self.out_proj = nn.Linear(config.d_model, config.d_model)

    def forward(
        self, hidden_states: torch.Tensor, attention_bias: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the output (B, T, D) and, with `output_attentions`, the weights (B, H, T, T)."""
        batch, length, _ = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, hd)
        implementation = self.config._attn_implementation
        if output_attentions and implementation != "eager":
            # Fused kernels never form the weights; as transformers' sdpa models did, this call runs eager.
            logger.warning_once(f"`output_attentions=True`: the {implementation!r} attention kernel does not "
                                "return attention weights, so these calls use eager attention.")
            implementation = "eager"
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_bias,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=False,
        )
        return self.out_proj(output.reshape(batch, length, -1)), weights if output_attentions else None


class AstroCoMaskedBatchNorm(nn.Module):
    """BatchNorm over channels whose statistics only count valid positions: (B, D, T) -> (B, D, T).

    Plain BatchNorm1d would average padding into its batch and running statistics, so the same light
    curve would be normalised differently depending on how much padding its batch carries. Layout,
    parameters and buffers are BatchNorm1d's. Statistics are computed in fp32. Under DDP each process
    uses its own batch statistics (as BatchNorm1d does without SyncBatchNorm; a process sees thousands
    of valid points per step) and DDP broadcasts rank 0's running statistics.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, hidden_states: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """`valid` (B, T) bool, or None when every position is an observation."""
        if not self.training:
            scale, shift = self.inference_affine()
            return (hidden_states.float() * scale[:, None] + shift[:, None]).to(hidden_states.dtype)
        self.num_batches_tracked.add_(1)
        if valid is None:
            # Without padding this is exactly BatchNorm1d; its fused kernel (fp32 statistics) also
            # updates the running mean and unbiased variance with the same momentum rule.
            return F.batch_norm(hidden_states, self.running_mean, self.running_var, self.weight, self.bias,
                                training=True, momentum=self.momentum, eps=self.eps)
        x = hidden_states.float()
        weight = valid.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        count = weight.sum().clamp_min(1.0)
        mean = (x * weight).sum(dim=(0, 2)) / count  # (D,)
        var = (((x - mean[:, None]) * weight) ** 2).sum(dim=(0, 2)) / count
        with torch.no_grad():
            unbiased = var * count / (count - 1).clamp_min(1.0)
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        return (x * scale[:, None] + shift[:, None]).to(hidden_states.dtype)

    def inference_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode BatchNorm as the per-channel map x -> x * scale + shift; two (D,) fp32 tensors."""
        scale = self.weight.float() * torch.rsqrt(self.running_var.float() + self.eps)
        return scale, self.bias.float() - self.running_mean.float() * scale


class AstroCoConvolutionModule(nn.Module):
    """LN -> pointwise D->2D -> GLU -> depthwise Conv1d(K) -> masked BatchNorm -> SiLU -> pointwise D->D.

    (B, T, D) -> (B, T, D). Pointwise convolutions are linear layers on the channel-last tensor; the
    depthwise convolution and BatchNorm run channel-first, (B, D, T). The depthwise kernel sees offsets
    -K//2 .. K-1-K//2 around each step (paper: Y[t] = sum_k W[k] X[t+k-K//2]), so even K is supported;
    padding positions are zeroed before it, so they contribute exactly as the zero padding at the
    sequence edges does.
    """

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        d_model, kernel = config.d_model, config.conv_kernel_size
        self.pad = (kernel // 2, kernel - 1 - kernel // 2)
        self.layer_norm = nn.LayerNorm(d_model, eps=config.layer_norm_eps)
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, groups=d_model)
        self.batch_norm = AstroCoMaskedBatchNorm(d_model, config.layer_norm_eps, config.batch_norm_momentum)
        self.pointwise_out = nn.Linear(d_model, d_model)

    def forward(self, hidden_states: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """`valid` (B, T) bool, or None when every position is an observation."""
        x = F.glu(self.pointwise_in(self.layer_norm(hidden_states)), dim=-1)  # (B, T, D)
        if valid is not None:
            x = x * valid.unsqueeze(-1).to(x.dtype)
        x = F.pad(x.transpose(1, 2), self.pad)  # (B, D, T + K - 1), one copy that also transposes
        x = self.batch_norm(self.depthwise(x), valid)  # (B, D, T)
        # Contiguous (B, T, D), so the projection is one (B*T, D) GEMM rather than B batched ones.
        return self.pointwise_out(F.silu(x).transpose(1, 2).contiguous())


class AstroCoFeedForward(nn.Module):
    """Gated FFN (paper eq. 1-2): W_out(GELU(W_val x) * sigmoid(W_gate x)), or a plain MLP (ablation).

    (B, T, D) -> (B, T, D). W_val and W_gate are stored as one (2rD, D) `in_proj` (rows [0, rD) are
    W_val) but applied as two products: two contiguous outputs make the element-wise ops faster than
    the two strided halves of one output, and the backward needs no concatenation of their gradients.
    """

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        self.hidden = config.ffn_expansion * config.d_model
        self.gated = config.ffn_type == "gated"
        self.in_proj = nn.Linear(config.d_model, 2 * self.hidden if self.gated else self.hidden)
        self.out_proj = nn.Linear(self.hidden, config.d_model)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.gated:
            return self.out_proj(F.gelu(self.in_proj(hidden_states)))
        weight, bias, h = self.in_proj.weight, self.in_proj.bias, self.hidden
        value = F.linear(hidden_states, weight[:h], bias[:h])  # W_val x
        gate = F.linear(hidden_states, weight[h:], bias[h:])  # W_gate x
        return self.out_proj(F.gelu(value) * torch.sigmoid(gate))


class AstroCoResidualDropout(nn.Dropout):
    """`residual + Dropout(update)`: (B, T, D) x 2 -> (B, T, D), the residual connection of every sublayer.

    It is `nn.Dropout` (same `p`, same train/eval behaviour, found by `isinstance(m, nn.Dropout)`) taking
    the residual as well, so that the CPU kernels can apply the mask and the sum in one pass.
    """

    def forward(self, residual: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        return residual + super().forward(update)


class AstroCoEncoderLayer(GradientCheckpointingLayer):
    """One Conformer-style block with post-norm residuals: (B, T, D) -> (B, T, D).

        x = LN(x + Dropout(MHSA(x)))
        x = LN(x + Dropout(ConvModule(x)))      (when config.use_conv_module)
        x = LN(x + Dropout(FFN(x)))
    """

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__()
        d_model, eps = config.d_model, config.layer_norm_eps
        self.self_attention = AstroCoSelfAttention(config)
        self.attention_norm = nn.LayerNorm(d_model, eps=eps)
        self.conv_module = AstroCoConvolutionModule(config) if config.use_conv_module else None
        self.conv_norm = nn.LayerNorm(d_model, eps=eps) if config.use_conv_module else None
        self.feed_forward = AstroCoFeedForward(config)
        self.feed_forward_norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = AstroCoResidualDropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor | None,
        valid: torch.Tensor | None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`attention_bias` (B, 1, 1, T) and `valid` (B, T), both None when there is no padding.

        Returns the block output (B, T, D) and, with `output_attentions`, the attention weights (B, H, T, T).
        """
        x = hidden_states
        update, attention_weights = self.self_attention(x, attention_bias, output_attentions)
        x = self.attention_norm(self.dropout(x, update))
        if self.conv_module is not None:
            x = self.conv_norm(self.dropout(x, self.conv_module(x, valid)))
        return self.feed_forward_norm(self.dropout(x, self.feed_forward(x))), attention_weights


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------


@dataclass
class AstroCoModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, T, D)`): output of the last block.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): the light-curve embedding, the scalar
            mix of all layers averaged over valid positions.
        hidden_states (`tuple(torch.FloatTensor)`, M+1 tensors `(B, T, D)`, when asked): the input
            embedding and every block output.
        layer_weights (`torch.FloatTensor` of shape `(M+1,)`): the normalised layer-mixing weights.
        attentions (`tuple(torch.FloatTensor)`, M tensors `(B, H, T, T)`, when asked): the attention
            weights of every block (after softmax, padded keys at zero).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    layer_weights: torch.FloatTensor | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


class AstroCoPreTrainedModel(PreTrainedModel):
    config: AstroCoConfig
    base_model_prefix = "astroco"
    main_input_name = "magnitudes"
    input_modalities = ("time",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["AstroCoEncoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = True
    # Trainer must divide the loss by the gradient-accumulation steps itself (see hf-stack pitfalls).
    accepts_loss_kwargs = False

    def __init__(self, config: AstroCoConfig, *inputs, **kwargs) -> None:
        super().__init__(config, *inputs, **kwargs)
        config.auto_map = {**(getattr(config, "auto_map", None) or {}), **AUTO_MAP}

    def post_init(self) -> None:
        super().post_init()
        # On by default: the kernels compute the same function, so every model (also one loaded as Hub
        # remote code) takes the fast path on a CPU unless `disable_cpu_kernels()` asks for the plain one.
        self.enable_cpu_kernels()

    def enable_cpu_kernels(self) -> "AstroCoPreTrainedModel":
        """Run the sublayers through the CPU kernels of `_cpu_kernels` (same function, faster on a CPU).

        One switch for training and inference: in training the depthwise convolution's written-out
        backward and the fused residual dropout, in eval BatchNorm folded into the convolution and the
        FFN in chunks of rows. The kernels read the live weights on every call and fall back to the plain
        sublayers off the CPU and under `torch.compile`, so the switch survives `train()`/`eval()`,
        `to()` and weight updates. Runtime state only, never saved; on by default (`post_init`). Returns
        the model.
        """
        set_cpu_kernels(self, True)
        return self

    def disable_cpu_kernels(self) -> "AstroCoPreTrainedModel":
        """Back to the plain PyTorch sublayers of this file. Returns the model."""
        set_cpu_kernels(self, False)
        return self

    @property
    def cpu_kernels_enabled(self) -> bool:
        return cpu_kernels_enabled(self)

    @property
    def dummy_inputs(self) -> dict[str, torch.Tensor]:
        """Two light curves of 8 steps (the second padded after 5), the inputs `forward` takes."""
        length = min(8, self.config.max_sequence_length)
        times = torch.arange(length, dtype=torch.float32, device=self.device).repeat(2, 1) * 1.7
        attention_mask = torch.ones(2, length, dtype=torch.long, device=self.device)
        attention_mask[1, length * 5 // 8:] = 0
        return {
            "times": times,
            "magnitudes": 0.3 * torch.sin(times),
            "uncertainties": torch.full_like(times, 0.05),
            "attention_mask": attention_mask,
        }

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, AstroCoMaskedBatchNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, AstroCoTimeEmbedding):
            init.copy_(module.inv_freq, module.frequencies(module.dim, module.base))
        elif isinstance(module, AstroCoModel) and module.layer_weights is not None:
            init.zeros_(module.layer_weights)  # uniform mix at the start


def _masked_mean(states: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean over time (B, T, D) -> (B, D); with padding, weights (B, 1, T) hold 1/n at valid steps, 0 elsewhere."""
    if weights is None:
        return states.mean(dim=1)
    return torch.bmm(weights.to(states.dtype), states).squeeze(1)  # one batched mat-vec per layer


class AstroCoModel(AstroCoPreTrainedModel):
    """The AstroCo encoder: light curves (B, T) -> per-step states (B, T, D) and embeddings (B, D)."""

    # A checkpoint of a model with a head also holds the head's weights; the bare encoder loaded from it
    # (`AutoModel`, `pipeline("feature-extraction")` on a pretraining run) drops them without a LOAD REPORT.
    # Encoder keys that are missing or unexpected are still reported.
    _keys_to_ignore_on_load_unexpected = [r"^reconstruction_head\.", r"^classifier\."]

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__(config)
        self.embeddings = AstroCoInputEmbedding(config)
        self.layers = nn.ModuleList(AstroCoEncoderLayer(config) for _ in range(config.num_layers))
        # Scalar mix over x^(0) .. x^(M) (paper section 3.3); only a parameter when it is learned.
        self.layer_weights = (
            nn.Parameter(torch.zeros(config.num_layers + 1)) if config.pooling == "scalar_mix" else None
        )
        self.gradient_checkpointing = False
        self.post_init()

    def mixing_weights(self) -> torch.Tensor:
        """Normalised layer weights alpha_0 .. alpha_M, shape (M+1,)."""
        if self.config.pooling == "scalar_mix":
            return self.layer_weights.softmax(dim=0)
        num = self.config.num_layers + 1
        device = self.embeddings.fusion_proj.weight.device
        if self.config.pooling == "last":
            return F.one_hot(torch.tensor(num - 1, device=device), num).float()
        return torch.full((num,), 1.0 / num, device=device)

    def forward(
        self,
        times: torch.Tensor,
        magnitudes: torch.Tensor,
        uncertainties: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
    ) -> AstroCoModelOutput | tuple:
        r"""
        Args:
            times (`torch.FloatTensor` of shape `(B, T)`): observation times in days. float64 keeps
                raw MJD exact while the model centres it.
            magnitudes (`torch.FloatTensor` of shape `(B, T)`): magnitudes (window-mean subtracted by the
                data pipeline).
            uncertainties (`torch.FloatTensor` of shape `(B, T)`): 1-sigma magnitude errors.
            attention_mask (`torch.LongTensor` or `torch.BoolTensor` of shape `(B, T)`, *optional*):
                1 for observations, 0 for padding. Padding is excluded from attention, zeroed before the
                depthwise convolution, left out of BatchNorm statistics and of pooling.
            masked_positions (`torch.BoolTensor` of shape `(B, T)`, *optional*): True where the value is
                hidden. The magnitude AND the uncertainty there are replaced by `config.mask_value`
                before the input projection, so a hidden value never reaches any layer. The time of a
                hidden point is kept: the model must know where it is asked to predict (the paper's
                "(m, t) pair" wording would also blank the time, which leaves the target undefined).
            output_hidden_states (`bool`, *optional*): also return the M+1 layer outputs.
            return_dict (`bool`, *optional*): return an `AstroCoModelOutput` (default) or a tuple.
            output_attentions (`bool`, *optional*): also return every block's attention weights (computed
                by eager attention for the call whatever `config._attn_implementation` is).
        """
        config = self.config
        output_hidden_states = output_hidden_states if output_hidden_states is not None else config.output_hidden_states
        output_attentions = output_attentions if output_attentions is not None else config.output_attentions
        return_dict = return_dict if return_dict is not None else config.return_dict
        valid, hidden = _validate_inputs(config, times, magnitudes, uncertainties, attention_mask, masked_positions)

        # Hide values before anything reads them; torch.where (not multiplication) so that NaN at a
        # hidden or padded position cannot leak.
        placeholder = ~valid | hidden
        magnitudes = torch.where(placeholder, config.mask_value, magnitudes)
        uncertainties = torch.where(placeholder, config.mask_value, uncertainties)
        times = torch.where(valid, times, 0.0)
        if config.center_times:
            mean_time = times.sum(dim=1, keepdim=True) / valid.sum(dim=1, keepdim=True)
            times = torch.where(valid, times - mean_time, 0.0)

        dtype = self.embeddings.fusion_proj.weight.dtype
        # Times stay fp32 (or float64) whatever the weights: the sinusoid's phases need the precision.
        hidden_states = self.embeddings(times, magnitudes.to(dtype), uncertainties.to(dtype))

        # Without padding (fixed-length windows, the usual case) every mask below is skipped and sdpa
        # runs its unmasked kernel. Checking needs a host sync, so a compiled graph keeps the masks
        # whenever an attention_mask is given.
        padded = attention_mask is not None and (torch.compiler.is_compiling() or not bool(valid.all()))
        if padded:
            # Additive key-padding bias (B, 1, 1, T), understood by both eager and sdpa kernels.
            attention_bias = torch.zeros(valid.shape, dtype=hidden_states.dtype, device=valid.device)
            attention_bias = attention_bias.masked_fill(~valid, torch.finfo(hidden_states.dtype).min)[:, None, None, :]
            pool_weights = (valid / valid.sum(dim=1, keepdim=True)).unsqueeze(1)  # (B, 1, T), rows sum to 1
        else:
            valid = attention_bias = pool_weights = None

        # The pooled embedding is linear in the layer states, sum_l alpha_l * maskedmean_t(x^(l)): pooling
        # each layer as it is produced reads it once instead of accumulating a (B, T, D) mix.
        alphas = self.mixing_weights()
        pooled = alphas[0] * _masked_mean(hidden_states, pool_weights)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for index, layer in enumerate(self.layers, start=1):
            hidden_states, attention_weights = layer(hidden_states, attention_bias, valid, output_attentions)
            pooled = pooled + alphas[index] * _masked_mean(hidden_states, pool_weights)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (attention_weights,)

        output = AstroCoModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=pooled,
            hidden_states=all_hidden_states,
            layer_weights=alphas,
            attentions=all_attentions,
        )
        return output if return_dict else output.to_tuple()


@dataclass
class AstroCoMaskedReconstructionOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, when `labels` are given): RMSE over probed positions.
        reconstruction (`torch.FloatTensor` of shape `(B, T)`): predicted magnitude at every step.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): the light-curve embedding.
        hidden_states (`tuple(torch.FloatTensor)`, when asked): input embedding and block outputs.
        layer_weights (`torch.FloatTensor` of shape `(M+1,)`): normalised layer-mixing weights.
        attentions (`tuple(torch.FloatTensor)`, M tensors `(B, H, T, T)`, when asked): attention weights.
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    layer_weights: torch.FloatTensor | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def masked_rmse(prediction: torch.Tensor, target: torch.Tensor, probed: torch.Tensor) -> torch.Tensor:
    """Paper eq. 3 over all probed points of the batch: sqrt(mean_{i in M} (m_hat_i - m_i)^2), fp32.

    The clamp keeps the gradient finite when the error is exactly zero or nothing is probed.
    """
    probed = probed.to(torch.float32)
    squared = (prediction.float() - target.float()).square() * probed
    return (squared.sum() / probed.sum().clamp_min(1.0)).clamp_min(1e-12).sqrt()


class AstroCoForMaskedReconstruction(AstroCoPreTrainedModel):
    """AstroCo with a per-step linear regression head for masked-magnitude pretraining (paper 3.4).

    The head reads the last block's states. The scalar-mix weights only shape the pooled embedding,
    which the reconstruction loss never sees, so they are frozen here (no gradient would reach them,
    and DDP runs with `find_unused_parameters=False`); they are learned downstream, with the head.
    """

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__(config)
        self.astroco = AstroCoModel(config)
        self.reconstruction_head = nn.Linear(config.d_model, 1)
        self.post_init()
        if self.astroco.layer_weights is not None:
            self.astroco.layer_weights.requires_grad_(False)

    def forward(
        self,
        times: torch.Tensor,
        magnitudes: torch.Tensor,
        uncertainties: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        probed_positions: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
    ) -> AstroCoMaskedReconstructionOutput | tuple:
        r"""
        Args:
            labels (`torch.FloatTensor` of shape `(B, T)`, *optional*): true (normalised) magnitudes.
            probed_positions (`torch.BoolTensor` of shape `(B, T)`, *optional*): positions counted in the
                loss (hidden, randomised and unchanged ones); required with `labels`. Padding is never counted.
            Other arguments: see `AstroCoModel.forward`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.astroco(times, magnitudes, uncertainties, attention_mask, masked_positions,
                               output_hidden_states=output_hidden_states, return_dict=True,
                               output_attentions=output_attentions)
        reconstruction = self.reconstruction_head(encoded.last_hidden_state).squeeze(-1)  # (B, T)

        loss = None
        if labels is not None:
            if probed_positions is None:
                raise ValueError("`probed_positions` is required with `labels`: the loss only counts probed points.")
            if labels.shape != reconstruction.shape or probed_positions.shape != reconstruction.shape:
                raise ValueError(f"`labels` {tuple(labels.shape)} and `probed_positions` {tuple(probed_positions.shape)} "
                                 f"must have the input shape {tuple(reconstruction.shape)}.")
            if probed_positions.dtype != torch.bool:
                raise ValueError(f"`probed_positions` must be a bool tensor, got {probed_positions.dtype}.")
            probed = probed_positions if attention_mask is None else probed_positions & (attention_mask != 0)
            loss = masked_rmse(reconstruction, labels, probed)

        output = AstroCoMaskedReconstructionOutput(
            loss=loss,
            reconstruction=reconstruction,
            pooler_output=encoded.pooler_output,
            hidden_states=encoded.hidden_states,
            layer_weights=encoded.layer_weights,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


@dataclass
class AstroCoSequenceClassifierOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, when `labels` are given): cross-entropy (or the loss of
            `config.problem_type`).
        logits (`torch.FloatTensor` of shape `(B, num_labels)`): class scores.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): the light-curve embedding.
        hidden_states (`tuple(torch.FloatTensor)`, when asked): input embedding and block outputs.
        layer_weights (`torch.FloatTensor` of shape `(M+1,)`): normalised layer-mixing weights.
        attentions (`tuple(torch.FloatTensor)`, M tensors `(B, H, T, T)`, when asked): attention weights.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    layer_weights: torch.FloatTensor | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class AstroCoForSequenceClassification(AstroCoPreTrainedModel):
    """AstroCo with a linear head on the pooled embedding.

    With `config.freeze_encoder` (or `freeze_encoder()`), only the head and the scalar-mix weights
    train and the encoder stays in eval mode (no dropout, fixed BatchNorm statistics): the paper's
    frozen-encoder few-shot protocol.
    """

    def __init__(self, config: AstroCoConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.astroco = AstroCoModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()
        if config.freeze_encoder:
            self.freeze_encoder()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # Loading materialises fresh parameters after __init__ ran, which resets requires_grad.
        model = super().from_pretrained(*args, **kwargs)
        loaded = model[0] if isinstance(model, tuple) else model
        if loaded.config.freeze_encoder:
            loaded.freeze_encoder()
        return model

    def freeze_encoder(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) every encoder parameter except the scalar-mix weights."""
        self.config.freeze_encoder = frozen
        for name, parameter in self.astroco.named_parameters():
            parameter.requires_grad = not frozen or name == "layer_weights"
        self.train(self.training)

    def train(self, mode: bool = True) -> "AstroCoForSequenceClassification":
        super().train(mode)
        if self.config.freeze_encoder:
            self.astroco.eval()
        return self

    def forward(
        self,
        times: torch.Tensor,
        magnitudes: torch.Tensor,
        uncertainties: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        masked_positions: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
    ) -> AstroCoSequenceClassifierOutput | tuple:
        r"""
        Args:
            labels (`torch.LongTensor` of shape `(B,)`, *optional*): class indices in `[0, num_labels)`.
            Other arguments: see `AstroCoModel.forward`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.astroco(times, magnitudes, uncertainties, attention_mask, masked_positions,
                               output_hidden_states=output_hidden_states, return_dict=True,
                               output_attentions=output_attentions)
        logits = self.classifier(self.dropout(encoded.pooler_output))  # (B, num_labels)

        loss = None
        if labels is not None:
            if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
                raise ValueError(f"`labels` must have shape (batch,) = ({logits.shape[0]},), got {tuple(labels.shape)}.")
            if not labels.is_floating_point() and ((labels < 0) | (labels >= self.num_labels)).any():
                raise ValueError(f"`labels` must be class indices in [0, {self.num_labels}), got {labels.tolist()[:10]}.")
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)

        output = AstroCoSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            pooler_output=encoded.pooler_output,
            hidden_states=encoded.hidden_states,
            layer_weights=encoded.layer_weights,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()
