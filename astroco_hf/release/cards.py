"""Model cards: Jinja templates in ``model_cards/`` + metadata whose every number comes from run JSON.

The card's YAML header is a :class:`huggingface_hub.ModelCardData` whose ``model-index`` is built from
:class:`huggingface_hub.EvalResult` objects read from the pretraining run's ``eval_results.json`` and
the few-shot ``fewshot_results.json`` files (schemas in ``docs/CONTRACTS.md``). A metric that a file
does not contain is left out of the ``model-index`` and written as "not yet measured" in the prose;
nothing is typed by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..pipelines import CLASSIFICATION_TASK as CLASSIFICATION_PIPELINE_TASK
from ..pipelines import FEATURE_EXTRACTION_TASK

__all__ = [
    "CARD_TAGS",
    "FEWSHOT_METHODS",
    "MODEL_CARDS_DIR",
    "NOT_MEASURED",
    "RECONSTRUCTION_METRICS",
    "classification_eval_results",
    "fewshot_eval_results",
    "reconstruction_eval_results",
    "render_model_card",
    "template_for_preset",
]

# The templates of the top-level model_cards/, which is linked into the package (astroco_hf/model_cards)
# and so also installed with a wheel.
MODEL_CARDS_DIR = Path(__file__).parents[1] / "model_cards"

LICENSE = "mit"  # the package's licence (setup.cfg), which the released weights share
CARD_TAGS: tuple[str, ...] = (
    "astronomy", "light-curves", "time-series", "conformer", "custom_code", "self-supervised",
)
NOT_MEASURED = "not yet measured"

# Test-set reconstruction metrics of `eval_results.json["test"]` that describe the model itself, in
# card order: JSON key -> (model-index metric type, human-readable name). The window-mean baseline
# and the noise floor are references, shown in the prose table only.
RECONSTRUCTION_METRICS: dict[str, tuple[str, str]] = {
    "rmse_hidden": ("rmse", "RMSE, hidden points"),
    "r2_hidden": ("r_squared", "R², hidden points"),
    "rmse": ("rmse", "RMSE, all probed points"),
    "r2": ("r_squared", "R², all probed points"),
    "rmse_random": ("rmse", "RMSE, randomly replaced points"),
    "r2_random": ("r_squared", "R², randomly replaced points"),
    "rmse_unchanged": ("rmse", "RMSE, unchanged probed points"),
    "r2_unchanged": ("r_squared", "R², unchanged probed points"),
}
RECONSTRUCTION_TASK = ("masked-reconstruction", "Masked reconstruction")
FEWSHOT_TASK = ("time-series-classification", "Few-shot classification (frozen encoder + linear head)")
CLASSIFICATION_TASK = ("time-series-classification", "Light-curve classification (fine-tuned)")
# The few-shot method that is this model (frozen encoder + linear head) goes into the model-index;
# the others are reference rows computed on the same splits.
FEWSHOT_MODEL_METHOD = "astroco"
FEWSHOT_METHODS: dict[str, str] = {
    "astroco": "AstroCo, frozen encoder + linear head",
    "logreg_embeddings": "logistic regression on AstroCo embeddings",
    "light_curve_rf": "light-curve features + random forest (reference)",
    "light_curve_logreg": "light-curve features + logistic regression (reference)",
    "handcrafted_rf": "seven astropy features + random forest (reference)",
    "handcrafted_logreg": "seven astropy features + logistic regression (reference)",
    "light_curve_handcrafted_rf": "light-curve ⊕ seven astropy features + random forest (reference)",
    "light_curve_handcrafted_logreg": "light-curve ⊕ seven astropy features + logistic regression (reference)",
    "astroco_light_curve_rf": "AstroCo embeddings ⊕ light-curve features + random forest",
    "astroco_light_curve_logreg": "AstroCo embeddings ⊕ light-curve features + logistic regression",
    "handcrafted_features": "hand-crafted features (reference; files written before light-curve features)",
}

_PRESET_TEMPLATES = {"astroco-tiny": "astroco-tiny.md", "astroco-s": "astroco-s.md", "astroco-l": "astroco-l.md"}


def template_for_preset(preset: str | None) -> Path:
    """The card template of a preset (`astroco-tiny`, `astroco-s`, `astroco-l`) in ``model_cards/``."""
    if preset not in _PRESET_TEMPLATES:
        raise ValueError(
            f"No model card template for preset {preset!r}; templates exist for {sorted(_PRESET_TEMPLATES)}. "
            "Pass a template explicitly (--template) for other models."
        )
    path = MODEL_CARDS_DIR / _PRESET_TEMPLATES[preset]
    if not path.is_file():
        raise FileNotFoundError(f"Model card template {path} not found; reinstall astroco_hf or pass --template.")
    return path


def _measured(value: Any) -> bool:
    """A number was recorded (run JSON is written with ``allow_nan``: NaN means it could not be)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    """A number as the card prints it (4 significant digits, thousands separators for counts)."""
    if not _measured(value):
        return NOT_MEASURED
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _reconstruction_dataset(eval_results: Mapping[str, Any], datasets: Sequence[str]) -> tuple[str, str]:
    """(model-index dataset type, dataset name) of the pretraining test split."""
    data = eval_results.get("data", {})
    surveys, bands = data.get("surveys") or ["unknown survey"], data.get("bands") or ["unknown band"]
    dataset_type = datasets[0] if datasets else "-".join(s.lower() for s in surveys)
    return dataset_type, f"{' + '.join(surveys)} light curves, band {'/'.join(bands)} (held-out objects)"


