"""Pretraining batches built on the accelerator (``--device-data``), still driven by `transformers.Trainer`.

A small model on a large GPU waits on its input pipeline: the CPU path (:class:`~astroco_hf.data.RandomCrops`
through a DataLoader into :class:`~astroco_hf.data.DataCollatorForMaskedReconstruction`) gathers, normalises,
pads and masks every window in Python and numpy, then copies the batch to the device. Here every training
curve is resident on the device as flat tensors plus offsets (all public light curves: ~9.3M points,
~190 MB) and each ``(B, window)`` batch is drawn there in a few dozen kernels, with no host sync:

* samples: an epoch is a permutation of the samples of the :class:`~astroco_hf.data.RandomCrops` it wraps
  (the same ``crops_per_curve`` rule), drawn from a generator keyed by ``(seed, epoch)`` and shared by all
  ranks; micro-batch ``s`` of rank ``r`` takes permutation positions ``(s * world + r) * B ...`` and wraps
  around at the end of the epoch, so every batch holds exactly ``B`` windows (static shapes);
* crops and masks: from a generator keyed by ``(seed, epoch, step, rank)``, with the CPU path's rules: the
  crop start uniform over the ``n - window + 1`` positions (a shorter curve whole, padded at the end), each
  window centred on its own mean time and magnitude in float64 (as :func:`~astroco_hf.windowing.normalize_segments`),
  uncertainties unchanged; positions ranked by a uniform priority (padding last), the first
  ``floor(f n + u)`` ranks for the cumulative fractions ``f`` (probed / hidden-or-random / hidden, one
  ``u ~ U[0, 1)`` per window) as in the collator, and a randomised point given the true magnitude of
  another valid point of its window, uniform over the ``n - 1`` candidates.

Same distributions as the CPU path (tests/test_device_data.py compares them), not the same numbers: the draws
come from ``torch.Generator``\\ s, and the CPU and CUDA generators differ, so a run is reproducible on one kind
of device. Keyed draws make ``--resume`` and every DDP rank see exactly the batches of the uninterrupted run.

Trainer integration: :class:`DeviceWindows` is a map-style dataset whose item ``s`` is micro-batch ``s``;
:meth:`DeviceWindows.loader` wraps it in a one-item-per-batch ``DataLoader`` that is *not* passed through
``accelerator.prepare`` (it would re-shard the steps between ranks and move the batches again). Trainer's
resume skips batches with accelerate's ``skip_first_batches``, which only skips step indices: no skipped
batch is built. The epoch is that of the wrapped crops, which
:class:`~astroco_hf.training.callbacks.WindowEpochCallback` sets at each epoch's start.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch

from ..data import DataCollatorForMaskedReconstruction, ProbeKind, RandomCrops
from ..data._random import stable_seed
from ..data.collator import _KIND_OF_DEPTH

__all__ = ["DeviceWindows", "MODEL_KEYS"]

# The keys of a training batch, as the collator returns them (the model's inputs and targets).
MODEL_KEYS: tuple[str, ...] = (
    "times", "magnitudes", "uncertainties", "attention_mask", "masked_positions", "labels", "probed_positions",
)


class DeviceWindows(torch.utils.data.Dataset):
    """Micro-batches of masked random crops drawn on ``device`` (see the module docstring).

    Args:
        crops: the training crops of the CPU path: their curves, ``window``, ``crops_per_curve``, ``seed``
            and current ``epoch`` are used.
        masking: the collator whose fractions (and ``window``) the masks follow.
        batch_size: windows per micro-batch on this process.
        device: where the curves live and the batches are built.
        rank, world_size: this process and the number of processes (DDP).

    Raises:
        TypeError: ``crops`` is not a :class:`~astroco_hf.data.RandomCrops`.
        ValueError: the windows of ``crops`` and ``masking`` differ, a batch size below 1, a rank outside the
            world, or a non-finite value in a training curve (naming the curve's row and the field).
    """

    def __init__(self, crops: RandomCrops, masking: DataCollatorForMaskedReconstruction, *, batch_size: int,
                 device: torch.device | str, rank: int = 0, world_size: int = 1) -> None:
        if not isinstance(crops, RandomCrops):
            raise TypeError(f"device batches are drawn from RandomCrops, got {type(crops).__name__}")
        if crops.window != masking.window:
            raise ValueError(f"the crops' window ({crops.window}) differs from the masking collator's ({masking.window})")
        if batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need batch_size >= 1 and 0 <= rank < world_size, got {batch_size}, {rank}, {world_size}")
        self.crops, self.masking = crops, masking
        self.window, self.seed, self.batch_size = crops.window, crops.seed, batch_size
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        table = crops.source[:].combine_chunks()
        lengths = crops.lengths
        flat = {name: pc.list_flatten(table[column]).to_numpy() for name, column in
                (("time", "time"), ("magnitude", "mag"), ("uncertainty", "mag_err"))}
        for name, values in flat.items():
            bad = np.flatnonzero(~np.isfinite(values))
            if len(bad):
                row = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
                raise ValueError(f"training curve {row} (row of the train split): field '{name}' holds NaN or inf")
        to_device = lambda array, dtype: torch.tensor(array, dtype=dtype, device=self.device)  # noqa: E731 (a copy)
        # float64 time and magnitude: the window means are taken at MJD ~ 5e4 d, as on the CPU path.
        self.time = to_device(flat["time"], torch.float64)
        self.magnitude = to_device(flat["magnitude"], torch.float64)
        self.uncertainty = to_device(flat["uncertainty"], torch.float32)
        self.lengths = to_device(lengths, torch.int64)
        self.first = to_device(np.cumsum(lengths) - lengths, torch.int64)
        self.curve_of_sample = to_device(crops.curve_of_sample, torch.int64)
        self._columns = torch.arange(self.window, device=self.device)
        self._rows = torch.arange(batch_size, device=self.device)
        self._kind_of_depth = torch.as_tensor(_KIND_OF_DEPTH, device=self.device)
        self._generator = torch.Generator(device=self.device)
        self._order: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        """Micro-batches per epoch on each rank: the epoch's samples over ``batch_size x world_size``, rounded up."""
        return -(-len(self.curve_of_sample) // (self.batch_size * self.world_size))

    @property
    def samples_per_epoch(self) -> int:
        """Windows drawn per epoch over all ranks (the last batches wrap around the epoch's permutation)."""
        return len(self) * self.batch_size * self.world_size

    def _keyed(self, *key: object) -> torch.Generator:
        return self._generator.manual_seed(stable_seed("device-windows", self.seed, *key))

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """The epoch's permutation of the samples, the same on every rank."""
        if self._order is None or self._order[0] != epoch:
            samples = len(self.curve_of_sample)
            order = torch.randperm(samples, generator=self._keyed("epoch", epoch), device=self.device)
            self._order = (epoch, order)
        return self._order[1]

    def batch(self, step: int, *, epoch: int | None = None, details: bool = False) -> dict[str, torch.Tensor]:
        """Micro-batch ``step`` of ``epoch`` (default: the crops' current epoch) on this rank: the collator's
        keys (:data:`MODEL_KEYS`), each ``(B, window)``; with ``details`` also ``curve_index`` and ``start``
        ``(B,)`` and ``probe_kind`` ``(B, window)`` int8 (:class:`~astroco_hf.data.ProbeKind`).

        Raises:
            IndexError: ``step`` outside ``[0, len(self))``.
        """
        if not 0 <= step < len(self):
            raise IndexError(f"step {step} outside the epoch's {len(self)} micro-batches")
        epoch = self.crops.epoch if epoch is None else epoch
        order = self._epoch_order(epoch)
        positions = (step * self.world_size + self.rank) * self.batch_size + self._rows
        curve = self.curve_of_sample[order[positions % len(order)]]
        generator = self._keyed("step", epoch, step, self.rank)
        columns = self._columns

        # Crops: start uniform over n - window + 1 positions; a shorter curve whole. Padding gathers the
        # last valid point (a safe index) and is zeroed below.
        n = self.lengths[curve]
        uniform = torch.rand(n.shape, dtype=torch.float64, generator=generator, device=self.device)
        start = (uniform * (n - self.window + 1).clamp_min(1)).long()
        count = n.clamp_max(self.window)[:, None]
        valid = columns < count
        index = (self.first[curve] + start)[:, None] + torch.minimum(columns, count - 1)
        time, magnitude = self.time[index], self.magnitude[index]
        points = count.to(torch.float64)
        t0 = torch.where(valid, time, 0.0).sum(dim=1, keepdim=True) / points
        m0 = torch.where(valid, magnitude, 0.0).sum(dim=1, keepdim=True) / points
        times = torch.where(valid, time - t0, 0.0).float()
        labels = torch.where(valid, magnitude - m0, 0.0).float()
        uncertainties = torch.where(valid, self.uncertainty[index], 0.0)

        # Masks: rank valid positions by a random priority (padding last); nested sets by cumulative counts.
        priority = torch.rand(valid.shape, generator=generator, device=self.device).masked_fill(~valid, 2.0)
        ranks = torch.empty_like(index).scatter_(1, priority.argsort(dim=1), columns.expand_as(index))
        jitter = torch.rand(points.shape, dtype=torch.float64, generator=generator, device=self.device)
        masking = self.masking
        depth = torch.zeros(valid.shape, dtype=torch.int64, device=self.device)
        for fraction in (masking.probe_fraction, masking.mask_fraction + masking.random_fraction, masking.mask_fraction):
            depth += ranks < torch.floor(fraction * points + jitter).long()
        kind = self._kind_of_depth[depth]
        # A single point has no other point to borrow a magnitude from.
        kind = kind.masked_fill((kind == ProbeKind.RANDOM) & (count < 2), ProbeKind.UNCHANGED)
        randomised = kind == ProbeKind.RANDOM
        # Another valid point, uniform over the n - 1 candidates (skip the position itself); the clamp
        # guards float32 rounding of draw * (n - 1) up to n - 1.
        draw = torch.rand(valid.shape, generator=generator, device=self.device)
        source = torch.minimum((draw * (count - 1)).long(), (count - 2).clamp_min(0))
        source = (source + (source >= columns)).clamp_max(self.window - 1)
        batch = {
            "times": times,
            "magnitudes": torch.where(randomised, labels.gather(1, source), labels),
            "uncertainties": uncertainties,
            "attention_mask": valid.long(),
            "masked_positions": kind == ProbeKind.HIDDEN,
            "labels": labels,
            "probed_positions": kind != ProbeKind.NONE,
        }
        if details:
            batch |= {"curve_index": curve, "start": start, "probe_kind": kind}
        return batch

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        return self.batch(step)

    def __getitems__(self, steps: list[int]) -> list[dict[str, torch.Tensor]]:
        return [self.batch(step) for step in steps]

    def loader(self) -> torch.utils.data.DataLoader:
        """A DataLoader of the micro-batches in step order, one per item, built in this process: a sampler over
        step indices lets Trainer's resume skip steps without building them."""
        return torch.utils.data.DataLoader(self, batch_size=1, shuffle=False, collate_fn=_only, num_workers=0,
                                           pin_memory=False)


def _only(items: list[Any]) -> Any:
    """The DataLoader's collate function: each item is already a whole micro-batch."""
    (item,) = items
    return item
