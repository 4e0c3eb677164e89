"""Trainer callbacks of the pretraining loop: a wall-clock budget, the epoch of the random crops, and a
clean stop on SIGTERM / SIGINT."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from .data import TrainingWindows

__all__ = ["StopOnSignalCallback", "TimeBudgetCallback", "WindowEpochCallback"]


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


class StopOnSignalCallback(TrainerCallback):
    """SIGTERM / SIGINT (a scheduler's stop, Ctrl-C) end training cleanly at the current step.

    While training runs, the signals only set a flag; at the end of the step in progress the callback asks
    Trainer for a checkpoint (``should_save``) and to stop (``should_training_stop``), so that step's work is
    kept and ``--resume`` continues exactly there. :attr:`received` then holds the signal number. A second
    signal restores the previous handler and re-delivers itself (a second Ctrl-C stops at once). Under DDP
    the flag is reduced over ranks each step, so all ranks stop at the same step. Handlers are installed
    in the main thread only (Python's rule) and restored when training ends.
    """

    SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self.stopped_at_step: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # asked twice: stop now
            self._restore()
            signal.raise_signal(signum)
            return
        self.received = signum

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        received = torch.tensor([self.received or 0], dtype=torch.int64, device=args.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(received, op=torch.distributed.ReduceOp.MAX)
        if received.item():
            self.received = int(received.item())
            self.stopped_at_step = state.global_step
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        self._restore()
