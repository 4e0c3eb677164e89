"""One embedding per light curve, of any length, from a (frozen) AstroCo encoder.

The :class:`~astroco_hf.AstroCoFeatureExtractor` cuts a light curve of n points into the data layer's
sequential non-overlapping windows (``ceil(n / 200)`` windows covering every point once, a short tail
re-balanced with the previous window) and normalises each on its own (mean time and mean magnitude
subtracted). :func:`astroco_hf.pipeline_astroco.encode_windows` sorts windows by length and batches
them so that padding stays small, under ``torch.inference_mode``; :func:`~astroco_hf.feature_extraction_astroco.pool_windows`
averages them back into one vector per curve weighted by their numbers of points (the same code as the
``feature-extraction`` pipeline)::

    e(curve) = sum_w n_w e(w) / sum_w n_w,    e(w) = sum_l alpha_l maskedmean_w(h_l)

Since both averages are linear, the per-layer means of a curve, ``f_l = sum_w n_w maskedmean_w(h_l) / n``,
give ``e(curve) = sum_l alpha_l f_l`` for any mixing weights: :mod:`~astroco_hf.evaluation.fewshot`
caches them once and trains the scalar mix and the head on top, exactly.

In eval mode every window is encoded independently of its batch (key-padding mask, zeroed padding
before the convolution, BatchNorm running statistics), so a curve's embedding does not depend on
what it is batched with, and outputs always come back in input order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel
from transformers.utils import FEATURE_EXTRACTOR_NAME as FEATURE_EXTRACTOR_FILE

from ..data import CleaningConfig, CleaningReport, ColumnMap, clean_lightcurves
from ..devices import check_device
from ..feature_extraction_astroco import AstroCoFeatureExtractor, pool_windows
from ..loading import load_pretrained
from ..modeling_astroco import AstroCoModel
from ..pipeline_astroco import encode_windows
from .inputs import (
    DEFAULT_COLUMNS,
    LightCurveArrays,
    LightCurveInput,
    as_arrays,
    count_rows,
    iter_tables,
    to_raw_schema,
)

METADATA_COLUMNS: tuple[str, ...] = ("object_id", "survey", "band", "label")


@dataclass
class WindowEmbeddings:
    """Per-window results, in window order (curve by curve, then time).

    Attributes:
        embeddings: (W, D) float32 pooled embedding of every window.
        curve: (W,) index of the window's light curve. window_index: (W,) position within the curve.
        start: (W,) first point of the window in its curve. n_points: (W,) points in the window.
        t0, m0: (W,) float64 offsets subtracted by the normalisation (mean time, mean magnitude).
        layer_means: (W, M+1, D) float32 masked mean of every layer, when requested.
    """

    embeddings: np.ndarray
    curve: np.ndarray
    window_index: np.ndarray
    start: np.ndarray
    n_points: np.ndarray
    t0: np.ndarray
    m0: np.ndarray
    layer_means: np.ndarray | None = None


@dataclass
class EmbeddingOutput:
    """Per-curve results, in input order.

    Attributes:
        embeddings: (N, D) float32, the point-weighted mean of the curve's window embeddings.
        n_points: (N,) points per curve. n_windows: (N,) windows per curve.
        layer_means: (N, M+1, D) float32 point-weighted per-layer masked means (``layer_means=True``).
        layer_weights: (M+1,) the encoder's normalised mixing weights alpha: ``embeddings`` equals
            ``einsum("l,nld->nd", layer_weights, layer_means)``.
        windows: per-window results (``per_window=True``).
    """

    embeddings: np.ndarray
    n_points: np.ndarray
    n_windows: np.ndarray
    layer_weights: np.ndarray
    layer_means: np.ndarray | None = None
    windows: WindowEmbeddings | None = None


@dataclass
class ParquetSummary:
    """What :meth:`AstroCoEmbedder.to_parquet` wrote."""

    path: Path
    rows: int
    curves: int
    windows: int
    seconds: float
    cleaning: CleaningReport | None = None


class AstroCoEmbedder:
    """Embed light curves of any length with an AstroCo encoder.

    Args:
        model: an ``AstroCoModel``, or any AstroCo model with a head (its encoder is used).
        batch_size: windows per forward pass.
        device: where to run (default: the model's device).
        dtype: parameter dtype (default: keep the model's).
        autocast_dtype: run the forward pass under ``torch.autocast`` with this dtype, e.g.
            ``torch.bfloat16``; outputs are returned in float32.
        window: points per window (default: ``config.max_sequence_length``).
        min_tail: shortest last window before it is re-balanced with the previous one (default
            ``window // 4``, as :func:`astroco_hf.data.sequential_windows`).
        progress: show tqdm progress bars.
        feature_extractor: the windowing to use instead of ``window``/``min_tail`` (e.g. a model
            folder's ``AstroCoFeatureExtractor.from_pretrained``).

    Example:
        >>> embedder = AstroCoEmbedder.from_pretrained("runs/astroco-tiny", batch_size=512)
        >>> out = embedder.embed([(t1, m1, e1), (t2, m2, e2)])   # any lengths
        >>> out.embeddings.shape                                    # (2, D)
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        batch_size: int = 256,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        autocast_dtype: torch.dtype | None = None,
        window: int | None = None,
        min_tail: int | None = None,
        progress: bool = True,
        feature_extractor: AstroCoFeatureExtractor | None = None,
    ) -> None:
        encoder = model.base_model
        if not isinstance(encoder, AstroCoModel):
            raise TypeError(f"expected an AstroCo model, got {type(model).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if device is not None:
            device = check_device(device)  # one line for CUDA without CUDA, not torch's assertion
        self.model = encoder.to(device=device, dtype=dtype).eval()
        self.device = next(self.model.parameters()).device
        self.batch_size = batch_size
        self.autocast_dtype = autocast_dtype
        if feature_extractor is not None and (window is not None or min_tail is not None):
            raise ValueError("give either a feature_extractor or window/min_tail, not both")
        if feature_extractor is None:
            window = window or encoder.config.max_sequence_length
            feature_extractor = AstroCoFeatureExtractor(window_length=window, min_tail=min_tail)
        self.feature_extractor = feature_extractor
        self.window, self.min_tail = feature_extractor.window_length, feature_extractor.min_tail
        if not 1 <= self.window <= encoder.config.max_sequence_length:
            raise ValueError(f"window must be in [1, {encoder.config.max_sequence_length}], got {self.window}")
        self.progress = progress

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> AstroCoEmbedder:
        """Load the encoder of any saved AstroCo checkpoint (pretraining or classification), with the
        folder's feature extractor (``preprocessor_config.json``) when it has one. The unused head is
        dropped without transformers' LOAD REPORT (:func:`~astroco_hf.loading.load_pretrained`)."""
        if (Path(path) / FEATURE_EXTRACTOR_FILE).is_file() and not {"window", "min_tail", "feature_extractor"} & set(kwargs):
            kwargs["feature_extractor"] = AstroCoFeatureExtractor.from_pretrained(str(path))
        return cls(load_pretrained(AstroCoModel, str(path)), **kwargs)

    @property
    def hidden_size(self) -> int:
        return self.model.config.d_model

    @property
    def num_layers(self) -> int:
        """Number of mixed layers M+1 (input embedding and every block)."""
        return self.model.config.num_layers + 1

    def layer_weights(self) -> np.ndarray:
        """(M+1,) the encoder's normalised mixing weights."""
        with torch.no_grad():
            return self.model.mixing_weights().float().cpu().numpy()

    # ------------------------------------------------------------------------------------------
    # Core
    # ------------------------------------------------------------------------------------------

    def embed(
        self,
        data: LightCurveInput | LightCurveArrays,
        *,
        columns: ColumnMap = DEFAULT_COLUMNS,
        per_window: bool = False,
        layer_means: bool = False,
    ) -> EmbeddingOutput:
        """Embed every light curve of ``data`` (in input order).

        Args:
            data: light curves (see :mod:`astroco_hf.evaluation.inputs`); they must be clean: an empty
                curve or a non-finite value raises a ``ValueError`` naming the curve and field.
            columns: column names for tables, DataFrames and datasets.
            per_window: also return every window's embedding and offsets.
            layer_means: also return the per-layer means (few-shot cache), shape (N, M+1, D).

        Returns:
            :class:`EmbeddingOutput`.
        """
        curves = as_arrays(data, columns)
        if len(curves) == 0:
            raise ValueError("no light curves to embed")
        features = self.feature_extractor.window_curves(curves.to_flat())
        curve, counts = features["curve_index"], features["n_points"]
        with tqdm(total=len(curve), desc="embedding", unit="window", disable=not self.progress, leave=False) as bar:
            pooled, means = encode_windows(self.model, features, batch_size=self.batch_size, layer_means=layer_means,
                                           autocast_dtype=self.autocast_dtype, on_batch=bar.update)
        embeddings = pool_windows(pooled, curve, counts, len(curves))
        curve_means = pool_windows(means, curve, counts, len(curves)) if means is not None else None
        windows = None
        if per_window:
            windows = WindowEmbeddings(pooled, curve, features["window_index"], features["start"], counts,
                                       features["t0"], features["m0"], means)
        return EmbeddingOutput(
            embeddings=embeddings,
            n_points=curves.lengths.copy(),
            n_windows=np.bincount(curve, minlength=len(curves)),
            layer_weights=self.layer_weights(),
            layer_means=curve_means,
            windows=windows,
        )

    # ------------------------------------------------------------------------------------------
    # Streaming to parquet
    # ------------------------------------------------------------------------------------------

    def to_parquet(
        self,
        source: LightCurveInput | str | Path | Sequence[str | Path],
        path: str | Path,
        *,
        chunk_size: int = 2048,
        per_window: bool = False,
        cleaning: CleaningConfig | None = None,
        columns: ColumnMap = DEFAULT_COLUMNS,
        on_chunk: Callable[[int], None] | None = None,
    ) -> ParquetSummary:
        """Embed a source of any size into a parquet file, ``chunk_size`` curves at a time.

        Memory is bounded by one chunk: parquet input is read batch by batch, saved ``datasets``
        folders are memory-mapped, and each chunk's rows are written with a ``pyarrow.ParquetWriter``
        before the next chunk is read.

        Args:
            source: in-memory light curves, a parquet/CSV file, a folder of them, a saved ``datasets``
                folder, or a list of paths.
            path: output file. One row per curve (``object_id, survey, band, label, n_points,
                n_windows, embedding``), or per window with ``per_window`` (``window_index, start,
                n_points, t0, m0`` instead of ``n_windows``). ``embedding`` is a fixed-size list of
                float32.
            cleaning: clean each chunk with :func:`astroco_hf.data.clean_lightcurves` first (for raw
                survey files); removed curves are absent from the output and counted in the report.
                Without it, dirty data raises a ``ValueError`` naming the curve.
            on_chunk: called after every chunk with the number of source curves read so far (progress
                hooks, memory probes).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        embedding_type = pa.list_(pa.float32(), self.hidden_size)
        count_fields = ([("window_index", pa.int32()), ("start", pa.int32()), ("n_points", pa.int32()),
                         ("t0", pa.float64()), ("m0", pa.float64())] if per_window
                        else [("n_points", pa.int32()), ("n_windows", pa.int32())])
        schema = pa.schema([(name, pa.string()) for name in METADATA_COLUMNS] + count_fields + [("embedding", embedding_type)])
        reports: list[CleaningReport] = []
        rows = curves_done = windows_done = seen = 0
        started = time.perf_counter()
        bar = tqdm(total=count_rows(source, columns), desc=f"embedding -> {path.name}", unit="curve", disable=not self.progress)
        with pq.ParquetWriter(path, schema) as writer:
            for table in iter_tables(source, chunk_size, columns):
                n_in = table.num_rows
                if cleaning is not None:
                    table, report = clean_lightcurves(to_raw_schema(table, columns), cleaning)
                    reports.append(report)
                    names = ColumnMap()  # the cleaned table uses the standard names
                else:
                    names = columns
                if table.num_rows:
                    curves = LightCurveArrays.from_table(table, names)
                    curves.row_offset = seen
                    out = self.embed(curves, per_window=per_window)
                    meta = self._metadata(table, names, seen)
                    if per_window:
                        w = out.windows
                        data = {name: meta[name].take(pa.array(w.curve)) for name in METADATA_COLUMNS}
                        data |= {"window_index": w.window_index, "start": w.start, "n_points": w.n_points,
                                 "t0": w.t0, "m0": w.m0}
                        vectors = w.embeddings
                    else:
                        data = dict(meta) | {"n_points": out.n_points, "n_windows": out.n_windows}
                        vectors = out.embeddings
                    data["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.hidden_size)
                    batch = pa.Table.from_arrays([_column(data[f.name], f.type) for f in schema], schema=schema)
                    writer.write_table(batch)
                    rows += batch.num_rows
                    curves_done += len(out.n_points)
                    windows_done += int(out.n_windows.sum())
                seen += n_in
                bar.update(n_in)
                if on_chunk is not None:
                    on_chunk(seen)
        bar.close()
        merged = _merge_reports(reports) if reports else None
        return ParquetSummary(path, rows, curves_done, windows_done, time.perf_counter() - started, merged)

    @staticmethod
    def _metadata(table: pa.Table, columns: ColumnMap, first_row: int) -> dict[str, pa.Array]:
        """object_id/survey/band/label as strings; a missing object_id is the source row number."""
        names = {"object_id": columns.object_id, "survey": columns.survey, "band": columns.band, "label": columns.label}
        meta = {}
        for key, name in names.items():
            if name in table.column_names:
                meta[key] = table[name].combine_chunks().cast(pa.string())
            elif key == "object_id":
                meta[key] = pa.array([str(i) for i in range(first_row, first_row + table.num_rows)], pa.string())
            else:
                meta[key] = pa.nulls(table.num_rows, pa.string())
        return meta


def _column(values: np.ndarray | pa.Array, type_: pa.DataType) -> pa.Array:
    return values.cast(type_) if isinstance(values, pa.Array) else pa.array(values, type_)


def _merge_reports(reports: list[CleaningReport]) -> CleaningReport:
    """One report for all chunks: per-survey counts add up."""
    surveys: dict = {}
    for report in reports:
        for name, counts in report.surveys.items():
            surveys[name] = surveys[name] + counts if name in surveys else counts
    merged = CleaningReport(reports[0].config, surveys)
    merged.check()
    return merged


def embed(
    model: str | Path | PreTrainedModel,
    data: LightCurveInput,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
    **options,
) -> np.ndarray:
    """Embeddings (N, D) float32 of the light curves ``data``, in input order.

    ``model`` is a saved AstroCo folder or a loaded model; ``options`` go to
    :meth:`AstroCoEmbedder.embed` (``columns``). For per-window output, per-layer means or parquet
    streaming use :class:`AstroCoEmbedder` directly.
    """
    if isinstance(model, (str, Path)):
        embedder = AstroCoEmbedder.from_pretrained(model, batch_size=batch_size, device=device,
                                                   autocast_dtype=autocast_dtype, progress=progress)
    else:
        embedder = AstroCoEmbedder(model, batch_size=batch_size, device=device, autocast_dtype=autocast_dtype,
                                   progress=progress)
    return embedder.embed(data, **options).embeddings
