"""AstroCo served by ``light_curve.embed``: an exported folder behind light-curve's embedding interface.

``light_curve.embed`` (light-curve >= 0.12.3) wraps each model in an :class:`~light_curve.embed.EmbeddingSession`
subclass that turns raw arrays into that model's tensors (``preprocess_lc``), runs the ONNX session and
reduces the window outputs (``predict_tensors``); its constructors take any ``onnxruntime.InferenceSession``,
and ``from_hf`` only downloads ``cls.hf_filename`` from ``cls.hf_repo`` before calling them. None of its
classes can take AstroCo's graph as is: the Astromer classes feed ``{"times", "input", "mask_in"}``
(``(n_windows, 200, 1)`` arrays, no uncertainties; ``AstromerInputs`` in ``light_curve/embed/astromer.py``),
ATCAT feeds ``flux, flux_err, time, mask, channel_index`` of a multi-band model. So this module adds the
AstroCo class to that interface: :class:`AstroCo` is a ``light_curve.embed.SingleBandModel`` whose
inputs are those of the :class:`~astroco_hf.AstroCoFeatureExtractor` (windows padded to ``seq_size``),
whose outputs are the export's ``mean``, ``max`` and ``sequence`` (the names the Astromer models use),
and whose reduction averages the windows weighted by their numbers of points, as
:class:`~astroco_hf.evaluation.AstroCoEmbedder` does. :meth:`AstroCo.from_folder` loads an
``astroco export --format onnx`` folder::

    from astroco_hf.export.light_curve_embed import AstroCo
    model = AstroCo.from_folder("exports/astroco-tiny")          # output="mean" | "max" | "sequence"
    embedding = model(time, mag, mag_err)                           # (1, 1, 1, D), light-curve's layout
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from light_curve.embed import SingleBandModel
from light_curve.embed.input_tensors import InputTensors
from light_curve.embed.model import create_onnx_session
from light_curve.embed.reduction import Reduction

from ..feature_extraction_astroco import AstroCoFeatureExtractor, pool_windows
from ..windowing import window_bounds
from .onnx import ONNX_FILENAME, OUTPUT_NAMES


@dataclass
class AstroCoInputs(InputTensors):
    """The ONNX graph's inputs for the windows of one curve, each ``(n_windows, seq_size)``; ``bool_mask``
    (light-curve's validity mask) is ``attention_mask`` as booleans."""

    times: np.ndarray = field(kw_only=True)
    magnitudes: np.ndarray = field(kw_only=True)
    uncertainties: np.ndarray = field(kw_only=True)
    attention_mask: np.ndarray = field(kw_only=True)


class AstroCoWindows(Reduction):
    """AstroCo's sequential windows (:func:`astroco_hf.windowing.window_bounds`), reduced by the
    point-weighted mean of the window embeddings (``sequence``: the masked mean over windows per step,
    as light-curve's ``NonOverlappingWindows``)."""

    def __init__(self, min_tail: int | None = None) -> None:
        self.min_tail = min_tail

    def subsample_lc(self, *arrays: np.ndarray, seq_size: int) -> list[tuple[np.ndarray, ...]]:
        _, _, start, stop = window_bounds(np.array([arrays[0].size]), seq_size, self.min_tail)
        return [tuple(array[a:b] for array in arrays) for a, b in zip(start, stop, strict=True)]

    def reduce_embeddings(self, embeddings: np.ndarray, tensors: InputTensors, *, output: str) -> np.ndarray:
        mask = tensors.bool_mask  # (n_windows, seq_size)
        if output == "sequence":
            total = (embeddings * mask[:, :, None]).sum(axis=0)
            return (total / np.maximum(mask.sum(axis=0), 1)[:, None])[None]
        counts = mask.sum(axis=1)
        return pool_windows(embeddings[:, 0], np.zeros(len(counts), dtype=np.int64), counts, 1)[:, None, :]


class AstroCo(SingleBandModel):
    """An exported AstroCo encoder in ``light_curve.embed``: ``model(time, mag, mag_err)`` ->
    ``(n_bands, 1, 1, D)`` (``mean``, ``max``) or ``(n_bands, 1, seq_size, D)`` (``sequence``).

    Args:
        session: an ``onnxruntime.InferenceSession`` of ``astroco.onnx``.
        output: ``"mean"`` (the model's pooled embedding), ``"max"`` or ``"sequence"``.
        bands: band labels to embed one by one (light-curve's ``SingleBandModel``); None: one band.
        feature_extractor: the windowing (default: 200-point windows, the data layer's tail rule).
    """

    hf_repo = None  # not on the Hub: load with from_folder
    model_outputs: frozenset[str] = frozenset(OUTPUT_NAMES)

    def __init__(self, session: Any, *, output: str = "mean", bands: Sequence[str | int] | None = None,
                 feature_extractor: AstroCoFeatureExtractor | None = None) -> None:
        self.feature_extractor = feature_extractor or AstroCoFeatureExtractor()
        self.seq_size = self.feature_extractor.window_length
        super().__init__(session, bands=bands, reduction=AstroCoWindows(self.feature_extractor.min_tail))
        if output not in self.model_outputs:
            raise ValueError(f"Unknown output '{output}'. Must be one of: {', '.join(sorted(self.model_outputs))}")
        self.output = output

    @classmethod
    def from_folder(cls, folder: str | Path, *, output: str = "mean", bands: Sequence[str | int] | None = None,
                    ort_session_kwargs: dict[str, Any] | None = None) -> AstroCo:
        """Load an ``astroco export --format onnx`` folder (``astroco.onnx`` and ``preprocessor_config.json``)."""
        folder = Path(folder)
        model_path = folder / ONNX_FILENAME
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path} not found; create the folder with `astroco export --format onnx`")
        session = create_onnx_session(str(model_path), **(ort_session_kwargs or {}))
        return cls(session, output=output, bands=bands,
                   feature_extractor=AstroCoFeatureExtractor.from_pretrained(str(folder)))

    def __call__(self, time: Any, mag: Any, mag_err: Any, band: Any | None = None) -> np.ndarray:
        """Embed one light curve (times in days, magnitudes, 1-sigma errors; ``band`` with ``bands``)."""
        return super().__call__(time, mag, mag_err, band=band)

    def preprocess_lc(self, time: Any, mag: Any, mag_err: Any) -> AstroCoInputs:
        """The feature extractor's windows of one curve, padded to ``seq_size``."""
        windows = self.feature_extractor((np.asarray(time), np.asarray(mag), np.asarray(mag_err)), padding="max_length")
        mask = windows["attention_mask"]
        return AstroCoInputs(times=windows["times"], magnitudes=windows["magnitudes"],
                             uncertainties=windows["uncertainties"], attention_mask=mask, bool_mask=mask.astype(bool))

    def predict_tensors(self, tensors: AstroCoInputs) -> np.ndarray:
        """Run the graph and reduce the windows: ``(1, 1, D)`` or ``(1, seq_size, D)``."""
        (raw,) = self.session.run([self.output], tensors.asdict())
        if raw.ndim == 2:  # pooled outputs (n_windows, D): light-curve's SEQUENCE axis of 1
            raw = raw[:, None, :]
        return self.reduction.reduce_embeddings(raw, tensors, output=self.output)