def reconstruction_eval_results(eval_results: Mapping[str, Any], datasets: Sequence[str] = ()) -> list[EvalResult]:
    """Model-index entries for every reconstruction metric measured in ``eval_results["test"]``.

    With more than one survey, the per-survey RMSE on hidden points is added with the survey as the
    dataset config.
    """
    dataset_type, dataset_name = _reconstruction_dataset(eval_results, datasets)
    common = {"task_type": RECONSTRUCTION_TASK[0], "task_name": RECONSTRUCTION_TASK[1],
              "dataset_type": dataset_type, "dataset_name": dataset_name, "dataset_split": "test"}
    test = eval_results.get("test", {})
    results = [
        EvalResult(**common, metric_type=metric_type, metric_name=name, metric_value=test[key])
        for key, (metric_type, name) in RECONSTRUCTION_METRICS.items()
        if _measured(test.get(key))
    ]
    per_survey = eval_results.get("per_survey", {})
    if len(per_survey) > 1:
        metric_type, name = RECONSTRUCTION_METRICS["rmse_hidden"]
        results += [
            EvalResult(**common | {"dataset_config": survey}, metric_type=metric_type, metric_name=name,
                       metric_value=values["rmse_hidden"])
            for survey, values in per_survey.items()
            if _measured(values.get("rmse_hidden"))
        ]
    return results


def _fewshot_dataset_name(fewshot: Mapping[str, Any]) -> str:
    dataset = fewshot.get("dataset", {})
    classes = ", ".join(dataset.get("classes", []))
    band = f"band {dataset['band']}; " if dataset.get("band") else ""
    return f"{fewshot['benchmark']} ({band}classes {classes})"


def fewshot_eval_results(fewshot: Mapping[str, Any]) -> list[EvalResult]:
    """Model-index entries for the model's mean macro-F1 at every number of labels per class measured."""
    runs = fewshot.get("results", {}).get(FEWSHOT_MODEL_METHOD, {})
    protocol = fewshot.get("protocol", {})
    return [
        EvalResult(
            task_type=FEWSHOT_TASK[0], task_name=FEWSHOT_TASK[1], dataset_type=fewshot["benchmark"],
            dataset_name=_fewshot_dataset_name(fewshot), dataset_split="test", metric_type="f1",
            metric_name=f"macro-F1, {shots} labels per class", metric_value=runs[str(shots)]["macro_f1_mean"],
            metric_args={"average": "macro", "labels_per_class": shots,
                         "folds": protocol.get("folds"), "seeds": protocol.get("seeds")},
        )
        for shots in protocol.get("shots", [])
        if _measured(runs.get(str(shots), {}).get("macro_f1_mean"))
    ]


