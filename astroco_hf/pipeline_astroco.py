"""transformers pipelines for AstroCo: light curves in, one embedding or one set of class scores per curve out.

* :class:`AstroCoFeatureExtractionPipeline` (task ``"feature-extraction"``): the encoder's pooled
  embedding (the scalar mix of the layers' masked means), per curve; optionally per window or per layer.
* :class:`AstroCoClassificationPipeline` (task ``"light-curve-classification"``): a fine-tuned
  ``AstroCoForSequenceClassification``'s labels and scores per curve.

Both take what :class:`~.feature_extraction_astroco.AstroCoFeatureExtractor` takes (one curve or a
batch of any lengths), window it with the model folder's feature extractor, encode the windows in
batches sorted by length (little padding; in eval mode a window's output does not depend on its
batch) and average windows back into curves weighted by their points: ``e = sum_w n_w e_w / n``.
:func:`encode_windows` is that batched forward pass, shared with :class:`astroco_hf.evaluation.AstroCoEmbedder`.

A model folder declares them in ``config.json`` (``custom_pipelines``) and ships this file, so that
``pipeline("feature-extraction", model=DIR, trust_remote_code=True)`` works with or without the
``astroco_hf`` package (see :func:`astroco_hf.pipelines.save_inference_files`). This module imports only
numpy, torch, transformers and ``.feature_extraction_astroco``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from transformers import Pipeline

from .feature_extraction_astroco import pool_windows

__all__ = ["AstroCoClassificationPipeline", "AstroCoFeatureExtractionPipeline", "encode_windows"]


def encode_windows(
    encoder: torch.nn.Module,
    features: Mapping[str, np.ndarray],
    *,
    batch_size: int = 256,
    layer_means: bool = False,
    autocast_dtype: torch.dtype | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Encode windows (the feature extractor's numpy output) in batches sorted by length.

    Args:
        encoder: an ``AstroCoModel`` in eval mode.
        features: ``times``, ``magnitudes``, ``uncertainties``, ``attention_mask`` (W, L) and ``n_points`` (W,).
        batch_size: windows per forward pass; each batch is cut to its own longest window.
        layer_means: also return every layer's masked mean.
        autocast_dtype: run under ``torch.autocast`` with this dtype (outputs are float32).
        on_batch: called with the number of windows of each finished batch (progress bars).

    Returns:
        pooled (W, D) float32 and, with ``layer_means``, (W, M+1, D) float32, in input window order.
    """
    device = next(encoder.parameters()).device
    counts = np.asarray(features["n_points"])
    n_windows, hidden = len(counts), encoder.config.d_model
    pooled = np.empty((n_windows, hidden), np.float32)
    means = np.empty((n_windows, encoder.config.num_layers + 1, hidden), np.float32) if layer_means else None
    # Longest windows first, so that each batch pads to nearly its own length; stable for ties.
    order = np.argsort(-counts, kind="stable")
    for begin in range(0, n_windows, batch_size):
        rows = order[begin: begin + batch_size]
        width = int(counts[rows].max())
        inputs = {name: torch.from_numpy(np.ascontiguousarray(np.asarray(features[name])[rows, :width])).to(device)
                  for name in ("times", "magnitudes", "uncertainties", "attention_mask")}
        with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                                    enabled=autocast_dtype is not None):
            out = encoder(**inputs, output_hidden_states=layer_means, return_dict=True)
            pooled[rows] = out.pooler_output.float().cpu().numpy()
            if layer_means:
                weights = inputs["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
                count = weights.sum(dim=1)  # (B, 1)
                means[rows] = torch.stack([(h.float() * weights).sum(dim=1) / count for h in out.hidden_states],
                                          dim=1).cpu().numpy()  # (B, M+1, D)
        if on_batch is not None:
            on_batch(len(rows))
    return pooled, means


class _AllCurves:
    """Hands a whole batch of curves to ``Pipeline.__call__`` as one input: windows of all curves are
    then encoded together, sorted by length, instead of curve by curve."""

    def __init__(self, curves: Any) -> None:
        self.curves = curves


class _AstroCoPipeline(Pipeline):
    """Shared preprocessing: the folder's feature extractor windows the curves."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False

    def __call__(self, light_curves: Any, **kwargs: Any) -> Any:
        """Light curves (one, or a batch: anything the feature extractor reads) -> one result per curve
        (a single result for a single curve)."""
        return super().__call__(_AllCurves(light_curves), **kwargs)

    def preprocess(self, inputs: _AllCurves) -> dict[str, Any]:
        single = self.feature_extractor.is_single(inputs.curves)
        features = self.feature_extractor(inputs.curves, return_tensors="np")
        return {"features": dict(features), "n_curves": int(features["curve_index"].max()) + 1, "single": single}

    def _encode(self, model_inputs: dict[str, Any], window_batch_size: int, layer_means: bool) -> tuple:
        encoder = self.model.base_model
        return encode_windows(encoder, model_inputs["features"], batch_size=window_batch_size, layer_means=layer_means)

    @staticmethod
    def _unbatch(results: list[Any], model_outputs: dict[str, Any]) -> Any:
        return results[0] if model_outputs["single"] else results


class AstroCoFeatureExtractionPipeline(_AstroCoPipeline):
    """One embedding per light curve from an AstroCo encoder (any AstroCo checkpoint).

    Call options:
        per_window: return each window's embedding, (windows of the curve, D), instead of the curve mean.
        per_layer: return the per-layer masked means, (M+1, D) (or (windows, M+1, D)); mixing them with
            the encoder's weights ``model.mixing_weights()`` gives the default embedding.
        return_tensors: torch tensors instead of nested lists.
        window_batch_size: windows per forward pass (default 256).

    Example:
        >>> extractor = pipeline("feature-extraction", model="runs/astroco-tiny", trust_remote_code=True)
        >>> vectors = extractor([(t1, m1, e1), (t2, m2, e2)])   # two lists of D floats
    """

    def _sanitize_parameters(self, per_window: bool | None = None, per_layer: bool | None = None,
                             return_tensors: bool | None = None, window_batch_size: int | None = None,
                             ) -> tuple[dict, dict, dict]:
        # No **kwargs: a misspelt option is a TypeError, not silently ignored.
        forward = {"window_batch_size": window_batch_size or 256, "per_layer": bool(per_layer)}
        post = {"per_window": bool(per_window), "return_tensors": bool(return_tensors)}
        return {}, forward, post

    def _forward(self, model_inputs: dict[str, Any], window_batch_size: int = 256, per_layer: bool = False) -> dict:
        pooled, means = self._encode(model_inputs, window_batch_size, per_layer)
        return {**model_inputs, "windows": means if per_layer else pooled}

    def postprocess(self, model_outputs: dict[str, Any], per_window: bool = False, return_tensors: bool = False) -> Any:
        features, values = model_outputs["features"], model_outputs["windows"]
        curve = features["curve_index"]
        if per_window:
            cuts = np.searchsorted(curve, np.arange(1, model_outputs["n_curves"]))
            results = np.split(values, cuts)
        else:
            results = list(pool_windows(values, curve, features["n_points"], model_outputs["n_curves"]))
        results = [torch.from_numpy(np.ascontiguousarray(r)) if return_tensors else r.tolist() for r in results]
        return self._unbatch(results, model_outputs)


class AstroCoClassificationPipeline(_AstroCoPipeline):
    """Class labels and scores per light curve from a fine-tuned ``AstroCoForSequenceClassification``.

    The classifier is linear in the pooled embedding, so a curve's logits are those of its
    point-weighted mean window embedding; scores are their softmax.

    Call options:
        top_k: number of (label, score) pairs per curve, highest first (default: all classes).
        window_batch_size: windows per forward pass (default 256).

    Example:
        >>> classify = pipeline("light-curve-classification", model="runs/classifier", trust_remote_code=True)
        >>> classify((t, m, e))   # [{"label": "rr_lyrae", "score": 0.93}, ...]
    """

    def _sanitize_parameters(self, top_k: int | None = None, window_batch_size: int | None = None,
                             ) -> tuple[dict, dict, dict]:
        return {}, {"window_batch_size": window_batch_size or 256}, {"top_k": top_k}

    def _forward(self, model_inputs: dict[str, Any], window_batch_size: int = 256) -> dict:
        pooled, _ = self._encode(model_inputs, window_batch_size, False)
        features = model_inputs["features"]
        curves = pool_windows(pooled, features["curve_index"], features["n_points"], model_inputs["n_curves"])
        head = self.model.classifier
        logits = head(torch.from_numpy(curves).to(device=head.weight.device, dtype=head.weight.dtype))
        return {"single": model_inputs["single"], "scores": logits.float().softmax(dim=-1).cpu().numpy()}

    def postprocess(self, model_outputs: dict[str, Any], top_k: int | None = None) -> Any:
        names = self.model.config.id2label
        scores = model_outputs["scores"]
        top_k = scores.shape[1] if top_k is None else min(top_k, scores.shape[1])
        results = []
        for row in scores:
            best = np.argsort(-row, kind="stable")[:top_k]
            results.append([{"label": names[int(i)], "score": float(row[i])} for i in best])
        return self._unbatch(results, model_outputs)
