"""`AstroCoTrainer`: `transformers.Trainer` for masked reconstruction, and its metric adapter.

Two things differ from the stock Trainer:

* Evaluation batches carry keys the model does not take (``probe_kind``, ``true_uncertainties``,
  ``group``). They are set aside before the forward pass and returned with the labels, so metrics can
  be split by probe kind and survey and the noise floor uses the true errors of hidden points.
* ``exact_batch_rmse``: the paper's loss is an RMSE, not a mean, so the mean of micro-batch RMSEs
  (what gradient accumulation and DDP average) is not the RMSE of the whole batch. With the option on,
  every micro-batch contributes its squared errors divided by the probed-point count of the whole
  optimizer step (over all processes), and the summed gradient, i.e. that of the batch MSE, is
  rescaled by ``1 / (2 RMSE)``: d sqrt(MSE) = d MSE / (2 sqrt(MSE)). The update is then the
  full-batch update up to BatchNorm statistics, which stay per micro-batch and per process.
* ``device_masking``: training batches are drawn on the device (:class:`~astroco_hf.training.device_data.DeviceWindows`
  over the training crops, masked like that collator) instead of collated on the CPU; evaluation keeps
  the collator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers import EvalPrediction, Trainer

from ..data.collator import DataCollatorForMaskedReconstruction, ProbeKind
from .device_data import DeviceWindows
from .metrics import MaskedReconstructionMetric

__all__ = ["AstroCoTrainer", "ReconstructionMetrics", "EVAL_ONLY_KEYS"]

# Batch keys produced for evaluation only; never passed to `forward`.
EVAL_ONLY_KEYS: tuple[str, ...] = ("probe_kind", "true_uncertainties", "group")
_OUTPUTS_NOT_PREDICTIONS = ["pooler_output", "hidden_states", "layer_weights"]
# Scores reported per group (survey), next to the full set overall.
GROUP_KEYS: tuple[str, ...] = ("rmse_hidden", "baseline_rmse_hidden", "noise_floor_hidden", "n_hidden")


class AstroCoTrainer(Trainer):
    """Trainer for `AstroCoForMaskedReconstruction` (see the module docstring).

    Args:
        exact_batch_rmse: optimise the RMSE of each whole optimizer-step batch (all micro-batches, all
            processes) instead of the mean of the micro-batch RMSEs.
        device_masking: build the training batches on the device with this collator's masking; the
            ``train_dataset`` must then be the :class:`~astroco_hf.data.RandomCrops` to draw from.
        *args, **kwargs: as `transformers.Trainer`.
    """

    def __init__(self, *args: Any, exact_batch_rmse: bool = False,
                 device_masking: DataCollatorForMaskedReconstruction | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exact_batch_rmse = exact_batch_rmse
        self.device_masking = device_masking
        if exact_batch_rmse:
            # compute_loss already divides by the step's point count: Trainer must not divide again.
            self.loss_is_scaled_for_ga = True
        self._step_points: torch.Tensor | None = None
        self._step_sse: torch.Tensor | None = None
        self._micro_batches_done = 0

    # ---- training ----

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        if self.device_masking is None:
            return super().get_train_dataloader()
        windows = DeviceWindows(self.train_dataset, self.device_masking, batch_size=self._train_batch_size,
                                device=self.args.device, rank=self.args.process_index, world_size=self.args.world_size)
        # Not through accelerator.prepare: each rank already draws its own batches, on its device.
        return windows.loader()

    def num_examples(self, dataloader: torch.utils.data.DataLoader) -> int:
        dataset = getattr(dataloader, "dataset", None)
        if isinstance(dataset, DeviceWindows):  # its length counts micro-batches, not windows
            return dataset.samples_per_epoch
        return super().num_examples(dataloader)

    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device):
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.exact_batch_rmse and batch_samples:
            points = sum(_probed(batch).sum() for batch in batch_samples).to(device=device, dtype=torch.float64)
            if self.args.world_size > 1:
                points = self.accelerator.reduce(points, reduction="sum")
            self._step_points = points.clamp_min(1.0)
            self._step_sse = torch.zeros((), dtype=torch.float64, device=device)
            self._micro_batches_done = 0
        return batch_samples, num_items_in_batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not (self.exact_batch_rmse and model.training):
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        outputs = model(**inputs)
        probed = _probed(inputs).to(torch.float32)
        sse = ((outputs.reconstruction.float() - inputs["labels"].float()).square() * probed).sum()
        self._step_sse += sse.detach().to(torch.float64)
        loss = sse / self._step_points.to(sse.dtype)  # this micro-batch's share of the step's MSE
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not self.exact_batch_rmse:
            return loss
        self._micro_batches_done += 1
        if self._micro_batches_done < self.current_gradient_accumulation_steps:
            return torch.zeros_like(loss)  # the step's RMSE is reported once, with its last micro-batch
        sse = self._step_sse
        if self.args.world_size > 1:
            sse = self.accelerator.reduce(sse, reduction="sum")
        rmse = (sse / self._step_points).sqrt().clamp_min(1e-12)
        # The gradients now hold d(MSE)/dθ, averaged over processes by DDP (hence the world size).
        scale = (self.args.world_size / (2.0 * rmse)).to(torch.float32)
        for parameter in model.parameters():
            if parameter.grad is not None:
                parameter.grad.mul_(scale.to(parameter.grad.dtype))
        return rmse.to(loss.dtype).detach()

    # ---- evaluation ----

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        extras = {key: inputs.pop(key) for key in EVAL_ONLY_KEYS if key in inputs}
        ignore_keys = _OUTPUTS_NOT_PREDICTIONS if ignore_keys is None else ignore_keys
        loss, reconstruction, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        if prediction_loss_only or labels is None:
            return loss, reconstruction, labels
        if "probe_kind" not in extras:
            extras["probe_kind"] = probe_kinds_of(inputs)
        return loss, reconstruction, {"labels": labels, **self._prepare_inputs(extras)}


def probe_kinds_of(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Probe kinds (:class:`~astroco_hf.data.ProbeKind`) read off a collated batch, for collators
    that do not return ``probe_kind``: a probed point that is not hidden and whose input differs from
    its label was randomised. (A replacement equal to the true value is indistinguishable from, and
    scores as, an unchanged point.)"""
    probed = _probed(batch)
    hidden = batch["masked_positions"] & probed
    changed = batch["magnitudes"] != batch["labels"]
    kind = torch.full_like(probed, ProbeKind.NONE, dtype=torch.int8)
    kind[probed & ~hidden & changed] = ProbeKind.RANDOM
    kind[probed & ~hidden & ~changed] = ProbeKind.UNCHANGED
    kind[hidden] = ProbeKind.HIDDEN
    return kind


