"""Catalogue-scale embedding: chunks shared among processes, atomic parquet shards, resumable, one merge.

The source is read in chunks of ``chunk_size`` light curves (:func:`~astroco_hf.evaluation.inputs.iter_tables`,
the same chunks in every process). Chunk ``k`` belongs to process ``k % world_size``, which cleans it,
embeds it and writes ``part-{k:06d}.parquet``: first under a temporary name, then renamed, so a shard is
either complete or absent. Every row carries ``input_index``, the curve's row in the source, so the
input order is recoverable from any set of shards. A chunk whose shard exists is skipped: an
interrupted run (Ctrl-C, SIGTERM, a lost node) continues from what it wrote with ``--resume``.

Output (``--out``):

- a ``*.parquet`` file: the shards go to ``OUT.partial/``; when every chunk is done, process 0 merges them
  in chunk order (= input order) into ``OUT`` (again written under a temporary name and renamed) and
  removes the folder. Until then nothing exists at ``OUT``.
- any other path: a folder of shards, a parquet dataset as it is (``datasets.load_dataset("parquet",
  data_dir=OUT)``, ``pyarrow.dataset``); ``_embedding.json`` gains ``"complete": true`` at the end.

``_embedding.json`` records the settings (chunk size, per-window rows, cleaning, inference path); a
resume with different settings is refused, so shards of one output always agree.

Processes: run the same command under any launcher that sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
(``torchrun``, ``accelerate launch``). ``torch.distributed`` (gloo on CPU, NCCL on GPUs) is used for two
things only: process 0's inference path and settings are broadcast, and a barrier before the merge::

    torchrun --nproc_per_node 2 -m astroco_hf.cli embed --model M --data D --out emb.parquet   # 2 CPU processes
    accelerate launch --num_processes 4 -m astroco_hf.cli embed ... --device cuda                # 4 GPUs

A catalogue that outgrows one machine runs the same command on a multi-node launcher over a shared
file system: ``torchrun --nnodes N --node_rank I --rdzv_backend c10d --rdzv_endpoint HOST:PORT
--nproc_per_node P -m astroco_hf.cli embed ...`` on every node (or ``srun`` under Slurm with
``accelerate launch --multi_gpu --num_machines N --machine_rank $SLURM_NODEID ...``); chunks are then
shared among all N x P processes. Without a shared file system, give each node its own part of the
source (``--data``) and ``--out``. Nodes that fail are re-run with ``--resume`` (any world size: the
chunk -> shard names do not depend on it).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from ..data import CleaningConfig, CleaningReport, ColumnMap, clean_lightcurves
from ..data.cleaning import SurveyCounts
from ..data.schema import RAW_SCHEMA, SERIES_COLUMNS, validate_raw_table
from ..errors import InputDataError, OutputError
from ..outputs import LOCK_NAME, atomic_output, atomic_write_text, sigterm_unwinds
from ..windowing import normalize_segments, pad_segments, window_bounds, window_points
from .embed import METADATA_COLUMNS, AstroCoEmbedder
from .inputs import DEFAULT_COLUMNS, LightCurveArrays, iter_tables, to_raw_schema

__all__ = [
    "MANIFEST",
    "CatalogueSummary",
    "Distributed",
    "abandon",
    "embed_catalogue",
    "example_batch",
    "finish",
    "first_clean_chunk",
    "inference_path_of",
    "merge_shards",
    "prepare_output",
    "record_inference_path",
    "settings_of",
    "shard_name",
]

MANIFEST = "_embedding.json"
_REPORT_KEY = b"astroco.cleaning"


def shard_name(chunk: int) -> str:
    return f"part-{chunk:06d}.parquet"


@dataclass(frozen=True)
class Distributed:
    """This process's place in a launch (``torchrun`` / ``accelerate launch`` environment variables)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Distributed:
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))

    def start(self, device: torch.device) -> None:
        """Join the process group (several processes only)."""
        if self.world_size > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def from_rank0(self, value: Any) -> Any:
        """Process 0's ``value`` in every process."""
        if self.world_size == 1:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def stop(self) -> None:
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@dataclass
class CatalogueSummary:
    """What :func:`embed_catalogue` did (this process's shards, and the totals over all shards)."""

    path: Path
    rows: int
    curves_in: int
    shards_written: int
    shards_skipped: int
    seconds: float
    cleaning: CleaningReport | None = None