def classification_eval_results(classification: Mapping[str, Any]) -> list[EvalResult]:
    """Model-index entry for a fine-tuned classifier's curve-level macro-F1 (``classification_results.json``
    of :func:`astroco_hf.evaluation.finetune_classifier`, measured on its evaluation curves)."""
    score = classification.get("eval", {}).get("macro_f1")
    if not _measured(score):
        return []
    return [EvalResult(
        task_type=CLASSIFICATION_TASK[0], task_name=CLASSIFICATION_TASK[1], dataset_type="light-curves",
        dataset_name=_classification_dataset(classification), dataset_split="validation", metric_type="f1",
        metric_name="macro-F1, whole light curves", metric_value=score, metric_args={"average": "macro"},
    )]


def _classification_dataset(classification: Mapping[str, Any]) -> str:
    curves = classification.get("eval", {}).get("n_curves")
    return f"evaluation light curves ({_fmt(curves)} curves; classes {', '.join(classification.get('class_names', []))})"


def _classification_section(classification: Mapping[str, Any]) -> str:
    """The fine-tuned classifier's result and settings. The evaluation curves also chose the best epoch,
    so the score is a validation score."""
    hyperparameters = classification.get("training", {}).get("hyperparameters", {})
    return (f"**Fine-tuned classifier** (pipeline task `{CLASSIFICATION_PIPELINE_TASK}`): macro-F1 "
            f"{_fmt(classification.get('eval', {}).get('macro_f1'))} on {_classification_dataset(classification)}, "
            "which also selected the best epoch (a validation score, not a test score).\n\n"
            + _table(("setting", "value"), [(f"`{k}`", _value(v)) for k, v in hyperparameters.items()]))


def _reconstruction_table(test: Mapping[str, Any]) -> str:
    rows = [
        (label, _fmt(test.get(f"rmse{suffix}")), _fmt(test.get(f"r2{suffix}")),
         _fmt(test.get(f"baseline_rmse{suffix}")) if suffix in ("", "_hidden") else "–")
        for label, suffix in (("hidden", "_hidden"), ("randomly replaced", "_random"),
                              ("unchanged", "_unchanged"), ("all probed", ""))
    ]
    table = _table(("probed points", "RMSE", "R²", "window-mean baseline RMSE"), rows)
    return (f"{table}\n\nNoise floor sqrt(mean σ²) over the same probed points: {_fmt(test.get('noise_floor'))}; "
            f"{_fmt(test.get('n_probed'))} probed points, {_fmt(test.get('n_hidden'))} of them hidden.")


def _per_survey_table(per_survey: Mapping[str, Mapping[str, Any]]) -> str:
    if not per_survey:
        return f"Per-survey results: {NOT_MEASURED}."
    rows = [(survey, _fmt(v.get("rmse_hidden")), _fmt(v.get("baseline_rmse_hidden")), _fmt(v.get("noise_floor")),
             _fmt(v.get("n_hidden"))) for survey, v in per_survey.items()]
    return _table(("survey", "RMSE, hidden", "window-mean baseline", "noise floor", "hidden points"), rows)


