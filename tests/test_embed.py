"""AstroCoEmbedder: batch invariance, input order, window aggregation, containers, bad input, parquet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datasets import Dataset

from astroco_hf import AstroCoConfig, AstroCoModel
from astroco_hf.cli import main
from astroco_hf.data import CleaningConfig, window_bounds
from astroco_hf.evaluation import AstroCoEmbedder, embed

LENGTHS = (7, 200, 201, 950, 1, 60, 399, 450)


def tiny_encoder(seed: int = 0) -> AstroCoModel:
    """A random tiny encoder with non-trivial BatchNorm statistics and mixing weights (a test fixture,
    not a trained model)."""
    torch.manual_seed(seed)
    model = AstroCoModel(AstroCoConfig.from_preset("astroco-tiny"))
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0.0, 0.3)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
        model.layer_weights.normal_(0.0, 1.0)
    return model.eval()


def make_curves(lengths=LENGTHS, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    curves = []
    for n in lengths:
        t = 50000.0 + np.sort(rng.uniform(0, 3000, n))
        m = 17.0 + 0.4 * np.sin(2 * np.pi * t / rng.uniform(0.3, 300)) + rng.normal(0, 0.05, n)
        curves.append((t, m, rng.uniform(0.01, 0.1, n)))
    return curves


@pytest.fixture(scope="module")
def embedder() -> AstroCoEmbedder:
    return AstroCoEmbedder(tiny_encoder(), batch_size=4, progress=False)


def test_embedding_independent_of_batch_and_length(embedder):
    curves = make_curves()
    together = {bs: AstroCoEmbedder(embedder.model, batch_size=bs, progress=False).embed(curves).embeddings
                for bs in (1, 3, 64)}
    alone = np.stack([embedder.embed([curve]).embeddings[0] for curve in curves])
    assert alone.shape == (len(LENGTHS), embedder.hidden_size)
    for batched in together.values():
        np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)
    # Inside a batch of other, longer curves (more padding around the short ones).
    padded = embedder.embed(curves[:1] + make_curves((950, 950, 180), seed=1)).embeddings[0]
    np.testing.assert_allclose(padded, alone[0], atol=1e-5, rtol=0)


def test_output_order_equals_input_order(embedder):
    curves = make_curves()
    reference = embedder.embed(curves).embeddings
    permutation = np.random.default_rng(3).permutation(len(curves))
    shuffled = embedder.embed([curves[i] for i in permutation])
    np.testing.assert_allclose(shuffled.embeddings, reference[permutation], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(shuffled.n_points, np.array(LENGTHS)[permutation])


def test_window_aggregation_weights_and_layer_means(embedder):
    curves = make_curves()
    out = embedder.embed(curves, per_window=True, layer_means=True)
    windows = out.windows
    # Windows cover every point once; 201 points -> 101 + 100 (the tail of 1 is re-balanced).
    np.testing.assert_array_equal(np.bincount(windows.curve, weights=windows.n_points).astype(int), LENGTHS)
    np.testing.assert_array_equal(windows.n_points[windows.curve == 2], [101, 100])
    np.testing.assert_array_equal(out.n_windows, [1, 1, 2, 5, 1, 1, 2, 3])
    for index in range(len(curves)):
        mine = windows.curve == index
        expected = (windows.embeddings[mine] * windows.n_points[mine, None]).sum(0) / LENGTHS[index]
        np.testing.assert_allclose(out.embeddings[index], expected, atol=1e-5, rtol=0)
    # The pooled embedding is the scalar mix of the cached per-layer means (the few-shot cache).
    mixed = np.einsum("l,nld->nd", out.layer_weights, out.layer_means)
    np.testing.assert_allclose(mixed, out.embeddings, atol=1e-5, rtol=0)
    # One window by hand: normalised (mean time and magnitude subtracted), straight through the model.
    t, m, e = curves[3]
    _, _, start, stop = window_bounds(np.array([len(t)]), 200, 50)
    a, b = start[1], stop[1]
    with torch.no_grad():
        direct = embedder.model(torch.tensor(t[a:b] - t[a:b].mean())[None], torch.tensor(m[a:b] - m[a:b].mean()).float()[None],
                                torch.tensor(e[a:b]).float()[None]).pooler_output[0].numpy()
    np.testing.assert_allclose(windows.embeddings[np.flatnonzero(windows.curve == 3)[1]], direct, atol=1e-5, rtol=0)
    assert windows.t0[windows.curve == 3][1] == pytest.approx(t[a:b].mean())


def test_containers_give_the_same_embeddings(embedder):
    curves = make_curves((30, 250, 5))
    reference = embedder.embed(curves).embeddings
    nested = pd.DataFrame({"object_id": ["a", "b", "c"], "time": [c[0] for c in curves],
                           "mag": [c[1] for c in curves], "mag_err": [c[2] for c in curves]})
    long = pd.DataFrame({"object_id": np.repeat(["a", "b", "c"], [30, 250, 5]),
                         "time": np.concatenate([c[0] for c in curves]),
                         "mag": np.concatenate([c[1] for c in curves]),
                         "mag_err": np.concatenate([c[2] for c in curves])})
    table = pa.table({"time": [c[0] for c in curves], "mag": [c[1] for c in curves], "mag_err": [c[2] for c in curves]})
    for data in (nested, long, table, Dataset.from_pandas(nested)):
        np.testing.assert_allclose(embedder.embed(data).embeddings, reference, atol=1e-5, rtol=0)
    np.testing.assert_allclose(embed(embedder.model, curves), reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("curves", "message"),
    [
        ([(np.arange(5.0), np.ones(5), np.ones(5) * 0.1), (np.array([]), np.array([]), np.array([]))], r"light curve 1 \('1'\) is empty"),
        ([(np.arange(5.0), np.array([1, 2, np.nan, 4, 5.0]), np.ones(5) * 0.1)], r"field 'mag' has a non-finite value at point 2"),
        ([(np.arange(5.0), np.ones(5))], r"field 'mag_err'.*no uncertainties given"),
        ([(np.arange(5.0), np.ones(4), np.ones(5))], r"field 'mag' has 4 values but 'time' has 5"),
    ],
)
def test_bad_input_has_a_clear_message(embedder, curves, message):
    with pytest.raises(ValueError, match=message):
        embedder.embed(curves)


def test_unsorted_times_are_sorted(embedder):
    t, m, e = make_curves((40,))[0]
    order = np.random.default_rng(0).permutation(40)
    np.testing.assert_allclose(embedder.embed([(t[order], m[order], e[order])]).embeddings,
                               embedder.embed([(t, m, e)]).embeddings, atol=1e-6, rtol=0)


def write_source(path, curves, dirty: bool = False) -> None:
    errs, mags = [c[2].copy() for c in curves], [c[1].copy() for c in curves]
    if dirty:
        errs[1][:] = 9.999  # a survey's error flag on every point: the whole curve is cleaned away
        mags[2][3] = np.nan
    pq.write_table(pa.table({
        "object_id": [f"star{i}" for i in range(len(curves))], "survey": ["TEST"] * len(curves),
        "band": ["R"] * len(curves), "label": [None] * len(curves),
        "time": [c[0] for c in curves], "mag": [m.astype(np.float32) for m in mags],
        "mag_err": [e.astype(np.float32) for e in errs],
    }), path, row_group_size=3)


def test_parquet_streaming_matches_in_memory(embedder, tmp_path):
    curves = make_curves()
    write_source(tmp_path / "source.parquet", curves)
    summary = embedder.to_parquet(tmp_path / "source.parquet", tmp_path / "out.parquet", chunk_size=3)
    table = pq.read_table(tmp_path / "out.parquet")
    assert summary.rows == table.num_rows == len(curves) and summary.windows == 16
    assert table["object_id"].to_pylist() == [f"star{i}" for i in range(len(curves))]
    vectors = np.stack(table["embedding"].to_numpy(zero_copy_only=False))
    reference = embedder.embed([(t, m.astype(np.float32), e.astype(np.float32)) for t, m, e in curves]).embeddings
    np.testing.assert_allclose(vectors, reference, atol=1e-5, rtol=0)

    embedder.to_parquet(tmp_path / "source.parquet", tmp_path / "windows.parquet", chunk_size=3, per_window=True)
    windows = pq.read_table(tmp_path / "windows.parquet")
    assert windows.num_rows == 16 and sum(windows["n_points"].to_pylist()) == sum(LENGTHS)


def test_parquet_cleaning_counts_dropped_curves(embedder, tmp_path):
    write_source(tmp_path / "dirty.parquet", make_curves((30, 40, 50)), dirty=True)
    summary = embedder.to_parquet(tmp_path / "dirty.parquet", tmp_path / "out.parquet", cleaning=CleaningConfig())
    assert pq.read_table(tmp_path / "out.parquet")["object_id"].to_pylist() == ["star0", "star2"]
    assert summary.cleaning.total.points_removed["sentinel"] == 40
    assert summary.cleaning.total.points_removed["non_finite"] == 1
    assert summary.cleaning.total.curves_removed["too_short"] == 1
    with pytest.raises(ValueError, match=r"light curve 2 \('star2'\): field 'mag' has a non-finite value at point 3"):
        embedder.to_parquet(tmp_path / "dirty.parquet", tmp_path / "raw.parquet", chunk_size=2)  # no cleaning


def test_embed_cli_and_bf16(tmp_path, capsys):
    model_dir = tmp_path / "model"
    tiny_encoder().save_pretrained(model_dir)
    write_source(tmp_path / "source.parquet", make_curves((20, 300, 7)))
    out = tmp_path / "emb.parquet"
    capsys.readouterr()
    assert main(["embed", "--model", str(model_dir), "--data", str(tmp_path / "source.parquet"), "--out", str(out),
                 "--batch-size", "2", "--precision", "fp32", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "wrote 3 rows (3 light curves read, d=64, fp32" in captured.out
    assert "Loading weights" not in captured.err  # --no-progress hides transformers' bars too, for the command only
    from transformers.utils.logging import is_progress_bar_enabled
    assert is_progress_bar_enabled()
    fp32 = np.stack(pq.read_table(out)["embedding"].to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(fp32, embed(tiny_encoder(), make_curves((20, 300, 7))), atol=1e-5, rtol=0)
    assert main(["embed", "--model", str(model_dir), "--data", str(tmp_path / "source.parquet"), "--out", str(out),
                 "--bf16", "--overwrite", "--no-progress"]) == 0
    bf16 = np.stack(pq.read_table(out)["embedding"].to_numpy(zero_copy_only=False))
    assert np.isfinite(bf16).all() and np.abs(bf16 - fp32).max() < 0.2


def test_embeds_an_astroco_prepare_folder(embedder, shared_data, tmp_path):
    from astroco_hf.data import prepare_dataset

    prepared = prepare_dataset([shared_data / "lightcurves" / "misc.parquet"])
    prepared.save(tmp_path / "prepared")
    summary = embedder.to_parquet(tmp_path / "prepared", tmp_path / "out.parquet", chunk_size=16)
    table = pq.read_table(tmp_path / "out.parquet")
    expected = [row for split in prepared.dataset.values() for row in split["object_id"]]
    assert summary.rows == len(expected) and table["object_id"].to_pylist() == expected
    names = prepared.dataset["train"].features["label"].names
    labels = table["label"].to_pylist()  # ClassLabel codes written back as names; -1 (unknown) as null
    assert "delta_scuti" in labels and set(labels) <= {*names, None}


def test_one_row_per_point_files_with_their_own_column_names(embedder, tmp_path, capsys):
    """CSV and parquet of one row per observation, with the survey's names mapped by a ColumnMap: the
    same embeddings as the curves in memory, the rows grouped by object in order of first appearance."""
    from astroco_hf.data import ColumnMap
    from astroco_hf.evaluation.inputs import count_rows

    curves = make_curves((30, 250, 5))
    long = pd.DataFrame({"star": np.repeat(["b", "a", "c"], [30, 250, 5]),
                         "hjd": np.concatenate([c[0] for c in curves]),
                         "V": np.concatenate([c[1] for c in curves]).astype(np.float32),
                         "eV": np.concatenate([c[2] for c in curves]).astype(np.float32)})
    long.to_csv(tmp_path / "points.csv", index=False)
    long.to_parquet(tmp_path / "points.parquet")
    columns = ColumnMap(object_id="star", time="hjd", mag="V", mag_err="eV")
    reference = embedder.embed([(t, m.astype(np.float32), e.astype(np.float32)) for t, m, e in curves]).embeddings
    for name in ("points.csv", "points.parquet"):
        summary = embedder.to_parquet(tmp_path / name, tmp_path / f"{name}.out.parquet", chunk_size=2, columns=columns)
        table = pq.read_table(tmp_path / f"{name}.out.parquet")
        assert summary.curves == 3 and table["object_id"].to_pylist() == ["b", "a", "c"]
        np.testing.assert_allclose(np.stack(table["embedding"].to_numpy(zero_copy_only=False)), reference,
                                   atol=1e-5, rtol=0)
    assert count_rows(tmp_path / "points.parquet", columns) is None  # points, not curves: unknown unread

    # The CLI, unmapped: one line naming the missing columns, the file's columns and the flag to map them.
    assert main(["embed", "--model", str(tmp_path), "--data", str(tmp_path / "points.parquet"),
                 "--out", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "is not a model folder" in err  # the model is checked first
    model_dir = tmp_path / "model"
    tiny_encoder().save_pretrained(model_dir)
    capsys.readouterr()
    assert main(["embed", "--model", str(model_dir), "--data", str(tmp_path / "points.parquet"),
                 "--out", str(tmp_path / "x.parquet"), "--precision", "fp32", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "points.parquet: missing column(s) ['object_id', 'time', 'mag'] (columns: ['star', 'hjd', 'V', 'eV'])" in err
    assert "--column object_id=NAME" in err and len(err.strip().splitlines()) == 1


def test_library_loading_and_device_errors_are_one_line(tmp_path):
    """AstroCoEmbedder refuses a missing folder, a file, weights of another size and an absent device
    with the library's one-line errors, not transformers' repo-id error, LOAD REPORT or torch's assertion."""
    import json

    from astroco_hf.errors import ConfigError

    with pytest.raises(FileNotFoundError, match="model: no such model folder"):
        AstroCoEmbedder.from_pretrained(tmp_path / "absent")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="is a file; pass the model folder"):
        AstroCoEmbedder.from_pretrained(tmp_path / "weights.bin")
    model_dir = tmp_path / "model"
    tiny_encoder().save_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps(config | {"d_model": 96, "num_heads": 4}))
    with pytest.raises(ConfigError, match=r"model\.safetensors does not match its config\.json .*d_model=96"):
        AstroCoEmbedder.from_pretrained(model_dir)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"device='cuda': this torch is built without CUDA|no CUDA GPU"):
            AstroCoEmbedder(tiny_encoder(), device="cuda")
    with pytest.raises(ConfigError, match=r"device='gpu' is not a device"):
        AstroCoEmbedder(tiny_encoder(), device="gpu")