# ----------------------------------------------------------------------------------------------
# Output folder and its checks
# ----------------------------------------------------------------------------------------------


def _work_folder(out: Path) -> Path:
    return out.with_name(out.name + ".partial") if out.suffix == ".parquet" else out


def prepare_output(out: str | Path, settings: dict[str, Any], *, overwrite: bool = False, resume: bool = False) -> Path:
    """Check ``out`` before any work and return the shard folder (process 0 only).

    Raises:
        OutputError: ``out`` exists (without ``overwrite``); shards of an earlier run are there (without
            ``resume`` or ``overwrite``) or were written with other ``settings``; the folder is not writable.
    """
    out = Path(out)
    folder = _work_folder(out)
    manifest = folder / MANIFEST
    complete = out.is_file() if out != folder else manifest.exists() and _read_manifest(folder).get("complete", False)
    if out != folder and out.exists() and not out.is_file():
        raise OutputError(f"{out} is a folder; a .parquet --out names the file to write")
    if out == folder and out.is_file():
        raise OutputError(f"{out} is a file; --out names a .parquet file or a folder of shards")
    if complete and not overwrite:
        raise OutputError(f"{out} already exists; pass --overwrite to replace it or choose another output path")
    if overwrite and not resume:
        if out.is_file():
            out.unlink()
        if folder.exists():
            _remove_output_folder(folder)
    if folder.exists() and any(p.name != LOCK_NAME for p in folder.iterdir()):
        if not manifest.exists():
            raise OutputError(f"{folder} exists and is not an embedding output folder (no {MANIFEST}); "
                              "choose another --out")
        if not resume:
            done = len(list(folder.glob("part-*.parquet")))
            raise OutputError(f"{folder} holds {done} shards of an earlier run; pass --resume to continue it "
                              "or --overwrite to start again")
        earlier = _read_manifest(folder)["settings"]
        changed = sorted(k for k in settings if earlier.get(k) != settings[k])
        if changed:
            raise OutputError(f"cannot resume {folder}: it was written with other settings: "
                              + "; ".join(f"{k} {earlier.get(k)!r}, now {settings[k]!r}" for k in changed))
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {folder} ({error.strerror or error}); choose another --out") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{folder} is not writable; choose another --out")
    atomic_write_text(manifest, json.dumps({"settings": settings, "complete": False}, indent=1))
    return folder


def inference_path_of(folder: Path) -> str | None:
    """The inference path recorded for ``folder``'s shards (a resumed run keeps it, so shards agree)."""
    return _read_manifest(folder).get("inference_path")


def record_inference_path(folder: Path, path: str) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps(_read_manifest(folder) | {"inference_path": path}, indent=1))


def _remove_output_folder(folder: Path) -> None:
    """Remove an earlier embedding output folder (only one: its manifest says so)."""
    if not (folder / MANIFEST).exists():
        raise OutputError(f"{folder} is not an embedding output folder (no {MANIFEST}); not removing it")
    shutil.rmtree(folder)


def abandon(folder: Path) -> None:
    """Remove ``folder`` if no shard holds a row (a run that found nothing to embed leaves nothing)."""
    if folder.exists() and _shard_totals(folder)[0] == 0:
        shutil.rmtree(folder)


def _read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST).read_text())


# ----------------------------------------------------------------------------------------------
# One chunk
# ----------------------------------------------------------------------------------------------