def _fewshot_section(fewshots: Sequence[Mapping[str, Any]]) -> str:
    if not fewshots:
        return f"Few-shot classification: {NOT_MEASURED} for this checkpoint."
    parts = []
    for fewshot in fewshots:
        protocol = fewshot.get("protocol", {})
        shots = protocol.get("shots", [])
        names = {**FEWSHOT_METHODS, **fewshot.get("methods", {})}  # the file's own method names win
        rows = []
        for method, runs in fewshot.get("results", {}).items():
            cells = []
            for n in shots:
                run = runs.get(str(n), {})
                mean, std = run.get("macro_f1_mean"), run.get("macro_f1_std")
                cells.append(f"{_fmt(mean)} ± {_fmt(std)}" if _measured(mean) and _measured(std) else _fmt(mean))
            rows.append((names.get(method, method), *cells))
        header = ("method", *(f"{n} labels per class" for n in shots))
        notes = [f"- {n} labels per class: not measured ({reason})" for n, reason in fewshot.get("skipped", {}).items()]
        parts.append(
            f"**{_fewshot_dataset_name(fewshot)}**: macro-F1 on the test split, mean ± std over "
            f"{_fmt(protocol.get('folds'))} folds × {_fmt(protocol.get('seeds'))} seeds.\n\n"
            + _table(header, rows) + ("\n\n" + "\n".join(notes) if notes else "")
        )
    return "\n\n".join(parts)


