"""The one ``--precision`` vocabulary of the ``astroco`` commands, and where bf16 is native.

Vocabulary (``astroco embed``, ``fewshot``, ``pretrain``, ``benchmark``):

- ``auto``: training: bf16 autocast where the device multiplies bf16 natively, else fp32. Inference:
  the fastest measured path that keeps the pooled embeddings within cosine 0.999 of fp32
  (:func:`prepare_for_inference`).
- ``fp32``: float32 weights and activations.
- ``bf16``: bf16 autocast (fp32 weights). Where bf16 is emulated it is refused for training and
  warned about for inference (:func:`bf16_problem`).
- ``int8``: inference only: dynamic int8 quantization of the linear layers (weights int8, activations
  quantized per call), the rest in fp32; on several threads the windows of a batch are split among them.

How the model is run (eager PyTorch, ``torch.compile``, ONNX Runtime) is a separate choice, the
inference *backend* (:data:`BACKENDS`); ``auto`` picks both.

Why bf16 has to be checked: a CPU without AVX512-BF16 or AMX (AVX2 only, as on many laptops and older
clusters) has no bf16 multiply; oneDNN converts every operand and product. Measured on the 2-core
AVX2-only AMD EPYC of the project machine (torch 2.13, under load from other jobs), one 2048 x 2048
matrix product: 85.9 GFLOP/s in fp32 and 0.16 GFLOP/s in bf16 (0.2 s against 106 s), ~500x slower.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._cpu_kernels import cpu_kernels_enabled, set_cpu_kernels
from .errors import PrecisionWarning
from .modeling_astroco import AstroCoFeedForward, AstroCoModelOutput, _validate_inputs

__all__ = [
    "PRECISIONS",
    "TRAINING_PRECISIONS",
    "INFERENCE_PRECISIONS",
    "BACKENDS",
    "check_precision",
    "native_bf16",
    "bf16_problem",
    "training_uses_bf16",
    "InferencePath",
    "candidate_paths",
    "prepare_for_inference",
    "choose_inference_path",
]

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")
TRAINING_PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
INFERENCE_PRECISIONS: tuple[str, ...] = PRECISIONS
BACKENDS: tuple[str, ...] = ("eager", "compile", "onnx")


def check_precision(precision: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    """``precision`` itself, or a ``ValueError`` naming it and the allowed values."""
    if precision not in allowed:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(allowed)}")
    return precision


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """CPU feature flags of /proc/cpuinfo (x86 ``flags``, aarch64 ``Features``); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` multiplies bf16 in hardware (so bf16 is faster than fp32, not ~500x slower).

    CPU: AVX512-BF16 (``torch.cpu._is_avx512_bf16_supported``), AMX-BF16 or the aarch64 ``bf16``
    extension. CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later). Other devices: False.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        flags = _cpu_flags()
        return torch.cpu._is_avx512_bf16_supported() or "amx_bf16" in flags or "bf16" in flags
    return False


def bf16_problem(device: str | torch.device = "cpu") -> str | None:
    """One line saying why bf16 is a bad idea on ``device``, or None where bf16 is native."""
    device = torch.device(device)
    if native_bf16(device):
        return None
    if device.type == "cpu":
        return ("bf16 is emulated on this CPU (no AVX512-BF16 or AMX flag): its matrix products run hundreds of "
                "times slower than fp32 (measurement in astroco_hf.precision); use --precision fp32 or auto")
    return f"bf16 is not supported natively on {device}; use --precision fp32 or auto"


def training_uses_bf16(precision: str, device: str | torch.device = "cpu") -> bool:
    """Resolve a training ``--precision`` to bf16 autocast on/off; bf16 where emulated is refused.

    Raises:
        ValueError: unknown precision, or ``bf16`` on a device without native bf16 (one line, with the cause).
    """
    check_precision(precision, TRAINING_PRECISIONS)
    if precision == "auto":
        return native_bf16(device)
    if precision == "bf16":
        problem = bf16_problem(device)
        if problem is not None:
            raise ValueError(f"--precision bf16 refused for training: {problem}")
        return True
    return False


# ----------------------------------------------------------------------------------------------
# Inference paths
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferencePath:
    """How an encoder is run for inference: a numeric ``precision`` and a ``backend``.

    ``name`` is ``precision`` for eager PyTorch, else ``precision+backend`` (``int8+onnx``).
    """

    precision: str = "fp32"
    backend: str = "eager"

    def __post_init__(self) -> None:
        check_precision(self.precision, ("fp32", "bf16", "int8"))
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        if self.precision == "bf16" and self.backend == "onnx":
            raise ValueError("bf16 runs in PyTorch only (eager or compile), not on the ONNX Runtime backend")

    @property
    def name(self) -> str:
        return self.precision if self.backend == "eager" else f"{self.precision}+{self.backend}"

    @classmethod
    def parse(cls, name: str) -> InferencePath:
        precision, _, backend = name.partition("+")
        return cls(precision, backend or "eager")


def candidate_paths(device: str | torch.device = "cpu") -> list[InferencePath]:
    """What ``--precision auto`` measures on ``device``.

    fp32 and int8 in PyTorch and (CPU, with ``onnxruntime`` installed) in ONNX Runtime, bf16 where
    native. ``torch.compile`` is left out: its first call took 192 s for AstroCo-S under load here,
    more than it saves on a catalogue, and it was no faster in the embedder (README, Speed); it stays
    available as ``--backend compile``. int8 is quantized on the CPU only (PyTorch's dynamic int8
    kernels are CPU kernels).
    """
    import importlib.util

    device = torch.device(device)
    paths = [InferencePath("fp32")]
    if device.type == "cpu":
        paths.append(InferencePath("int8"))
        if importlib.util.find_spec("onnxruntime") is not None:
            paths += [InferencePath("fp32", "onnx"), InferencePath("int8", "onnx")]
    if native_bf16(device):
        paths.append(InferencePath("bf16"))
    return paths


def prepare_for_inference(model: nn.Module, path: InferencePath | str, example: dict[str, torch.Tensor]) -> nn.Module:
    """The encoder of ``model`` made to run ``path``: an ``AstroCoModel`` to hand to ``AstroCoEmbedder``.

    fp32 eager returns the encoder itself (with the CPU kernels on a CPU); every other path works on a
    copy, so ``model`` stays usable. The result keeps the encoder's class, config, parameters and
    mixing weights; only its ``forward`` runs the path:

    - ``bf16``: the forward under bf16 autocast, the pooled output cast back to fp32.
    - ``int8``: ``torch.ao.quantization.quantize_dynamic`` of the linear layers of the encoder blocks
      that the forward calls as modules (found by hooks on ``example``). Each gated FFN is first
      replaced by :class:`_SplitGatedFeedForward` (its ``in_proj`` halves as two ``nn.Linear``), so that
      its value and gate products, ~40% of the linear FLOPs, are quantized too; the small input
      projections stay fp32. In eager mode the windows of a batch are split among threads with one
      intra-op thread each (:func:`_window_parallel`).
    - ``compile``: ``torch.compile`` of the forward (dynamic shapes).
    - ``onnx``: the encoder exported by :func:`astroco_hf.export.onnx.export_onnx` (dynamic batch, windows
      padded to ``max_sequence_length``) and run by ONNX Runtime on the CPU; int8 =
      ``onnxruntime.quantization.quantize_dynamic`` of that graph. It returns pooled embeddings only:
      ``output_hidden_states=True`` raises.

    Args:
        model: an AstroCo model (its ``base_model`` is used), in eval mode after this call.
        path: an :class:`InferencePath` or its name.
        example: one batch of windows (``times``, ``magnitudes``, ``uncertainties``, ``attention_mask``,
            each (B, T)), on which the int8 path finds the linear layers the forward calls.
    """
    path = InferencePath.parse(path) if isinstance(path, str) else path
    encoder = model.base_model.eval()
    if path.precision == "bf16" and (problem := bf16_problem(encoder.device)) is not None:
        warnings.warn(problem, category=PrecisionWarning, stacklevel=2)
    if path.backend == "onnx":
        return _onnx_encoder(encoder, path.precision == "int8", example)
    if path == InferencePath("fp32") and encoder.device.type == "cpu":
        return encoder.enable_cpu_kernels()
    if path == InferencePath("fp32"):
        return encoder
    prepared = copy.deepcopy(encoder)
    if prepared.device.type == "cpu":
        prepared.enable_cpu_kernels()
    if path.precision == "int8":
        _quantize_linear_layers(prepared, example)
        if path.backend == "eager":
            prepared.forward = _window_parallel(prepared)
    plain = prepared.forward
    if path.precision == "bf16":
        device_type = prepared.device.type

        def forward(*args: Any, **kwargs: Any) -> Any:
            with torch.autocast(device_type, dtype=torch.bfloat16):
                out = plain(*args, **kwargs)
            out.pooler_output = out.pooler_output.float()
            return out

        prepared.forward = forward
    if path.backend == "compile":
        prepared.forward = torch.compile(prepared.forward, dynamic=True)
    return prepared


class _SplitGatedFeedForward(AstroCoFeedForward):
    """A gated ``AstroCoFeedForward`` with W_val and W_gate as two ``nn.Linear``: (B, T, D) -> (B, T, D).

    Same function, W_out(GELU(W_val x) * sigmoid(W_gate x)); the original reads its ``in_proj`` weight
    halves directly (``F.linear``), which ``quantize_dynamic`` cannot see, while modules it converts.
    A subclass, so that ``enable_cpu_kernels()`` / ``disable_cpu_kernels()`` switch the FFN kernel (row
    chunks) of the int8 copy as they do the original's.
    """

    def __init__(self, feed_forward: AstroCoFeedForward) -> None:
        nn.Module.__init__(self)  # the layers are taken from `feed_forward`, not built from a config
        self.hidden, self.gated = feed_forward.hidden, True
        weight, bias, h = feed_forward.in_proj.weight.detach(), feed_forward.in_proj.bias.detach(), feed_forward.hidden
        self.value = nn.Linear(weight.shape[1], h, device=weight.device, dtype=weight.dtype)  # rows [0, h) of in_proj
        self.gate = nn.Linear(weight.shape[1], h, device=weight.device, dtype=weight.dtype)  # rows [h, 2h)
        with torch.no_grad():
            for linear, rows in ((self.value, slice(None, h)), (self.gate, slice(h, None))):
                linear.weight.copy_(weight[rows])
                linear.bias.copy_(bias[rows])
        self.out_proj = feed_forward.out_proj

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.out_proj(F.gelu(self.value(hidden_states)) * torch.sigmoid(self.gate(hidden_states)))


def _quantize_linear_layers(encoder: nn.Module, example: dict[str, torch.Tensor]) -> None:
    """Dynamic int8 for the ``nn.Linear`` modules of ``encoder.layers`` that its forward calls, in place.

    Gated FFNs are split first (:class:`_SplitGatedFeedForward`) so that their value and gate are among them;
    where the FFN ran the CPU kernel (rows in chunks), the split one runs it too.
    """
    for layer in encoder.layers:
        if layer.feed_forward.gated:
            split = _SplitGatedFeedForward(layer.feed_forward)
            # The CPU kernel's row chunks, kept where the FFN had them: ~15% faster in int8 too.
            set_cpu_kernels(split, cpu_kernels_enabled(layer.feed_forward))
            layer.feed_forward = split
    called: set[str] = set()
    hooks = [
        module.register_forward_hook(lambda module, args, out, name=name: called.add(name))
        for name, module in encoder.named_modules()
        if isinstance(module, nn.Linear) and name.startswith("layers.")
    ]
    try:
        with torch.inference_mode():
            encoder(**example)
    finally:
        for hook in hooks:
            hook.remove()
    spec = dict.fromkeys(called, torch.ao.quantization.default_dynamic_qconfig)
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao (not a dependency); in torch 2.13 it works.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        torch.ao.quantization.quantize_dynamic(encoder, spec, dtype=torch.qint8, inplace=True)


@functools.cache
def _window_workers(count: int, process: int) -> ThreadPoolExecutor:
    """``count`` threads, started now, each running torch ops with one intra-op thread; one pool per
    ``count`` and ``process`` id (a forked child has none of its parent's threads)."""
    threads = torch.get_num_threads()
    started = threading.Barrier(count)  # each start task waits for the others, so each gets its own thread

    def start() -> None:
        torch.set_num_threads(1)  # this thread's OpenMP team size
        started.wait()

    pool = ThreadPoolExecutor(count, thread_name_prefix="astroco-windows")
    for future in [pool.submit(start) for _ in range(count)]:
        future.result()
    torch.set_num_threads(threads)  # set_num_threads(1) also lowered the default that new threads start with
    return pool


def _window_parallel(encoder: nn.Module) -> Callable[..., Any]:
    """``encoder.forward`` with the windows of a batch split among ``torch.get_num_threads()`` threads
    (:func:`_window_workers`), each running its share with one intra-op thread; outputs concatenated.

    Windows are independent in eval mode (BatchNorm uses its running statistics), so the function is
    the encoder's. Why: AstroCo-S on the 2-core AVX2 CPU spends most of its time in ops on small
    tensors (int8 products, GELU, sigmoid, LayerNorm), where the two OpenMP threads of one op wait for
    each other at every op; one team per share does not synchronise at all (measured in
    docs/performance.md, "Inference precision on an AVX2-only CPU"). Inputs are
    validated on the whole batch first, so an error names the row of the batch, not of a share.
    """
    plain = encoder.forward
    config = encoder.config

    def forward(times: torch.Tensor, magnitudes: torch.Tensor, uncertainties: torch.Tensor,
                attention_mask: torch.Tensor | None = None, masked_positions: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                output_attentions: bool | None = None) -> Any:
        inputs = {"times": times, "magnitudes": magnitudes, "uncertainties": uncertainties,
                  "attention_mask": attention_mask, "masked_positions": masked_positions}
        options = {"output_hidden_states": output_hidden_states, "output_attentions": output_attentions}
        _validate_inputs(config, times, magnitudes, uncertainties, attention_mask, masked_positions)
        batch = times.shape[0]
        workers = min(torch.get_num_threads(), batch)
        if workers <= 1:
            return plain(**inputs, **options, return_dict=return_dict)
        grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()  # thread-local states

        def share(rows: slice) -> AstroCoModelOutput:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                return plain(**{name: None if value is None else value[rows] for name, value in inputs.items()},
                             **options, return_dict=True)

        edges = [batch * i // workers for i in range(workers + 1)]
        pool = _window_workers(workers, os.getpid())
        parts = [future.result() for future in
                 [pool.submit(share, slice(start, stop)) for start, stop in zip(edges, edges[1:], strict=False)]]
        output = _concatenate_windows(parts)
        return output if (return_dict if return_dict is not None else config.return_dict) else output.to_tuple()

    return forward


def _concatenate_windows(parts: list[AstroCoModelOutput]) -> AstroCoModelOutput:
    """Outputs of consecutive shares of a batch as one output: every per-window field concatenated
    along the batch (tuples field by field); ``layer_weights``, the same in every share, taken once."""
    merged: dict[str, Any] = {}
    for field in dataclasses.fields(parts[0]):
        values = [getattr(part, field.name) for part in parts]
        if values[0] is None or field.name == "layer_weights":
            merged[field.name] = values[0]
        elif isinstance(values[0], tuple):
            merged[field.name] = tuple(torch.cat(layer) for layer in zip(*values, strict=True))
        else:
            merged[field.name] = torch.cat(values)
    return type(parts[0])(**merged)


def _onnx_encoder(encoder: nn.Module, int8: bool, example: dict[str, torch.Tensor]) -> nn.Module:
    """``encoder`` with its forward run by ONNX Runtime on the graph of :func:`astroco_hf.export.export_onnx`."""
    import tempfile

    import onnxruntime as ort
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    from .export.onnx import export_onnx, quiet_onnx_tools

    length = encoder.config.max_sequence_length  # the graph's fixed window length; shorter batches are padded
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter and quantizer chatter
        graph = str(export_onnx(encoder, f"{folder}/encoder.onnx"))  # quiet itself
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with quiet_onnx_tools():
                quantize_dynamic(graph, f"{folder}/encoder-int8.onnx", weight_type=QuantType.QInt8)
            graph = f"{folder}/encoder-int8.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        # Idle ORT threads spin by default; beside PyTorch's on a small CPU they take the cores away.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    prepared = copy.deepcopy(encoder)

    def forward(times: torch.Tensor, magnitudes: torch.Tensor, uncertainties: torch.Tensor,
                attention_mask: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPooling:
        if output_hidden_states:
            raise ValueError("the ONNX Runtime path returns pooled embeddings only; "
                             "per-layer outputs need a PyTorch path (--backend eager)")
        if attention_mask is None:
            attention_mask = torch.ones(times.shape, dtype=torch.long, device=times.device)
        pad = length - times.shape[1]
        feed = {name: F.pad(value, (0, pad)).cpu().numpy() for name, value in
                (("times", times), ("magnitudes", magnitudes), ("uncertainties", uncertainties),
                 ("attention_mask", attention_mask.long()))}
        (pooled,) = session.run(["mean"], feed)
        return BaseModelOutputWithPooling(pooler_output=torch.from_numpy(pooled).to(times.device))

    prepared.forward = forward
    return prepared


@dataclass
class Calibration:
    """What ``--precision auto`` measured: ``chosen`` and, per candidate path name, the median and
    spread (min, max) of ``repeats`` timed calls on the example batch, the smallest cosine of its
    pooled embeddings with fp32 eager, and the error of a path that failed to prepare or run."""

    chosen: str
    min_cosine: float
    results: dict[str, dict[str, Any]]
    cached: bool = False

    def to_text(self) -> str:
        rows = []
        for name, r in self.results.items():
            if "error" in r:
                rows.append(f"{name} failed ({r['error']})")
            else:
                rows.append(f"{name} {r['median_s'] * 1e3:.0f} ms [{r['min_s'] * 1e3:.0f}-{r['max_s'] * 1e3:.0f}] "
                            f"cos {r['cosine_min']:.6f}")
        origin = " (cached)" if self.cached else ""
        return f"precision auto -> {self.chosen}{origin}: " + "; ".join(rows)


def _fingerprint(encoder: nn.Module, example: dict[str, torch.Tensor], candidates: list[InferencePath]) -> str:
    """Key of a calibration: the weights, the hardware and software, the example's shape, the candidates."""
    import hashlib
    import platform

    digest = hashlib.sha256()
    for name, tensor in encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    device = encoder.device
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name")), platform.processor())
                if Path("/proc/cpuinfo").exists() else platform.processor())
    digest.update(repr((hardware, sorted(_cpu_flags()), torch.get_num_threads(), str(device), torch.__version__,
                        ort_version, tuple(example["times"].shape), [p.name for p in candidates])).encode())
    return digest.hexdigest()


def _cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "astroco" / "inference_paths.json"


def choose_inference_path(
    model: nn.Module,
    example: dict[str, torch.Tensor],
    *,
    candidates: list[InferencePath] | None = None,
    min_cosine: float = 0.999,
    repeats: int = 3,
    cache: bool = True,
) -> Calibration:
    """``--precision auto``: the fastest candidate whose pooled embeddings keep cosine >= ``min_cosine``
    with fp32 eager on ``example``, measured once per (weights, hardware, software, batch shape).

    Every candidate (default :func:`candidate_paths`) is prepared and run once on ``example``, then
    timed ``repeats`` times, candidates alternating within each round so that a load change on a
    shared machine hits them alike; the median decides. fp32 eager always qualifies. The result is cached as JSON in ``$XDG_CACHE_HOME/astroco/inference_paths.json``
    (``cache=False``: neither read nor written).

    Args:
        model: an AstroCo model (its encoder is measured; the model itself is not changed).
        example: a batch of windows as in :func:`prepare_for_inference`, ideally the first batch of
            the data to embed (B, T) with B about the embedding batch size.
    """
    import json
    import time

    encoder = model.base_model.eval()
    candidates = candidates or candidate_paths(encoder.device)
    key = _fingerprint(encoder, example, candidates)
    file = _cache_file()
    if cache and file.exists():
        try:
            stored = json.loads(file.read_text()).get(key)
        except (OSError, json.JSONDecodeError):
            stored = None  # an unreadable cache is measured again and rewritten
        if stored is not None and stored["min_cosine"] == min_cosine:
            return Calibration(stored["chosen"], min_cosine, stored["results"], cached=True)

    with torch.inference_mode():
        baseline = encoder(**example).pooler_output.float()
    runs: dict[str, Any] = {}
    results: dict[str, dict[str, Any]] = {}
    for path in candidates:
        try:
            prepared = prepare_for_inference(copy.deepcopy(encoder), path, example)
            with torch.inference_mode():
                pooled = prepared(**example).pooler_output.float()
            cosine = float(F.cosine_similarity(pooled, baseline, dim=-1).min())
        except Exception as error:  # noqa: BLE001 - a path this machine cannot run is recorded, not chosen
            results[path.name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        runs[path.name] = prepared
        results[path.name] = {"cosine_min": cosine, "times_s": []}
    with torch.inference_mode():
        for round_index in range(repeats):
            names = list(runs) if round_index % 2 == 0 else list(runs)[::-1]
            for name in names:
                start = time.perf_counter()
                runs[name](**example)
                results[name]["times_s"].append(time.perf_counter() - start)
    for name in runs:
        times = sorted(results[name]["times_s"])
        results[name] |= {"median_s": times[len(times) // 2], "min_s": times[0], "max_s": times[-1]}
    # fp32 eager is the reference itself (any difference is float rounding), so there is always a choice.
    eligible = [name for name in runs if name == "fp32" or results[name]["cosine_min"] >= min_cosine]
    chosen = min(eligible, key=lambda name: results[name]["median_s"])
    if cache:
        file.parent.mkdir(parents=True, exist_ok=True)
        try:
            stored = json.loads(file.read_text()) if file.exists() else {}
        except (OSError, json.JSONDecodeError):
            stored = {}
        stored[key] = {"chosen": chosen, "min_cosine": min_cosine, "results": results}
        temporary = file.with_suffix(f".tmp{id(stored)}")
        temporary.write_text(json.dumps(stored, indent=1))
        temporary.replace(file)
    return Calibration(chosen, min_cosine, results)
