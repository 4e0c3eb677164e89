"""Build the exact folder to upload to the Hub for a trained AstroCo model, then upload it.

:func:`build_release_folder` validates everything first (repo id, model folder, measured results,
few-shot files, card template) and only then writes; the folder holds exactly what
:func:`push_release` sends with ``HfApi.create_repo`` + ``HfApi.upload_folder``. ``release_info.json``
is written last and lists every other file with its SHA-256, so a partly built or later modified
folder is refused at upload time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers.dynamic_module_utils import get_relative_import_files

from .. import __version__, modeling_astroco
from ..configuration_astroco import AstroCoConfig
from ..feature_extraction_astroco import AstroCoFeatureExtractor
from ..modeling_astroco import (
    AUTO_MAP,
    AstroCoForMaskedReconstruction,
    AstroCoForSequenceClassification,
    AstroCoModel,
    AstroCoPreTrainedModel,
)
from ..pipelines import save_inference_files
from .cards import render_model_card, template_for_preset

__all__ = [
    "CLASSIFICATION_RESULTS",
    "CLEANING_REPORT",
    "EVAL_RESULTS",
    "FEWSHOT_RESULTS",
    "FIGURES",
    "RELEASE_INFO",
    "TRAINING_CONFIG",
    "ReleaseError",
    "build_release_folder",
    "check_repo_id",
    "push_release",
    "read_release_info",
    "require_token",
]

WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"  # sharded weights: the index and model-0000i-of-0000n.safetensors
FEATURE_EXTRACTOR = "preprocessor_config.json"
CONFIG = "config.json"
EVAL_RESULTS = "eval_results.json"
FEWSHOT_RESULTS = "fewshot_results.json"
TRAINING_CONFIG = "training_config.json"
CLEANING_REPORT = "cleaning_report.json"
CLASSIFICATION_RESULTS = "classification_results.json"  # written by evaluation.finetune_classifier
# Figures `astroco pretrain` draws into the model folder; the card shows the ones present.
FIGURES: tuple[str, ...] = ("learning_curve.png", "reconstruction.png")
RELEASE_INFO = "release_info.json"
CARD = "README.md"

ARCHITECTURES: dict[str, type[AstroCoPreTrainedModel]] = {
    cls.__name__: cls for cls in (AstroCoModel, AstroCoForMaskedReconstruction, AstroCoForSequenceClassification)
}
# Config fields that define the network; eval_results.json must have been measured on the same ones.
ARCHITECTURE_KEYS: tuple[str, ...] = (
    "d_model", "num_layers", "num_heads", "conv_kernel_size", "ffn_expansion", "max_sequence_length",
    "use_conv_module", "ffn_type", "input_fusion", "pooling",
)
_LIBRARIES: tuple[str, ...] = ("transformers", "torch", "huggingface_hub", "safetensors")


class ReleaseError(ValueError):
    """Bad input to a release, reported before anything is written locally or remotely."""


def check_repo_id(repo_id: str, what: str = "repo id") -> None:
    """Require a Hub id of the form ``ORG/NAME`` with the Hub's allowed characters."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ReleaseError(f"Invalid {what} {repo_id!r}: expected ORG/NAME, e.g. my-org/astroco-s.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ReleaseError(f"Invalid {what} {repo_id!r}: {error}") from None


def require_token(token: str | None) -> str:
    """The token of a real upload, or a :class:`ReleaseError` saying how to give one."""
    if not token or not token.strip():
        raise ReleaseError(
            "A Hugging Face token with write access is needed to upload: pass --token (or set HF_TOKEN), "
            "or use --dry-run --out DIR to build the folder without uploading."
        )
    return token.strip()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ReleaseError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ReleaseError(f"{path} must hold a JSON object, got {type(data).__name__}.")
    return data


def _read_model_config(model_dir: Path) -> dict[str, Any]:
    if not model_dir.is_dir():
        raise ReleaseError(f"Model folder {model_dir} does not exist.")
    if not (model_dir / CONFIG).is_file():
        raise ReleaseError(f"{model_dir} has no {CONFIG}: save the model with save_pretrained (safetensors) first.")
    if not (model_dir / WEIGHTS).is_file() and not (model_dir / WEIGHTS_INDEX).is_file():
        raise ReleaseError(f"{model_dir} has no {WEIGHTS} (nor {WEIGHTS_INDEX}): save the model with "
                           "save_pretrained (safetensors) first.")
    config = _read_json(model_dir / CONFIG)
    if config.get("model_type") != AstroCoConfig.model_type:
        raise ReleaseError(f"{model_dir}/{CONFIG} has model_type {config.get('model_type')!r}, not 'astroco'.")
    architectures = config.get("architectures") or []
    if len(architectures) != 1 or architectures[0] not in ARCHITECTURES:
        raise ReleaseError(f"{model_dir}/{CONFIG} lists architectures {architectures}; expected one of {sorted(ARCHITECTURES)}.")
    return config