def _clean_with_index(table: pa.Table, first_row: int, columns: ColumnMap, cleaning: CleaningConfig | None,
                      where: str) -> tuple[pa.Table, np.ndarray, ColumnMap, CleaningReport | None]:
    """The chunk's curves to embed, their source rows and column names, and the cleaning counts.

    ``where`` names the source in errors (:class:`InputDataError`: a series field that is not numeric, or
    whose length differs from ``time``'s).

    The object ids are swapped for source row numbers while cleaning, so that the kept rows are known
    exactly (an id can repeat, e.g. one row per band), then put back.
    """
    rows = np.arange(first_row, first_row + table.num_rows)
    if columns.object_id not in table.column_names:
        table = table.append_column(columns.object_id, pa.array(rows.astype(str)))
    try:
        raw = to_raw_schema(table, columns)  # also the type check of input that is not cleaned
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        problem = _not_numeric(table, first_row, columns, where)
        if problem is None:
            raise
        raise problem from None
    if cleaning is None:
        return table, rows, columns, None
    try:
        validate_raw_table(raw)  # named by the source's own ids, before they are swapped
    except ValueError as error:
        raise InputDataError(f"{where}: {error}") from None
    ids = raw["object_id"]
    position = raw.schema.get_field_index("object_id")
    raw = raw.set_column(position, "object_id", pa.array(rows.astype(str), pa.string()))
    cleaned, report = clean_lightcurves(raw, cleaning)
    kept = np.asarray(cleaned["object_id"].to_pylist(), dtype=np.int64)
    cleaned = cleaned.set_column(position, "object_id", ids.take(pa.array(kept - first_row)))
    return cleaned, kept, ColumnMap(), report


def _not_numeric(table: pa.Table, first_row: int, columns: ColumnMap, where: str) -> InputDataError | None:
    """The first curve and series field of ``table`` that cannot be read as numbers, as an error, or None."""
    for field in SERIES_COLUMNS:
        name = getattr(columns, field)
        if name not in table.column_names:
            continue
        if not pa.types.is_list(table.schema.field(name).type) and not pa.types.is_large_list(table.schema.field(name).type):
            return InputDataError(f"{where}: field {name!r} holds one {table.schema.field(name).type} per row (one row per "
                                  "point); a table is read with one row per light curve (list columns): pass the file "
                                  "path or a pandas DataFrame (points grouped by object_id), or convert with "
                                  "`astroco prepare`")
        target = RAW_SCHEMA.field(field).type
        for row in range(table.num_rows):  # only after a failed cast: find the culprit
            try:
                pc.cast(table[name].slice(row, 1), target)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                return InputDataError(f"{where}: light curve {first_row + row} ({table[columns.object_id][row]}): field "
                                      f"{name!r} holds {table.schema.field(name).type}, not numbers; fix or drop it")
    return None


def _shard_schema(hidden_size: int, per_window: bool) -> pa.Schema:
    counts = ([("window_index", pa.int32()), ("start", pa.int32()), ("n_points", pa.int32()),
               ("t0", pa.float64()), ("m0", pa.float64())] if per_window
              else [("n_points", pa.int32()), ("n_windows", pa.int32())])
    return pa.schema([("input_index", pa.int64())] + [(name, pa.string()) for name in METADATA_COLUMNS]
                     + counts + [("embedding", pa.list_(pa.float32(), hidden_size))])


def _embed_chunk(embedder: AstroCoEmbedder, table: pa.Table, rows: np.ndarray, columns: ColumnMap,
                 schema: pa.Schema, per_window: bool) -> pa.Table:
    """Rows of one chunk's shard: per curve (or per window with ``per_window``), in input order."""
    if table.num_rows == 0:
        return schema.empty_table()
    curves = LightCurveArrays.from_table(table, columns)
    curves.row_offset = int(rows[0])
    out = embedder.embed(curves, per_window=per_window)
    names = {"object_id": columns.object_id, "survey": columns.survey, "band": columns.band, "label": columns.label}
    meta = {key: (table[name].combine_chunks().cast(pa.string()) if name in table.column_names
                  else pa.nulls(table.num_rows, pa.string())) for key, name in names.items()}
    if per_window:
        w = out.windows
        take = pa.array(w.curve)
        data = {"input_index": rows[w.curve]} | {key: meta[key].take(take) for key in METADATA_COLUMNS}
        data |= {"window_index": w.window_index, "start": w.start, "n_points": w.n_points, "t0": w.t0, "m0": w.m0}
        vectors = w.embeddings
    else:
        data = {"input_index": rows} | meta | {"n_points": out.n_points, "n_windows": out.n_windows}
        vectors = out.embeddings
    data["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    return pa.Table.from_arrays(
        [value.cast(f.type) if isinstance(value, pa.Array) else pa.array(value, f.type)
         for f, value in ((f, data[f.name]) for f in schema)], schema=schema)


