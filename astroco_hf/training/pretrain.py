"""Masked-reconstruction pretraining of AstroCo on `transformers.Trainer`: the library API.

    from astroco_hf.training import pretrain, resolve_arguments
    result = pretrain(resolve_arguments("astroco-tiny", output_dir="runs/tiny"))
    result.eval_results["test"]["rmse_hidden"], result.output_dir

One run: check the output folder, load/clean/split the data by object, build the model, train with
early stopping on validation RMSE (best checkpoint restored), evaluate on the held-out test objects
with fixed masks, then write into ``output_dir``: the model (safetensors + config, loadable with
``AutoModelForPreTraining.from_pretrained``), ``eval_results.json`` (docs/CONTRACTS.md),
``training_config.json`` (the resolved arguments; a valid ``--config`` file), ``trainer_state.json``,
``learning_curve.png`` and ``reconstruction.png``. Checkpoints stay in ``output_dir/checkpoint-*``.

With ``device_data`` the training batches are drawn on the accelerator
(:class:`~astroco_hf.training.device_data.DeviceWindows`, the same distributions as the CPU collator); validation
and test windows always go through the collator, with their fixed masks.

The run holds ``output_dir``'s lock (:func:`astroco_hf.outputs.lock_output_dir`) from the first check to
the last file, so a second run on the same folder refuses; the model and ``eval_results.json`` are written
through temporary names and renamed, ``eval_results.json`` last: its presence means the run finished.
SIGTERM / SIGINT stop training at the current step with a checkpoint and raise
:class:`~astroco_hf.errors.TrainingInterrupted` carrying the resume command.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import EarlyStoppingCallback, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .. import AstroCoConfig, AstroCoForMaskedReconstruction, __version__
from ..data import DataCollatorForMaskedReconstruction
from ..errors import PretrainingConfigError, PretrainingInputError, TrainingInterrupted
from ..outputs import atomic_write_text, lock_output_dir
from ..pipelines import save_inference_files
from ..precision import training_uses_bf16
from .callbacks import StopOnSignalCallback, TimeBudgetCallback, WindowEpochCallback
from .data import PretrainingCollator, PretrainingData, build_pretraining_data
from .plots import plot_learning_curve, plot_reconstructions
from .recipes import PretrainingArguments
from .trainer import AstroCoTrainer, ReconstructionMetrics

__all__ = ["PretrainingResult", "pretrain", "build_trainer", "check_output_dir", "format_summary"]

# The `test` block of eval_results.json (docs/CONTRACTS.md), in order.
TEST_KEYS: tuple[str, ...] = (
    "rmse", "r2", "rmse_hidden", "r2_hidden", "rmse_random", "r2_random", "rmse_unchanged", "r2_unchanged",
    "baseline_rmse", "baseline_rmse_hidden", "noise_floor", "n_probed", "n_hidden",
)

# What `--overwrite` removes besides the checkpoints, so that nothing of an earlier run passes for a
# result of the new one (the other outputs are replaced when the new run finishes).
EARLIER_RESULTS: tuple[str, ...] = ("eval_results.json", "trainer_state.json", "model.safetensors")


@dataclass
class PretrainingResult:
    """What `pretrain` produced. ``eval_results`` is the content of ``eval_results.json``."""

    output_dir: Path
    eval_results: dict[str, Any]
    stopped_by: str  # "max_steps", "epochs", "early_stopping" or "time_budget"
    best_checkpoint: str | None


def check_output_dir(args: PretrainingArguments) -> Path | None:
    """Fail early on an unusable output folder; return the checkpoint to resume from, if any.

    Raises:
        PretrainingInputError: the folder cannot be created or written, or it holds checkpoints or results
            of an earlier run and neither ``resume`` nor ``overwrite`` is set.
    """
    output_dir = Path(args.output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise PretrainingInputError(f"output folder {output_dir} is not writable ({error.strerror or error}); "
                         "choose another --output-dir") from None
    last = get_last_checkpoint(str(output_dir))
    earlier = [name for name in EARLIER_RESULTS if (output_dir / name).exists()]
    if (last is not None or earlier) and not args.resume:
        if not args.overwrite:
            found = Path(last).name if last is not None else earlier[0]
            raise PretrainingInputError(f"{output_dir} already holds an earlier run ({found}); pass --resume to "
                                        "continue it, --overwrite to start afresh, or choose another --output-dir")
        if int(os.environ.get("RANK", "0")) == 0:
            for checkpoint in output_dir.glob("checkpoint-*"):
                shutil.rmtree(checkpoint)
            for name in earlier:
                (output_dir / name).unlink()
        return None
    return Path(last) if (last is not None and args.resume) else None


def _model_config(args: PretrainingArguments) -> AstroCoConfig:
    """The model's configuration: the preset, ``model_overrides``, ``dropout``, and the window as
    ``max_sequence_length`` (the window is declared once, in the arguments)."""
    overrides = dict(args.model_overrides)
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    overrides["max_sequence_length"] = args.window
    try:
        return AstroCoConfig.from_preset(args.preset, **overrides)
    except StrictDataclassError as error:  # the configuration's own checks (e.g. d_model % num_heads)
        raise PretrainingConfigError(f"model_overrides: {error.__cause__ or error}") from None


def _use_bf16(args: PretrainingArguments) -> bool:
    """bf16 autocast for ``args.precision`` on this process's device; ``bf16`` where it is emulated is refused."""
    device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")
    try:
        return training_uses_bf16(args.precision, device)
    except ValueError as error:
        raise PretrainingConfigError(str(error)) from None