def _read_run_records(model_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The pretraining run's ``eval_results.json`` (checked against ``config``), after checking that its
    ``training_config.json`` is there too."""
    path = model_dir / EVAL_RESULTS
    if not path.is_file():
        raise ReleaseError(
            f"{model_dir} has no {EVAL_RESULTS}: a release reports measured results only. `astroco pretrain` "
            "evaluates the model on held-out objects and writes this file into the model folder."
        )
    if not (model_dir / TRAINING_CONFIG).is_file():
        raise ReleaseError(f"{model_dir} has no {TRAINING_CONFIG}: a release ships the configuration it was trained "
                           "with, which `astroco pretrain` writes into the model folder.")
    _read_json(model_dir / TRAINING_CONFIG)
    results = _read_json(path)
    if not isinstance(results.get("test"), dict):
        raise ReleaseError(f"{path} has no 'test' section (see docs/CONTRACTS.md).")
    recorded = results.get("model", {}).get("config", {})
    mismatched = {key: (recorded[key], config[key]) for key in ARCHITECTURE_KEYS
                  if key in recorded and key in config and recorded[key] != config[key]}
    if mismatched:
        raise ReleaseError(f"{path} was measured on another architecture than {model_dir}/{CONFIG} "
                           f"(field: (eval, config)): {mismatched}.")
    return results


def _read_classification(model_dir: Path, architecture: str) -> dict[str, Any] | None:
    """A fine-tuned classifier's ``classification_results.json`` (required for that architecture)."""
    path = model_dir / CLASSIFICATION_RESULTS
    if architecture != AstroCoForSequenceClassification.__name__:
        return None
    if not path.is_file():
        raise ReleaseError(f"{model_dir} is an {architecture} without {CLASSIFICATION_RESULTS}: a release reports "
                           "measured results only; astroco_hf.evaluation.finetune_classifier writes this file "
                           "beside the fine-tuned model.")
    results = _read_json(path)
    if not isinstance(results.get("eval"), dict) or "macro_f1" not in results["eval"]:
        raise ReleaseError(f"{path} has no 'eval' section with 'macro_f1' (see finetune_classifier).")
    return results


def _read_fewshots(model_dir: Path, paths: Iterable[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """The few-shot files given (a file or the folder of ``astroco fewshot --out``) plus the model
    folder's own, each checked to report this model; one per benchmark."""
    files = [Path(p) / FEWSHOT_RESULTS if Path(p).is_dir() else Path(p) for p in paths]
    if (model_dir / FEWSHOT_RESULTS).is_file():
        files.append(model_dir / FEWSHOT_RESULTS)
    fewshots: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in dict.fromkeys(f.resolve() for f in files):
        if not path.is_file():
            raise ReleaseError(f"Few-shot results {path} not found.")
        fewshot = _read_json(path)
        missing = [key for key in ("benchmark", "model", "protocol", "results") if key not in fewshot]
        if missing:
            raise ReleaseError(f"{path} lacks {missing} (see docs/CONTRACTS.md).")
        # Results of another checkpoint must never appear on this model's card.
        if Path(fewshot["model"]).resolve() != model_dir.resolve():
            raise ReleaseError(f"{path} reports model {fewshot['model']!r}, not {model_dir}; run `astroco fewshot "
                               f"--model {model_dir}` to measure this model.")
        benchmark = str(fewshot["benchmark"])
        if benchmark in fewshots:
            raise ReleaseError(f"Two few-shot files for benchmark {benchmark!r}: {fewshots[benchmark][0]} and {path}.")
        fewshots[benchmark] = (path, fewshot)
    return list(fewshots.values())


def _prepare_out_dir(out_dir: Path, model_dir: Path, overwrite: bool) -> None:
    if out_dir.resolve() == model_dir.resolve():
        raise ReleaseError("The release folder must differ from the model folder.")
    if out_dir.exists() and any(out_dir.iterdir()):
        # upload_folder sends every file in the folder, so stale files would be published too.
        if not overwrite:
            raise ReleaseError(f"{out_dir} is not empty; choose an empty folder, or pass --overwrite to replace "
                               "an earlier release folder.")
        if not (out_dir / RELEASE_INFO).is_file():
            raise ReleaseError(f"--overwrite only replaces an earlier release folder (one with {RELEASE_INFO}); "
                               f"{out_dir} is not one.")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def _save_weights(model: AstroCoPreTrainedModel, out_dir: Path, max_shard_size: str | int | None) -> None:
    """The weights of ``model`` as ``save_pretrained`` writes them (shards and index past ``max_shard_size``);
    its config is written separately, with the release's ``auto_map``."""
    with tempfile.TemporaryDirectory(prefix=".weights-", dir=out_dir) as folder:
        kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
        model.save_pretrained(folder, **kwargs)
        for path in Path(folder).iterdir():
            if path.name == WEIGHTS_INDEX or path.suffix == ".safetensors":
                os.replace(path, out_dir / path.name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): _sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != RELEASE_INFO}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def build_release_folder(
    model_dir: str | Path,
    out_dir: str | Path,
    repo_id: str,
    *,
    fewshot: Sequence[str | Path] = (),
    datasets: Sequence[str] = (),
    base_model: str | None = None,
    template: str | Path | None = None,
    overwrite: bool = False,
    max_shard_size: str | int | None = None,
) -> Path:
    """Build the exact folder to upload for the trained model in ``model_dir``.

    The folder holds ``model.safetensors`` (copied byte for byte; with ``max_shard_size``, or from a
    sharded model folder, the weights as ``save_pretrained`` shards them), ``config.json`` with a complete
    ``auto_map``, ``custom_pipelines`` and ``astroco_hf_version``, the remote-code modules, the feature
    extractor (``preprocessor_config.json``: the model folder's, else the default windows) and the
    pipelines (:func:`astroco_hf.pipelines.save_inference_files`), the model card ``README.md``, the
    run's ``eval_results.json`` and ``training_config.json`` (and ``cleaning_report.json``,
    ``classification_results.json`` and the learning-curve and reconstruction figures when the run
    wrote them), one ``fewshot_results_<benchmark>.json`` per few-shot file, and ``release_info.json``
    (versions, commit message, file hashes).

    Args:
        model_dir: a saved AstroCo model with the ``eval_results.json`` and ``training_config.json`` of
            its pretraining run (the output folder of ``astroco pretrain``), or a fine-tuned
            ``AstroCoForSequenceClassification`` with its ``classification_results.json`` (the output
            folder of :func:`astroco_hf.evaluation.finetune_classifier`, which also carries the
            pretraining run's records when it was fine-tuned from a run folder).
        out_dir: where to build; must be empty or absent (or an earlier release with ``overwrite``).
        repo_id: target ``ORG/NAME`` on the Hub.
        fewshot: ``fewshot_results.json`` files (or folders holding one) measured on this model;
            ``model_dir/fewshot_results.json`` is included when present.
        datasets: Hub dataset ids the model was trained on (card metadata).
        base_model: Hub id of the model this one was fine-tuned from.
        template: card template; by default ``model_cards/<preset>.md`` for the run's preset.
        overwrite: replace an earlier release folder at ``out_dir``.
        max_shard_size: write the weights in safetensors shards of at most this size (``"15MB"``: files
            small enough for a git repository without LFS) instead of one ``model.safetensors``.

    Returns:
        ``out_dir``.

    Raises:
        ReleaseError: on bad input, before anything is written.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    check_repo_id(repo_id)
    for dataset in datasets:
        check_repo_id(dataset, "dataset id")
    if base_model is not None:
        check_repo_id(base_model, "base model id")
    source_config = _read_model_config(model_dir)
    architecture = source_config["architectures"][0]
    classification = _read_classification(model_dir, architecture)
    # A classifier fine-tuned from a checkpoint without run records (e.g. from the Hub) has only its own.
    has_run_records = classification is None or (model_dir / EVAL_RESULTS).is_file()
    eval_results = _read_run_records(model_dir, source_config) if has_run_records else {}
    fewshots = _read_fewshots(model_dir, fewshot)
    preset = eval_results.get("model", {}).get("preset") or (classification or {}).get("preset")
    try:
        template_path = Path(template) if template is not None else template_for_preset(preset)
    except (ValueError, FileNotFoundError) as error:
        raise ReleaseError(str(error)) from None
    if not template_path.is_file():
        raise ReleaseError(f"Model card template {template_path} not found.")
    # The weights must be exactly those of the recorded architecture: nothing missing, nothing extra.
    model, info = ARCHITECTURES[architecture].from_pretrained(model_dir, output_loading_info=True)
    problems = {kind: sorted(keys) for kind, keys in info.items() if keys and kind != "error_msgs"}
    if problems:
        raise ReleaseError(f"{model_dir}/{WEIGHTS} does not match {architecture}: {problems}.")
    parameters = sum(p.numel() for p in model.parameters())
    _prepare_out_dir(out_dir, model_dir, overwrite)

    config = model.config
    config.auto_map = dict(AUTO_MAP)  # every Auto class loads the folder as remote code
    config.astroco_hf_version = __version__
    config.save_pretrained(out_dir)
    if max_shard_size is None and (model_dir / WEIGHTS).is_file():
        shutil.copyfile(model_dir / WEIGHTS, out_dir / WEIGHTS)
    else:
        _save_weights(model, out_dir, max_shard_size)
    modeling_file = Path(modeling_astroco.__file__)
    for path in (modeling_file, *map(Path, get_relative_import_files(str(modeling_file)))):
        shutil.copyfile(path, out_dir / path.name)
    # The feature extractor the model was trained with (or the default windows), and the pipelines.
    feature_extractor = (AstroCoFeatureExtractor.from_pretrained(str(model_dir))
                         if (model_dir / FEATURE_EXTRACTOR).is_file() else None)
    save_inference_files(out_dir, feature_extractor)

    # The run's own records, byte for byte; checkpoints, trainer state and pickled arguments stay behind.
    records = [name for name in (EVAL_RESULTS, TRAINING_CONFIG, CLEANING_REPORT, CLASSIFICATION_RESULTS, *FIGURES)
               if (model_dir / name).is_file()]
    for name in records:
        shutil.copyfile(model_dir / name, out_dir / name)
    for path, fewshot_results in fewshots:
        shutil.copyfile(path, out_dir / f"fewshot_results_{fewshot_results['benchmark']}.json")
    card = render_model_card(
        repo_id=repo_id, config=_read_json(out_dir / CONFIG), eval_results=eval_results,
        fewshots=[f for _, f in fewshots], parameters=parameters, package_version=__version__,
        template=template_path, datasets=datasets, base_model=base_model,
        cleaning=_read_json(out_dir / CLEANING_REPORT) if CLEANING_REPORT in records else None,
        figures=[name for name in FIGURES if name in records], classification=classification,
    )
    card.save(out_dir / CARD)

    commit_message = (f"Release {repo_id.split('/')[1]}: {architecture} ({preset}, {parameters:,} parameters), "
                      f"astroco_hf {__version__}")
    _write_json(out_dir / RELEASE_INFO, {
        "repo_id": repo_id,
        "commit_message": commit_message,
        "astroco_hf_version": __version__,
        "trained_with_astroco_hf_version": eval_results.get("astroco_hf_version"),
        "libraries": {name: installed_version(name) for name in _LIBRARIES},
        "architecture": architecture,
        "preset": preset,
        "parameters": parameters,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": _file_hashes(out_dir),
    })
    return out_dir


def read_release_info(folder: str | Path) -> dict[str, Any]:
    """``release_info.json`` of a built folder, after checking the folder still holds exactly the files
    it lists, unchanged."""
    folder = Path(folder)
    if not (folder / RELEASE_INFO).is_file():
        raise ReleaseError(f"{folder} is not a complete release folder (no {RELEASE_INFO}); build it with "
                           "`astroco release --dry-run --out DIR` or build_release_folder().")
    info = _read_json(folder / RELEASE_INFO)
    if _file_hashes(folder) != info.get("files"):
        raise ReleaseError(f"{folder} changed after it was built (files differ from {RELEASE_INFO}); rebuild it.")
    return info


def push_release(folder: str | Path, *, token: str | None, private: bool = False) -> CommitInfo:
    """Upload a folder built by :func:`build_release_folder` to its repo id.

    Creates the model repository if needed (``private`` applies to a new one) and uploads the folder
    in one commit with the message recorded at build time.

    Raises:
        ReleaseError: without a token, or when the folder is incomplete or was modified; raised before
            any request is sent.
    """
    info = read_release_info(folder)
    token = require_token(token)
    api = HfApi(token=token)
    api.create_repo(info["repo_id"], token=token, private=private, repo_type="model", exist_ok=True)
    return api.upload_folder(repo_id=info["repo_id"], folder_path=Path(folder), repo_type="model",
                             commit_message=info["commit_message"], token=token)
