"""CPU kernels for AstroCo: the function of the plain sublayers in `modeling_astroco`, computed faster on a CPU.

`modeling_astroco` is the paper in plain PyTorch. This module holds what a CPU needs on top of it, behind
one switch, `AstroCoPreTrainedModel.enable_cpu_kernels()` (`disable_cpu_kernels()` returns to the plain
sublayers); a subclass of a sublayer (as in the int8 inference copy) gets its base class's kernel. The switch is runtime state of one model instance: it is never written into `config.json`,
and a loaded model starts plain.

How: each kernel below replaces the `forward` of one sublayer *instance* (looked up by class name in
`KERNELS`, so this module needs no import of the model classes); parameters, buffers, state-dict keys
and module types stay the model's own. Every kernel hands the call back to the plain `forward` where
it does not apply: another device, a graph being traced by `torch.compile` (inductor fuses these
patterns itself), or a mode the kernel does not cover. Because a kernel reads the live parameters on
every call there is nothing to refresh after `train()`, `eval()`, `load_state_dict` or `to()`.

| sublayer | when | kernel |
|---|---|---|
| AstroCoConvolutionModule | training, autograd on | depthwise convolution with a written-out backward |
| AstroCoConvolutionModule | eval | BatchNorm (running statistics) folded into the depthwise kernel |
| AstroCoFeedForward | no autograd, > 2 chunks of rows | position-wise FFN over chunks of rows |
| AstroCoResidualDropout | training, p > 0 | keep mask from `torch.rand`, applied with the residual by one `addcmul` |

Outputs and gradients equal the plain model's to fp32 rounding (tests/test_kernels.py); the residual
dropout draws from a different random stream (same keep probability and scale).

Only torch is imported: `save_pretrained` copies this file beside `modeling_astroco.py` (transformers
ships a module's relative imports with it), so the kernels are there for Hub remote code too.
"""

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KERNELS", "kernel_of", "set_cpu_kernels", "cpu_kernels_enabled"]


def _eager_cpu(tensor: torch.Tensor) -> bool:
    """True where the kernels apply: a CPU tensor outside `torch.compile` tracing."""
    return tensor.device.type == "cpu" and not torch.compiler.is_compiling()


# ----------------------------------------------------------------------------------------------
# Depthwise convolution: written-out backward (training) and BatchNorm folding (eval)
# ----------------------------------------------------------------------------------------------