def _attention_kernel(args: PretrainingArguments) -> str:
    if args.attn_implementation is not None:
        return args.attn_implementation
    return "sdpa" if torch.accelerator.is_available() else "eager"


def build_training_arguments(args: PretrainingArguments) -> TrainingArguments:
    """`TrainingArguments` of a run. ``args.batch_size`` is global: the per-device batch is
    ``batch_size / (processes * gradient_accumulation_steps)``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = world_size * args.gradient_accumulation_steps
    if args.batch_size % per_step:
        raise PretrainingConfigError(f"batch_size {args.batch_size} is not divisible by processes x gradient_accumulation_steps "
                         f"= {world_size} x {args.gradient_accumulation_steps}")
    per_device = args.batch_size // per_step
    # A whole number of warm-up steps, or a fraction of all steps below 1.
    warmup = int(args.warmup_steps) if args.warmup_steps >= 1 else args.warmup_steps
    steps = {"eval_steps": args.eval_steps, "save_steps": args.eval_steps} if args.eval_strategy == "steps" else {}
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=args.eval_batch_size or per_device,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        lr_scheduler_type=args.lr_scheduler_type,
        warmup_steps=warmup,
        max_grad_norm=args.max_grad_norm,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        eval_strategy=args.eval_strategy,
        save_strategy=args.eval_strategy,  # load_best_model_at_end needs checkpoints at evaluations
        save_total_limit=args.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="rmse",  # validation RMSE over probed points, the paper's criterion
        greater_is_better=False,
        logging_steps=args.logging_steps,
        bf16=_use_bf16(args),
        torch_compile=args.torch_compile,
        torch_compile_mode=args.torch_compile_mode,
        # On CUDA the fused kernel: the same AdamW update in a few launches instead of several per parameter.
        # Elsewhere transformers' default (also the fused one from torch 2.8); eval_results.json says which ran.
        **({"optim": "adamw_torch_fused"} if torch.cuda.is_available() else {}),
        seed=args.seed,
        dataloader_num_workers=args.dataloader_num_workers,
        # Without an accelerator, say so: accelerate only sets up multi-process CPU (gloo) DDP under
        # torchrun when told it runs on CPU.
        use_cpu=not torch.accelerator.is_available(),
        dataloader_pin_memory=torch.accelerator.is_available(),
        # The model reads `labels` and `probed_positions`; evaluation batches carry extra keys that
        # AstroCoTrainer sets aside. Column removal would break the window transforms.
        remove_unused_columns=False,
        label_names=["labels"],
        # Every trainable parameter gets a gradient (the scalar-mix weights are frozen in pretraining).
        ddp_find_unused_parameters=False,
        batch_eval_metrics=True,  # metrics from per-batch probed points, not all predictions in memory
        report_to="none",
        **steps,
    )
    if training_args.world_size != world_size:
        raise RuntimeError(f"WORLD_SIZE={world_size} but the Trainer sees {training_args.world_size} processes")
    return training_args


def build_trainer(args: PretrainingArguments, data: PretrainingData, training_args: TrainingArguments | None = None,
                  model: AstroCoForMaskedReconstruction | None = None,
                  callbacks: Sequence[TrainerCallback] = ()) -> AstroCoTrainer:
    """The `AstroCoTrainer` of a run, with its collator, metrics and callbacks (early stopping, epoch
    of the crops, time budget, then ``callbacks``)."""
    training_args = training_args or build_training_arguments(args)
    if model is None:
        set_seed(args.seed)
        model = AstroCoForMaskedReconstruction(_model_config(args))
    model.set_attn_implementation(_attention_kernel(args))
    masking = DataCollatorForMaskedReconstruction(
        window=args.window, probe_fraction=args.probe_fraction, mask_fraction=args.mask_fraction,
        random_fraction=args.random_fraction, unchanged_fraction=args.unchanged_fraction, seed=args.seed,
    )
    run_callbacks: list[TrainerCallback] = [WindowEpochCallback(data.train)]
    if args.patience is not None:
        run_callbacks.append(EarlyStoppingCallback(early_stopping_patience=args.patience))
    if args.max_time_minutes is not None:
        run_callbacks.append(TimeBudgetCallback(args.max_time_minutes))
    return AstroCoTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=PretrainingCollator(masking, {name: code for code, name in enumerate(data.surveys)}),
        compute_metrics=ReconstructionMetrics(data.surveys),
        callbacks=[*run_callbacks, *callbacks],
        exact_batch_rmse=args.exact_batch_rmse,
        device_masking=masking if args.device_data else None,
    )


def _stop_reason(trainer: AstroCoTrainer, args: PretrainingArguments) -> str:
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TimeBudgetCallback) and callback.stopped_at_step is not None:
            return "time_budget"
    state = trainer.state
    if state.global_step >= state.max_steps:
        return "max_steps" if args.max_steps > 0 else "epochs"
    return "early_stopping"


def _eval_results(args: PretrainingArguments, data: PretrainingData, trainer: AstroCoTrainer,
                  test: dict[str, float], wall_time: float) -> dict[str, Any]:
    model = trainer.model
    training_args = trainer.args
    scores = {key.removeprefix("test_"): value for key, value in test.items()}
    per_survey = {
        survey: {
            "rmse_hidden": scores[f"{survey}/rmse_hidden"],
            "baseline_rmse_hidden": scores[f"{survey}/baseline_rmse_hidden"],
            "noise_floor": scores[f"{survey}/noise_floor_hidden"],  # on the same hidden points
            "n_hidden": scores[f"{survey}/n_hidden"],
        }
        for survey in data.surveys if f"{survey}/n_hidden" in scores
    }
    return {
        "astroco_hf_version": __version__,
        "model": {"preset": args.preset, "parameters": sum(p.numel() for p in model.parameters()),
                  "config": model.config.to_diff_dict()},
        "data": data.summary(),
        "training": {
            "hyperparameters": {
                "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                "per_device_batch_size": training_args.per_device_train_batch_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps,
                "exact_batch_rmse": args.exact_batch_rmse, "optimizer": str(training_args.optim.value),
                "device_data": args.device_data, "torch_compile": args.torch_compile,
                "torch_compile_mode": args.torch_compile_mode,
                "weight_decay": args.weight_decay, "lr_scheduler_type": args.lr_scheduler_type,
                "warmup_steps": args.warmup_steps, "max_grad_norm": args.max_grad_norm,
                "dropout": model.config.dropout, "window": args.window, "patience": args.patience,
                "max_steps": args.max_steps, "epochs": args.epochs, "max_time_minutes": args.max_time_minutes,
                "mask_fractions": {"probed": args.probe_fraction, "hidden": args.mask_fraction,
                                   "random": args.random_fraction, "unchanged": args.unchanged_fraction},
                "stopped_by": _stop_reason(trainer, args),
                "best_checkpoint": trainer.state.best_model_checkpoint,
                "best_validation_rmse": trainer.state.best_metric,
            },
            "global_step": trainer.state.global_step,
            "epochs": round(float(trainer.state.epoch or 0.0), 4),
            "wall_time_s": round(wall_time, 1),
            "seed": args.seed,
            "split_seed": args.seed if args.split_seed is None else args.split_seed,
            "device": training_args.device.type,
            "precision": {"no": "fp32"}.get(training_args.mixed_precision, training_args.mixed_precision),
            "num_processes": training_args.world_size,
        },
        "test": {key: scores[key] for key in TEST_KEYS},
        "per_survey": per_survey,
    }


def _plot_batch(trainer: AstroCoTrainer, data: PretrainingData, count: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The ``count`` fullest test windows, one per light curve where possible, collated with their fixed masks."""
    test = data.test
    lengths = [len(t) for t in test["times"]]
    order = sorted(range(len(test)), key=lambda i: (-lengths[i], i))
    chosen, curves = [], set()
    for index in order:  # first pass: distinct curves; then fill with the remaining fullest windows
        if test[index]["curve_index"] not in curves:
            chosen.append(index)
            curves.add(test[index]["curve_index"])
        if len(chosen) == count:
            break
    chosen += [i for i in order if i not in chosen][: count - len(chosen)]
    rows = [test[i] for i in chosen]
    titles = [f"{row['survey']} {row['object_id']} {row['band']}, points {row['start']}-{row['start'] + len(row['times']) - 1}"
              for row in rows]
    return trainer.data_collator(rows), titles


