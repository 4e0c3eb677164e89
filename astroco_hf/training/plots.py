"""Figures of a pretraining run: the learning curve and reconstructions of held-out windows.

Figures are drawn on `matplotlib.figure.Figure` directly (no pyplot): no GUI backend, no global state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["plot_learning_curve", "plot_reconstructions"]


def plot_learning_curve(
    log_history: Sequence[Mapping[str, Any]], path: str | Path, *, test_rmse: float | None = None,
    best_step: int | None = None,
) -> Path:
    """Training loss and validation RMSE (all probed points and hidden ones) against optimizer steps,
    with the validation window-mean baseline and, if given, the final test RMSE for reference."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    evals = [entry for entry in log_history if "eval_rmse" in entry]
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    if train:
        axes.plot(*zip(*train, strict=True), color="0.6", lw=1, label="training loss (RMSE, probed)")
    if evals:
        steps = [entry["step"] for entry in evals]
        axes.plot(steps, [entry["eval_rmse"] for entry in evals], "o-", color="C0", label="validation RMSE, probed")
        axes.plot(steps, [entry["eval_rmse_hidden"] for entry in evals], "s-", color="C3", label="validation RMSE, hidden")
        axes.axhline(evals[-1]["eval_baseline_rmse_hidden"], color="C3", ls="--", lw=1,
                     label="validation window-mean baseline, hidden")
    if test_rmse is not None:
        axes.axhline(test_rmse, color="k", ls=":", lw=1, label="test RMSE, hidden (best model)")
    if best_step is not None:
        axes.axvline(best_step, color="0.3", ls="-.", lw=0.8, label="best checkpoint")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("RMSE (mag, window-normalised)")
    axes.set_title("AstroCo masked-reconstruction pretraining")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path


@torch.no_grad()
def plot_reconstructions(model: torch.nn.Module, batch: Mapping[str, torch.Tensor], titles: Sequence[str],
                         path: str | Path) -> Path:
    """One panel per window of ``batch`` (a collated evaluation batch with fixed masks): all true
    magnitudes, the points the model saw, and its predictions at the hidden points."""
    model.eval()
    device = next(model.parameters()).device
    inputs = {key: batch[key].to(device) for key in ("times", "magnitudes", "uncertainties", "attention_mask",
                                                      "masked_positions")}
    prediction = model(**inputs).reconstruction.float().cpu().numpy()
    times = batch["times"].double().numpy()
    truth = batch["labels"].numpy()
    valid = batch["attention_mask"].numpy().astype(bool)
    hidden = batch["masked_positions"].numpy()
    rows = len(titles)
    figure = Figure(figsize=(9, 2.4 * rows), layout="constrained")
    for row, title in enumerate(titles):
        axes = figure.add_subplot(rows, 1, row + 1)
        seen, masked = valid[row] & ~hidden[row], hidden[row]
        t = times[row]
        axes.plot(t[valid[row]], truth[row][valid[row]], "-", color="0.85", lw=0.8, zorder=0)
        axes.plot(t[seen], truth[row][seen], ".", color="0.35", ms=4, label="visible")
        axes.plot(t[masked], truth[row][masked], "o", mfc="none", color="C3", ms=5, label="hidden (true)")
        axes.plot(t[masked], prediction[row][masked], "x", color="C0", ms=5, label="hidden (predicted)")
        rmse = float(np.sqrt(np.mean((prediction[row][masked] - truth[row][masked]) ** 2))) if masked.any() else float("nan")
        baseline = float(np.sqrt(np.mean(truth[row][masked] ** 2))) if masked.any() else float("nan")
        axes.set_title(f"{title}: hidden-point RMSE {rmse:.3f} (window mean {baseline:.3f})", fontsize=9)
        axes.invert_yaxis()  # astronomical convention: brighter up
        axes.set_ylabel("mag - window mean")
        if row == 0:
            axes.legend(fontsize=7, ncol=3, loc="upper right")
    figure.axes[-1].set_xlabel("time - window mean (days)")
    path = Path(path)
    figure.savefig(path, dpi=110)
    return path
