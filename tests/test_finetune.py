"""Fine-tuning: the feature extractor's windows, the public collator with a plain Trainer, and the output
folder (best model with label maps, feature extractor, pipelines, evaluation JSON): written whole on success
only, refused when it exists (without overwrite) or is in use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_embed import make_curves, tiny_encoder
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments, pipeline

from astroco_hf import AstroCoConfig, AstroCoFeatureExtractor, AstroCoForSequenceClassification
from astroco_hf.errors import OutputError
from astroco_hf.evaluation import (
    CLASSIFICATION_RESULTS,
    WindowClassificationCollator,
    finetune_classifier,
    labelled_windows,
    predict_curves,
)
from astroco_hf.evaluation import finetune as finetune_module
from astroco_hf.evaluation.finetune import checkpoint_folder
from astroco_hf.outputs import lock_output_dir
from astroco_hf.pipelines import CLASSIFICATION_TASK, AstroCoClassificationPipeline

LENGTHS = (60, 250, 40, 90, 30, 220, 70, 50)
LABELS = np.array([0, 1, 0, 1, 0, 1, 0, 1])


def test_labelled_windows_are_the_feature_extractor_windows_and_collate_back():
    curves = make_curves((7, 201, 450))
    windows = labelled_windows(curves, [2, 0, 1])
    features = AstroCoFeatureExtractor()(curves, padding="max_length")
    assert windows["curve"] == features["curve_index"].tolist() and windows["labels"] == [2, 0, 0, 1, 1, 1]
    batch = WindowClassificationCollator(200)([windows[i] for i in range(len(windows))])
    for name in ("times", "magnitudes", "uncertainties", "attention_mask"):
        np.testing.assert_array_equal(batch[name].numpy(), features[name], err_msg=name)
    assert batch["labels"].tolist() == [2, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="window 1 has 101 points > collator length 100"):
        WindowClassificationCollator(100)([windows[i] for i in range(3)])


def test_plain_trainer_with_the_public_collator(tmp_path):
    torch.manual_seed(0)
    model = AstroCoForSequenceClassification(AstroCoConfig.from_preset("astroco-tiny", num_labels=2))
    windows = labelled_windows(make_curves(LENGTHS), LABELS)  # windows of 30 to 200 points
    arguments = TrainingArguments(str(tmp_path), max_steps=2, per_device_train_batch_size=4, use_cpu=True,
                                  remove_unused_columns=False, report_to="none", disable_tqdm=True)
    before = model.classifier.weight.detach().clone()
    Trainer(model=model, args=arguments, train_dataset=windows, data_collator=WindowClassificationCollator(200)).train()
    assert not torch.equal(before, model.classifier.weight)


def test_finetune_writes_a_complete_classifier_folder(tmp_path):
    base = tmp_path / "base"
    tiny_encoder().save_pretrained(base)
    curves = make_curves(LENGTHS, seed=4)
    out = tmp_path / "classifier"
    result = finetune_classifier(base, curves[:6], LABELS[:6], curves[6:], LABELS[6:], ["quiet", "pulsating"], out,
                                 epochs=2, batch_size=4, use_cpu=True, disable_tqdm=True)
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "pipeline_astroco.py",
                 "feature_extraction_astroco.py", CLASSIFICATION_RESULTS):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "quiet", "1": "pulsating"} and config["label2id"] == {"quiet": 0, "pulsating": 1}
    results = json.loads((out / CLASSIFICATION_RESULTS).read_text())
    assert results["eval"]["macro_f1"] == result.eval_macro_f1 and results["eval"]["n_curves"] == 2
    assert results["eval"]["window_macro_f1_best"] == result.trainer.state.best_metric
    assert results["class_names"] == ["quiet", "pulsating"] and results["preset"] is None  # base had no run records

    # The folder holds the best model, the one returned.
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    expected = predict_curves(result.model, curves)
    np.testing.assert_allclose(predict_curves(loaded, curves), expected, atol=1e-6, rtol=0)
    classify = pipeline(CLASSIFICATION_TASK, model=str(out), pipeline_class=AstroCoClassificationPipeline)
    scores = torch.from_numpy(expected).softmax(dim=-1).numpy()
    for row, predicted in zip(scores, classify(curves), strict=True):
        assert [p["label"] for p in predicted] == [["quiet", "pulsating"][i] for i in np.argsort(-row, kind="stable")]
        np.testing.assert_allclose(sorted((p["score"] for p in predicted), reverse=True), np.sort(row)[::-1], atol=1e-6)
    assert classify(curves[0], top_k=1)[0]["label"] == ["quiet", "pulsating"][int(scores[0].argmax())]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "classifier"]  # checkpoints and lock gone

    # A second run refuses the finished folder before any work (the model path is not even read) ...
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(OutputError, match=f"{out} already exists; pass overwrite=True"):
        finetune_classifier(tmp_path / "missing", curves[:6], LABELS[:6], curves[6:], LABELS[6:], ["a", "b"], out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    # ... and replaces it, whole, with overwrite=True.
    finetune_classifier(base, curves[:6], LABELS[:6], curves[6:], LABELS[6:], ["dim", "bright"], out, overwrite=True,
                        epochs=1, batch_size=4, use_cpu=True, disable_tqdm=True)
    assert json.loads((out / CLASSIFICATION_RESULTS).read_text())["class_names"] == ["dim", "bright"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "classifier"]


@pytest.mark.parametrize("where", ["after_training", "while_writing"])
def test_a_failed_finetune_leaves_no_half_result(where, tmp_path, monkeypatch):
    """An exception after the checkpoints exist, or halfway through writing the model folder: no output_dir,
    no temporary folder, no checkpoints, no lock."""
    base = tmp_path / "base"
    tiny_encoder().save_pretrained(base)
    curves = make_curves(LENGTHS, seed=4)
    written = []

    def fail(*args, **kwargs):
        written.extend(p.name for p in checkpoint_folder(tmp_path / "classifier").iterdir())
        if where == "while_writing":  # the weights and config are in the temporary folder by now
            written.extend(sorted(p.name for p in tmp_path.glob(".classifier.tmp-*/*")))
        raise RuntimeError("disk full")

    monkeypatch.setattr(finetune_module, "predict_curves" if where == "after_training" else "save_inference_files", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        finetune_classifier(base, curves[:6], LABELS[:6], curves[6:], LABELS[6:], ["quiet", "pulsating"],
                            tmp_path / "classifier", epochs=1, batch_size=4, use_cpu=True, disable_tqdm=True)
    assert any(name.startswith("checkpoint-") for name in written) and ".astroco.lock" in written
    assert ("model.safetensors" in written) == (where == "while_writing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]


def test_finetune_refuses_a_folder_in_use(tmp_path):
    with lock_output_dir(checkpoint_folder(tmp_path / "classifier")):  # another run (a live pid) holds it
        with pytest.raises(OutputError, match="in use by another run"):
            finetune_classifier(tmp_path / "missing", make_curves((40,)), [0], make_curves((40,)), [0], ["a"],
                                tmp_path / "classifier")
    assert list(tmp_path.iterdir()) == []