def format_summary(results: dict[str, Any], output_dir: Path) -> str:
    """The final printed summary: test RMSE on hidden points against the window-mean baseline."""
    test, training, data = results["test"], results["training"], results["data"]
    gain = 1.0 - test["rmse_hidden"] / test["baseline_rmse_hidden"]
    verdict = "beats" if gain > 0 else "does NOT beat"
    lines = [
        "",
        f"AstroCo pretraining done: {results['model']['preset']} ({results['model']['parameters']:,} parameters), "
        f"{training['global_step']} steps ({training['epochs']:.1f} epochs, stopped by "
        f"{training['hyperparameters']['stopped_by']}) in {training['wall_time_s'] / 60:.1f} min on "
        f"{training['num_processes']} x {training['device']} ({training['precision']})",
        f"Held-out test objects: {data['objects']['test']} ({data['windows']['test']} windows, "
        f"{test['n_hidden']:,} hidden of {test['n_probed']:,} probed points), split by object:",
        f"  RMSE on hidden points     {test['rmse_hidden']:.4f} mag   (R2 {test['r2_hidden']:.3f})",
        f"  window-mean baseline      {test['baseline_rmse_hidden']:.4f} mag   -> the model {verdict} it "
        f"({100 * gain:+.1f}% RMSE reduction)",
        f"  noise floor sqrt(<s^2>)   {test['noise_floor']:.4f} mag",
        f"  all probed points         {test['rmse']:.4f} mag   (R2 {test['r2']:.3f}; random {test['rmse_random']:.4f}, "
        f"unchanged {test['rmse_unchanged']:.4f})",
    ]
    if len(results["per_survey"]) > 1:
        lines.append("  per survey (hidden points): RMSE / window-mean baseline / noise floor / points")
        for survey, row in results["per_survey"].items():
            lines.append(f"    {survey:<10} {row['rmse_hidden']:.4f} / {row['baseline_rmse_hidden']:.4f} / "
                         f"{row['noise_floor']:.4f} / {row['n_hidden']:,}")
    lines.append(f"Saved in {output_dir}: model (config.json, model.safetensors), feature extractor "
                 "(preprocessor_config.json), eval_results.json, training_config.json, learning_curve.png, "
                 "reconstruction.png")
    return "\n".join(lines)