def _probed(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    probed = batch["probed_positions"]
    return probed & (batch["attention_mask"] != 0) if "attention_mask" in batch else probed


class ReconstructionMetrics:
    """`compute_metrics` for `AstroCoTrainer` with ``batch_eval_metrics=True``.

    Each call keeps the probed points of one (already gathered) batch; the last call scores them with
    :class:`~astroco_hf.training.metrics.MaskedReconstructionMetric`, overall and per group (survey),
    and resets. Per-group keys are ``<group>/<score>`` for the hidden-point scores in :data:`GROUP_KEYS`.
    Memory holds only the probed points.

    Args:
        group_names: name of each group code in the batches' ``group`` key (e.g. survey names).
    """

    def __init__(self, group_names: Sequence[str] = ()) -> None:
        self.group_names = list(group_names)
        self.metric = MaskedReconstructionMetric(keep_in_memory=True)
        self._parts: list[dict[str, np.ndarray]] = []

    def __call__(self, prediction: EvalPrediction, compute_result: bool = True) -> dict[str, float]:
        targets = prediction.label_ids
        kind = _numpy(targets["probe_kind"]).astype(np.int8)
        keep = kind != ProbeKind.NONE
        sigma = targets.get("true_uncertainties")
        part = {
            "predictions": _numpy(prediction.predictions)[keep],
            "references": _numpy(targets["labels"])[keep],
            "probe_kinds": kind[keep],
            # Without the true errors (only the model inputs, which a custom collator may have altered) the
            # noise floor is unknown.
            "uncertainties": _numpy(sigma)[keep] if sigma is not None else np.full(keep.sum(), np.nan, np.float32),
        }
        if "group" in targets:
            part["group"] = np.broadcast_to(_numpy(targets["group"])[:, None], kind.shape)[keep]
        self._parts.append(part)
        if not compute_result:
            return {}
        merged = {key: np.concatenate([p[key] for p in self._parts]) for key in self._parts[0]}
        self._parts = []
        return self.score(merged)

    def score(self, points: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Scores of flat probed points (keys as the metric's inputs, plus optional ``group``)."""
        inputs = {key: points[key] for key in ("predictions", "references", "probe_kinds", "uncertainties")}
        scores = self.metric.compute(**inputs)
        if "group" in points and self.group_names:
            for code in np.unique(points["group"]):
                selected = points["group"] == code
                group = self.metric.compute(**{key: value[selected] for key, value in inputs.items()})
                name = self.group_names[int(code)]
                scores.update({f"{name}/{key}": group[key] for key in GROUP_KEYS})
        return scores


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy() if value.is_floating_point() else value.detach().cpu().numpy()
    return np.asarray(value)