def _write_shard(folder: Path, chunk: int, table: pa.Table, curves_in: int, report: CleaningReport | None) -> None:
    """Write a shard under a temporary name and rename it: a shard at its final name is complete."""
    meta = {b"astroco.curves_in": str(curves_in).encode()}
    if report is not None:
        meta[_REPORT_KEY] = json.dumps(report.to_dict()).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_output(folder / shard_name(chunk), overwrite=True) as temporary:
        pq.write_table(table, temporary)


def _report_from_dict(data: dict[str, Any]) -> CleaningReport:
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items()}
    return CleaningReport(CleaningConfig(**config), {name: SurveyCounts(**counts) for name, counts in data["surveys"].items()})


def _shard_totals(folder: Path) -> tuple[int, int, CleaningReport | None]:
    """Rows, source curves and combined cleaning counts over every shard of ``folder``."""
    rows = curves_in = 0
    reports = []
    for file in sorted(folder.glob("part-*.parquet")):
        metadata = pq.read_metadata(file)
        rows += metadata.num_rows
        kv = metadata.metadata or {}
        curves_in += int(kv.get(b"astroco.curves_in", b"0"))
        if _REPORT_KEY in kv:
            reports.append(_report_from_dict(json.loads(kv[_REPORT_KEY])))
    return rows, curves_in, CleaningReport.combine(reports) if reports else None


# ----------------------------------------------------------------------------------------------
# The whole source
# ----------------------------------------------------------------------------------------------


def example_batch(table: pa.Table, window: int, size: int, columns: ColumnMap = DEFAULT_COLUMNS) -> dict[str, torch.Tensor]:
    """The ``size`` longest windows of ``table``'s (clean) curves as one padded batch, (B, window) each:
    what the embedder's first batch looks like, for ``--precision auto`` calibration and ONNX tracing."""
    curves = LightCurveArrays.from_table(table, columns)
    curve, _, start, stop = window_bounds(curves.lengths, window)
    if len(curve) == 0:
        raise ValueError("no windows to calibrate on: the first chunk has no observations")
    chosen = np.sort(np.argsort(-(stop - start), kind="stable")[:size])
    offsets, segments, points = window_points(curves.offsets[:-1], curve[chosen], start[chosen], (stop - start)[chosen])
    times, mags, _, _ = normalize_segments(curves.time[points], curves.mag[points], segments, len(chosen))
    times, mags, errs, mask = pad_segments(offsets, times, mags, curves.mag_err[points].astype(np.float32), length=window)
    return {"times": torch.from_numpy(times), "magnitudes": torch.from_numpy(mags),
            "uncertainties": torch.from_numpy(errs), "attention_mask": torch.from_numpy(mask)}


def first_clean_chunk(source: Any, chunk_size: int, columns: ColumnMap,
                      cleaning: CleaningConfig | None) -> tuple[pa.Table, ColumnMap]:
    """The first chunk of ``source`` with curves left after cleaning (for calibration), read before any work.

    Raises:
        InputDataError: the source has no curve left (empty, header-only, or all removed: with the counts).
    """
    seen = 0
    reports = []
    for table in iter_tables(source, chunk_size, columns):
        cleaned, _, names, report = _clean_with_index(table, seen, columns, cleaning, _label(source))
        if cleaned.num_rows:
            return cleaned, names
        seen += table.num_rows
        reports += [report] if report is not None else []
    raise InputDataError(_empty_message(source, seen, CleaningReport.combine(reports) if reports else None))