def pretrain(args: PretrainingArguments, *, callbacks: Sequence[TrainerCallback] = (),
             verbose: bool = True) -> PretrainingResult:
    """Run one pretraining job end to end (see the module docstring); ``callbacks`` are added to the
    Trainer's.

    Raises:
        PretrainingInputError: inconsistent arguments, unusable data or an unusable output folder (locked by
            another run, holding an earlier run): raised before any training starts.
        TrainingInterrupted: SIGTERM / SIGINT stopped training; a checkpoint of the last step was saved.
    """
    start = time.monotonic()
    training_args = build_training_arguments(args)  # argument errors (precision, batch split) come first
    _model_config(args)
    is_main = training_args.process_index == 0
    lock = lock_output_dir(args.output_dir, take_over=args.resume or args.overwrite) if is_main else nullcontext()
    with lock:
        try:
            resume_from = check_output_dir(args)
            data = build_pretraining_data(
                args.data, window=args.window, seed=args.seed, validation_fraction=args.validation_fraction,
                test_fraction=args.test_fraction, bands=args.bands, min_points=args.min_points,
                crops_per_curve=args.crops_per_curve, split_seed=args.split_seed,
            )
        except PretrainingInputError:
            raise
        except (ValueError, OSError) as error:  # OSError includes FileNotFoundError
            raise PretrainingInputError(str(error)) from error
        return _train_and_save(args, data, training_args, resume_from, callbacks, verbose, start)