def _value(value: Any) -> str:
    """A recorded setting as the card prints it."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# How the run went, from `eval_results.json["training"]`: key -> label in the card.
_RUN_FACTS: dict[str, str] = {
    "global_step": "optimizer steps", "epochs": "epochs", "wall_time_s": "wall time (s)", "seed": "seed",
    "device": "device", "precision": "precision", "num_processes": "processes",
}


def _training_table(training: Mapping[str, Any]) -> str:
    """The run's hyperparameters, then how long and where it trained. The best checkpoint's path is a
    folder on the training machine, meaningless on the Hub."""
    hyperparameters = {k: v for k, v in training.get("hyperparameters", {}).items() if k != "best_checkpoint"}
    rows = [(f"`{k}`", _value(v)) for k, v in hyperparameters.items()]
    rows += [(label, _value(training[key])) for key, label in _RUN_FACTS.items() if key in training]
    return _table(("setting", "value"), rows) if rows else NOT_MEASURED


def _cleaning_table(report: Mapping[str, Any] | None) -> str:
    """Points and curves in, removed by each rule that removed any, and out, per survey (the
    ``cleaning_report.json`` of :mod:`astroco_hf.data.cleaning`)."""
    if not report:
        return "Cleaning counts were not recorded with this run."
    columns = dict(report.get("surveys", {}))
    if len(columns) != 1:
        columns["total"] = report.get("total", {})
    total = report.get("total", {})
    rows = [("curves in", "curves_in"), ("points in", "points_in")]
    rows += [(f"points removed: {rule}", ("points_removed", rule))
             for rule, count in total.get("points_removed", {}).items() if count]
    rows += [(f"curves removed: {rule}", ("curves_removed", rule))
             for rule, count in total.get("curves_removed", {}).items() if count]
    rows += [("curves with estimated uncertainties", "curves_err_imputed"), ("curves out", "curves_out"),
             ("points out", "points_out")]

    def cell(counts: Mapping[str, Any], key: str | tuple[str, str]) -> str:
        value = counts.get(key[0], {}).get(key[1]) if isinstance(key, tuple) else counts.get(key)
        return _fmt(value)

    return _table(("", *columns), [(label, *(cell(c, key) for c in columns.values())) for label, key in rows])


def _data_summary(data: Mapping[str, Any]) -> str:
    splits = ("train", "validation", "test")
    objects, windows = data.get("objects", {}), data.get("windows", {})
    rows = [(split, _fmt(objects.get(split)), _fmt(windows.get(split))) for split in splits]
    sources = ", ".join(f"`{s}`" for s in data.get("sources", [])) or NOT_MEASURED
    return (f"Sources: {sources}. Surveys: {', '.join(data.get('surveys', [])) or NOT_MEASURED}; "
            f"bands: {', '.join(data.get('bands', [])) or NOT_MEASURED}.\n\n"
            + _table(("split", "objects", "windows"), rows))


def render_model_card(
    *,
    repo_id: str,
    config: Mapping[str, Any],
    eval_results: Mapping[str, Any],
    fewshots: Sequence[Mapping[str, Any]] = (),
    parameters: int,
    package_version: str,
    template: str | Path,
    datasets: Sequence[str] = (),
    base_model: str | None = None,
    cleaning: Mapping[str, Any] | None = None,
    figures: Sequence[str] = (),
    classification: Mapping[str, Any] | None = None,
) -> ModelCard:
    """Render a model card.

    Args:
        repo_id: ``ORG/NAME`` on the Hub; the card's loading snippets use it.
        config: the released ``config.json`` as a dict.
        eval_results: the pretraining run's ``eval_results.json``.
        fewshots: the ``fewshot_results.json`` files to report, one per benchmark.
        parameters: number of parameters of the released model.
        package_version: ``astroco_hf`` version the folder is released with.
        template: Jinja template (see ``model_cards/``).
        datasets: Hub dataset ids the model was trained on (``datasets`` metadata).
        base_model: Hub id of the model this one was fine-tuned from, if any.
        cleaning: the run's ``cleaning_report.json``, if it wrote one.
        figures: the run's figures shipped beside the card (``learning_curve.png``, ``reconstruction.png``).
        classification: a fine-tuned classifier's ``classification_results.json``: its macro-F1 is the
            model-index (the reconstruction metrics describe the pretrained encoder, shown in the prose
            only) and its section opens the evaluation prose.
    """
    if classification is None:
        results = reconstruction_eval_results(eval_results, datasets)
    else:
        results = classification_eval_results(classification)
    for fewshot in fewshots:
        results += fewshot_eval_results(fewshot)
    metric_types = list(dict.fromkeys(r.metric_type for r in results))
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        license=LICENSE,
        library_name="transformers",
        pipeline_tag=FEATURE_EXTRACTION_TASK,  # the pipeline every AstroCo folder declares
        tags=list(CARD_TAGS),
        datasets=list(datasets) or None,
        base_model=base_model,
        metrics=metric_types or None,
        eval_results=results or None,
    )
    test = eval_results.get("test", {})
    unmeasured = [name for key, (_, name) in RECONSTRUCTION_METRICS.items() if not _measured(test.get(key))]
    context = {
        "repo_id": repo_id,
        "package_version": package_version,
        "trained_with_version": eval_results.get("astroco_hf_version", NOT_MEASURED),
        "architecture": {**config, "head_dim": config["d_model"] // config["num_heads"]},
        "architecture_class": (config.get("architectures") or ["AstroCoModel"])[0],
        "parameters": _fmt(parameters),
        "parameters_millions": f"{parameters / 1e6:.2f}M",
        "data_summary": _data_summary(eval_results.get("data", {})),
        "cleaning_table": _cleaning_table(cleaning),
        "learning_curve": "learning_curve.png" if "learning_curve.png" in figures else None,
        "reconstruction_figure": "reconstruction.png" if "reconstruction.png" in figures else None,
        "training_table": _training_table(eval_results.get("training", {})),
        "reconstruction_table": _reconstruction_table(test),
        "per_survey_table": _per_survey_table(eval_results.get("per_survey", {})),
        "fewshot_section": "\n\n".join(
            ([_classification_section(classification)] if classification is not None else []) + [_fewshot_section(fewshots)]),
        "not_measured": unmeasured,
        "not_measured_text": NOT_MEASURED,
    }
    # StrictUndefined: a misspelt variable fails the release instead of leaving a blank in the card.
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    content = environment.from_string(Path(template).read_text(encoding="utf-8")).render(
        card_data=card_data.to_yaml(), base_model=base_model, datasets=list(datasets), **context
    )
    return ModelCard(content)