def _label(source: Any) -> str:
    """``source`` as error messages name it: the path(s), or "the input" for in-memory data."""
    if isinstance(source, (str, Path)):
        return str(source)
    return ", ".join(map(str, source)) if isinstance(source, (list, tuple)) else "the input"


def _empty_message(source: Any, curves_in: int, report: CleaningReport | None) -> str:
    label = _label(source)
    if curves_in == 0:
        return f"no light curves in {label} (empty or header-only); nothing written"
    removed = report.total.curves_removed if report is not None else {}
    reasons = ", ".join(f"{rule}: {count:,}" for rule, count in removed.items() if count)
    return f"all {curves_in:,} light curves of {label} were removed by cleaning ({reasons}); nothing written"


def embed_catalogue(
    embedder: AstroCoEmbedder,
    source: Any,
    folder: Path,
    *,
    chunk_size: int = 2048,
    per_window: bool = False,
    cleaning: CleaningConfig | None = None,
    columns: ColumnMap = DEFAULT_COLUMNS,
    dist: Distributed = Distributed(),
    on_chunk: Callable[[int], None] | None = None,
) -> CatalogueSummary:
    """Embed this process's chunks of ``source`` into shards in ``folder`` (from :func:`prepare_output`),
    skipping chunks whose shard exists, then wait for the other processes.

    Raises:
        InputDataError: over all shards, no row (an empty source, or every curve removed by cleaning; the
            message gives the cleaning counts).
    """
    schema = _shard_schema(embedder.hidden_size, per_window)
    written = skipped = 0
    started = time.perf_counter()
    seen = 0
    with sigterm_unwinds():
        for chunk, table in enumerate(iter_tables(source, chunk_size, columns)):
            first_row, seen = seen, seen + table.num_rows
            if chunk % dist.world_size != dist.rank:
                continue
            if (folder / shard_name(chunk)).exists():
                skipped += 1
                continue
            kept, rows, names, report = _clean_with_index(table, first_row, columns, cleaning, _label(source))
            _write_shard(folder, chunk, _embed_chunk(embedder, kept, rows, names, schema, per_window), table.num_rows, report)
            written += 1
            if on_chunk is not None:
                on_chunk(seen)
    dist.barrier()
    rows, curves_in, report = _shard_totals(folder)
    if rows == 0:
        raise InputDataError(_empty_message(source, curves_in, report))
    return CatalogueSummary(folder, rows, curves_in, written, skipped, time.perf_counter() - started, report)


def merge_shards(folder: Path, out: Path, *, overwrite: bool = False) -> int:
    """Concatenate the shards of ``folder`` in chunk order (= input order) into the parquet file ``out``
    (written under a temporary name and renamed), then remove ``folder``. Returns the row count."""
    files = sorted(folder.glob("part-*.parquet"))
    schema = pq.read_schema(files[0]).remove_metadata()
    rows = 0
    with sigterm_unwinds(), atomic_output(out, overwrite=overwrite) as temporary:
        with pq.ParquetWriter(temporary, schema) as writer:
            for file in files:
                table = pq.read_table(file).replace_schema_metadata(None)
                writer.write_table(table)
                rows += table.num_rows
    _remove_output_folder(folder)
    return rows


def finish(folder: Path, out: Path, *, overwrite: bool = False) -> None:
    """Process 0, after every shard is written: merge into ``out`` (a ``.parquet`` file), or mark the
    shard folder complete."""
    if folder != out:
        merge_shards(folder, out, overwrite=overwrite)
        return
    atomic_write_text(folder / MANIFEST, json.dumps(_read_manifest(folder) | {"complete": True}, indent=1))


def settings_of(**settings: Any) -> dict[str, Any]:
    """JSON-ready settings for the manifest (dataclasses as dicts, paths as strings)."""
    def plain(value: Any) -> Any:
        if hasattr(value, "__dataclass_fields__"):
            return json.loads(json.dumps(asdict(value)))
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return str(value) if isinstance(value, Path) else value

    return {key: plain(value) for key, value in settings.items()}