class _DepthwiseConv1dFunction(torch.autograd.Function):
    """`F.conv1d(x, weight, bias, groups=D)` with a faster CPU backward; x (B, D, L) -> (B, D, L - K + 1).

    oneDNN's depthwise weight gradient is ~7x slower than its forward on the CPU. Written out,
    grad_weight[d, k] = sum_b sum_t grad[b, d, t] * x[b, d, t + k] is itself a depthwise convolution
    (B*D groups, the gradient as kernel), which runs at forward speed; its B partial sums are added in
    fp32. The input gradient is the transposed convolution, as in autograd.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv1d(x, weight, bias, groups=x.shape[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        (batch, channels, length), kernel = x.shape, weight.shape[-1]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv_transpose1d(grad, weight, groups=channels)
        if ctx.needs_input_grad[1]:
            partial = F.conv1d(x.reshape(1, batch * channels, length), grad.reshape(batch * channels, 1, -1),
                               groups=batch * channels)  # (1, B*D, K)
            grad_weight = partial.view(batch, channels, kernel).sum(0, dtype=torch.float32)
            grad_weight = grad_weight.unsqueeze(1).to(weight.dtype)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2), dtype=torch.float32).to(grad.dtype)
        return grad_x, grad_weight, grad_bias


def depthwise_conv1d(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """`conv(x)` for a depthwise `nn.Conv1d` without padding, through `_DepthwiseConv1dFunction`.

    (B, D, L) -> (B, D, L - K + 1). The Function runs its ops itself, so autocast's cast of the
    convolution's inputs is done here.
    """
    weight, bias = conv.weight, conv.bias
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
    return _DepthwiseConv1dFunction.apply(x, weight, bias)


def folded_depthwise_conv1d(x: torch.Tensor, conv: nn.Conv1d, batch_norm: nn.Module) -> torch.Tensor:
    """`batch_norm(conv(x))` in eval mode as one convolution: (B, D, L) -> (B, D, L - K + 1).

    With running statistics BatchNorm is the per-channel affine map `inference_affine()`; folded into the
    depthwise kernel (in fp32, then cast to the weights' dtype) it costs nothing, instead of two passes
    over the activations (four under autocast).
    """
    scale, shift = batch_norm.inference_affine()
    weight = (conv.weight * scale[:, None, None]).to(conv.weight.dtype)
    bias = (conv.bias * scale + shift).to(conv.bias.dtype)
    return F.conv1d(x, weight, bias, groups=x.shape[1])


def convolution_module_forward(self, hidden_states: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """`AstroCoConvolutionModule.forward` with its depthwise convolution and BatchNorm as CPU kernels.

    The plain forward's steps; only depthwise convolution -> BatchNorm differs: in training, the
    convolution with the written-out backward; in eval, the convolution with BatchNorm folded in.
    """
    if not _eager_cpu(hidden_states) or (self.training and not torch.is_grad_enabled()):
        return type(self).forward(self, hidden_states, valid)
    x = F.glu(self.pointwise_in(self.layer_norm(hidden_states)), dim=-1)  # (B, T, D)
    if valid is not None:
        x = x * valid.unsqueeze(-1).to(x.dtype)
    x = F.pad(x.transpose(1, 2), self.pad)  # (B, D, T + K - 1)
    if self.training:
        x = self.batch_norm(depthwise_conv1d(x, self.depthwise), valid)
    else:
        x = folded_depthwise_conv1d(x, self.depthwise, self.batch_norm)
    return self.pointwise_out(F.silu(x).transpose(1, 2).contiguous())


# ----------------------------------------------------------------------------------------------
# Feed-forward network: chunks of rows without autograd
# ----------------------------------------------------------------------------------------------

# Rows (B*T positions) per chunk. The (rows, rD) intermediates of a chunk stay small enough to be served
# from reused allocator blocks and to stay in cache, instead of fresh ~50 MB mappings faulted in page by
# page (batch 64 x 200 of AstroCo-S).
FEED_FORWARD_CHUNK_ROWS = 2048


def feed_forward_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """`AstroCoFeedForward.forward` over chunks of rows when no gradient is recorded: (B, T, D) -> (B, T, D).

    The FFN is position-wise, so chunks of the (B*T, D) rows give the same rows. Under autograd the
    intermediates are kept for the backward anyway, and chunks would only split every GEMM of the step.
    """
    plain = type(self).forward
    rows = hidden_states.reshape(-1, hidden_states.shape[-1])
    chunks = len(rows) // FEED_FORWARD_CHUNK_ROWS
    if chunks <= 1 or torch.is_grad_enabled() or not _eager_cpu(hidden_states):
        return plain(self, hidden_states)
    return torch.cat([plain(self, chunk) for chunk in rows.tensor_split(chunks)]).view(hidden_states.shape)


# ----------------------------------------------------------------------------------------------
# Residual dropout: one vectorised mask, applied with the residual sum
# ----------------------------------------------------------------------------------------------


def residual_dropout_forward(self, residual: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """`AstroCoResidualDropout.forward` on the CPU in training: (B, T, D) x 2 -> (B, T, D).

    The keep mask is drawn with `torch.rand` (vectorised, about twice as fast as `bernoulli_` on a bf16
    tensor, which dominated the dropout cost) and applied together with the residual sum by one
    `addcmul`. Each element is kept with probability 1 - p and scaled by 1 / (1 - p), as `F.dropout`
    does; only the random stream differs.
    """
    if not self.training or self.p == 0.0 or not _eager_cpu(update):
        return type(self).forward(self, residual, update)
    scale = torch.rand(update.shape, device=update.device).ge_(self.p).mul_(1.0 / (1.0 - self.p))
    return torch.addcmul(residual, update, scale.to(update.dtype))


# ----------------------------------------------------------------------------------------------
# The switch
# ----------------------------------------------------------------------------------------------

# Sublayer class name -> kernel forward. Names, not classes: `modeling_astroco` imports this module.
KERNELS: dict[str, Callable[..., torch.Tensor]] = {
    "AstroCoConvolutionModule": convolution_module_forward,
    "AstroCoFeedForward": feed_forward_forward,
    "AstroCoResidualDropout": residual_dropout_forward,
}


def kernel_of(module: nn.Module) -> Callable[..., torch.Tensor] | None:
    """The kernel of `module`'s class or of the nearest base class named in `KERNELS`, else None.

    Base classes count so that a sublayer re-implemented for inference (the int8 copy's split FFN of
    `astroco_hf.precision`, an `AstroCoFeedForward`) is governed by the same switch.
    """
    return next((KERNELS[cls.__name__] for cls in type(module).__mro__ if cls.__name__ in KERNELS), None)


def set_cpu_kernels(model: nn.Module, enabled: bool) -> None:
    """Bind the kernels to (or remove them from) every matching sublayer of `model`."""
    for module in model.modules():
        kernel = kernel_of(module)
        if kernel is None:
            continue
        if enabled:
            # An instance attribute shadows the class's forward; a partial of a module-level function
            # (unlike a bound method) survives pickling and deepcopy.
            module.forward = partial(kernel, module)
        else:
            vars(module).pop("forward", None)


def cpu_kernels_enabled(model: nn.Module) -> bool:
    """Whether any sublayer of `model` runs a kernel of this module."""
    return any("forward" in vars(m) for m in model.modules() if kernel_of(m) is not None)