def _train_and_save(args: PretrainingArguments, data: PretrainingData, training_args: TrainingArguments,
                    resume_from: Path | None, callbacks: Sequence[TrainerCallback], verbose: bool,
                    start: float) -> PretrainingResult:
    is_main = training_args.process_index == 0
    if args.resume and resume_from is None and verbose and is_main:
        print(f"No checkpoint in {args.output_dir}: starting from scratch.")
    output_dir = Path(args.output_dir)
    if is_main:  # written first, so a run killed mid-way can be resumed with --config <it> --resume
        atomic_write_text(output_dir / "training_config.json",
                          json.dumps(args.to_dict() | {"resume": False, "overwrite": False}, indent=2) + "\n")
    if verbose and is_main:
        summary = data.summary()
        print(f"Data: {', '.join(summary['sources'])} -> objects {summary['objects']}, windows {summary['windows']}, "
              f"surveys {summary['surveys']}, bands {summary['bands']}")
    stop = StopOnSignalCallback()
    trainer = build_trainer(args, data, training_args, callbacks=[stop, *callbacks])
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    if stop.received is not None:
        raise _interrupted(stop, output_dir)
    trainer.remove_callback(EarlyStoppingCallback)  # the test evaluation has no eval_rmse to watch
    test = trainer.evaluate(eval_dataset=data.test, metric_key_prefix="test")
    wall_time = time.monotonic() - start

    _save_model(trainer, output_dir)  # the best model (load_best_model_at_end)
    trainer.save_state()
    results = _eval_results(args, data, trainer, test, wall_time)
    if is_main:
        best_step = _checkpoint_step(trainer.state.best_model_checkpoint)
        plot_learning_curve(trainer.state.log_history, output_dir / "learning_curve.png",
                            test_rmse=results["test"]["rmse_hidden"], best_step=best_step)
        batch, titles = _plot_batch(trainer, data, args.plot_windows)
        plot_reconstructions(trainer.model, batch, titles, output_dir / "reconstruction.png")
        if data.cleaning is not None:
            atomic_write_text(output_dir / "cleaning_report.json", data.cleaning.to_json() + "\n")
        # Last: its presence marks a finished run.
        atomic_write_text(output_dir / "eval_results.json", json.dumps(results, indent=2, allow_nan=True) + "\n")
        if verbose:
            print(format_summary(results, output_dir))
    return PretrainingResult(output_dir, results, results["training"]["hyperparameters"]["stopped_by"],
                             trainer.state.best_model_checkpoint)


def _save_model(trainer: AstroCoTrainer, output_dir: Path) -> None:
    """Save the model into a temporary folder, then move each file into ``output_dir`` (never half-written)."""
    if not trainer.is_world_process_zero():
        trainer.save_model(str(output_dir))  # writes nothing here; kept for the processes' common protocol
        return
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".model-") as folder:
        trainer.save_model(folder)
        save_inference_files(folder)  # feature extractor, pipelines: the folder serves pipeline(...) as it is
        for item in Path(folder).iterdir():
            os.replace(item, output_dir / item.name)


def _interrupted(stop: StopOnSignalCallback, output_dir: Path) -> TrainingInterrupted:
    """The error of a run stopped by a signal: where its checkpoint is and the exact command that resumes it."""
    name = signal.Signals(stop.received).name
    command = shlex.join(["astroco", "pretrain", "--config", str(output_dir / "training_config.json"), "--resume"])
    return TrainingInterrupted(
        f"stopped by {name} after step {stop.stopped_at_step}; checkpoint saved in "
        f"{output_dir / f'checkpoint-{stop.stopped_at_step}'}; resume with: {command}", stop.received)


def _checkpoint_step(checkpoint: str | None) -> int | None:
    if checkpoint is None:
        return None
    suffix = Path(checkpoint).name.rpartition("-")[2]
    return int(suffix) if suffix.isdigit() else None

