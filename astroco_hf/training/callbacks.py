"""Trainer callbacks of the pretraining loop: a wall-clock budget and the epoch of the random crops."""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from .data import TrainingWindows

__all__ = ["TimeBudgetCallback", "WindowEpochCallback"]


class TimeBudgetCallback(TrainerCallback):
    """Stop training cleanly once ``max_minutes`` of wall time have passed since training began.

    At the stopping step the callback also asks for an evaluation and a checkpoint, so the best-model
    selection sees the final weights and the run can be resumed; the test evaluation that follows
    `train()` is not part of the budget. Under DDP rank 0's clock decides for every rank (a rank that
    stopped alone would leave the others waiting in a collective).
    """

    def __init__(self, max_minutes: float) -> None:
        self.max_seconds = 60.0 * max_minutes
        self.start: float | None = None
        self.stopped_at_step: int | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        self.start = time.monotonic()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        expired = torch.tensor([time.monotonic() - self.start >= self.max_seconds], dtype=torch.uint8, device=args.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.broadcast(expired, src=0)
        if expired.item():
            self.stopped_at_step = state.global_step
            control.should_training_stop = True
            control.should_evaluate = True
            control.should_save = True


class WindowEpochCallback(TrainerCallback):
    """Tell :class:`TrainingWindows` which epoch starts, so crops and masks are a function of
    (seed, epoch, sample) and a resumed run draws exactly what the uninterrupted run would have.

    Trainer's own ``set_epoch`` forwarding does not reach the dataset under DDP (accelerate only calls
    ``dataset.set_epoch`` when the sampler has none), hence this callback. It runs before the epoch's
    DataLoader iterator (and its workers) is created.
    """

    def __init__(self, windows: TrainingWindows) -> None:
        self.windows = windows

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        # state.epoch is a float: k + (steps done in epoch k) / steps per epoch, exactly k at a boundary.
        self.windows.set_epoch(int(state.epoch or 0.0))
