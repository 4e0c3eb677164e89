"""Reproduce the paper's architectural claims at small scale (`astroco ablate`).

The paper claims that (1) locality-aware convolutions and gating improve representations over a purely
attention-based encoder, (2) a soft scalar mix of all layers beats fixed pooling, and (3) concatenative
fusion of photometry and time beats additive fusion. Each claim maps to config switches; every variant
is pretrained on the same data, object split, step/time budget and seeds, then scored on

* test RMSE on hidden points (masked reconstruction, held-out objects), and
* few-shot macro-F1 of the frozen encoder + linear head (CRTS and EROS-1 by default).

Pooling only shapes the pooled embedding, which masked reconstruction never sees (the scalar-mix
weights are frozen in pretraining), so the pooling variants reuse the pretrained encoder of the
variant with the same other switches: the comparison isolates pooling exactly, at no extra cost.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VARIANTS", "Variant", "AblationConfig", "run_ablation", "format_ablation_table", "assess_claims"]


@dataclass(frozen=True)
class Variant:
    """An encoder variant: AstroCoConfig switches on top of the base architecture."""

    switches: dict[str, Any]
    description: str

    def pretraining_switches(self) -> tuple[tuple[str, Any], ...]:
        """The switches that change pretraining (all but pooling), as a hashable key."""
        return tuple(sorted((k, v) for k, v in self.switches.items() if k != "pooling"))


ASTROMER_LIKE = {"use_conv_module": False, "ffn_type": "mlp", "input_fusion": "additive", "pooling": "last"}

VARIANTS: dict[str, Variant] = {
    "astroco": Variant({}, "the paper's AstroCo: conv module, gated FFN, concat fusion, scalar mix"),
    "no_conv": Variant({"use_conv_module": False}, "without the depthwise-convolution sublayer"),
    "plain_ffn": Variant({"ffn_type": "mlp"}, "two-layer GELU MLP instead of the gated FFN"),
    "additive_fusion": Variant({"input_fusion": "additive"}, "photometry + time embedding summed"),
    "last_layer": Variant({"pooling": "last"}, "pooled embedding from the last block only"),
    "mean_layers": Variant({"pooling": "mean_layers"}, "uniform average of all layers"),
    "astromer_like": Variant(ASTROMER_LIKE, "all switches off: attention + MLP, additive time, last layer"),
}

# Claim -> (the paper's variant, the variants it should beat).
CLAIMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "(1) convolutions and gating beat pure attention": ("astroco", ("astromer_like", "no_conv", "plain_ffn")),
    "(2) scalar mix beats fixed pooling": ("astroco", ("last_layer", "mean_layers")),
    "(3) concat fusion beats additive fusion": ("astroco", ("additive_fusion",)),
}


@dataclass
class AblationConfig:
    """What to compare and with which budget. Defaults fit this 2-core CPU in about half an hour."""

    data: list[str] = field(default_factory=list)  # pretraining sources; [] = every parquet file of the data root
    output_dir: str = "runs/ablation"
    variants: tuple[str, ...] = tuple(VARIANTS)
    seeds: tuple[int, ...] = (0, 1)
    split_seed: int = 0  # one object split for every variant and seed
    preset: str = "astroco-tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    max_steps: int = 250
    max_time_minutes: float = 3.0  # per pretraining run; the step budget normally ends it first
    batch_size: int = 64
    learning_rate: float = 1e-3
    benchmarks: tuple[str, ...] = ("crts", "eros1")
    shots: tuple[int, ...] = (20, 100)
    folds: int = 3
    head_seeds: int = 1  # linear-head seeds per fold (the encoder seeds are `seeds`)
    validation_fraction: float = 0.05
    test_fraction: float = 0.1
    bands: list[str] | None = None
    data_root: str | None = None  # folder of the light-curve *.parquet files; default $ASTROCO_DATA_ROOT

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"unknown ablation variant(s) {unknown}; choose from {sorted(VARIANTS)}")
        if len(self.seeds) < 1:
            raise ValueError("give at least one seed")


def _default_sources(data_root: str | None) -> list[str]:
    from .data import data_root as resolve_data_root

    root = resolve_data_root(data_root)
    files = sorted(root.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no light-curve parquet files in {root}")
    return [str(path) for path in files]


def _pretrain_variant(config: AblationConfig, switches: dict[str, Any], seed: int, out: Path,
                      sources: list[str]) -> dict[str, Any]:
    """Pretrain one (variant, seed) unless a finished run is already in `out`; return eval_results."""
    # The function from its module: `from .training import pretrain` yields the submodule
    # astroco_hf.training.pretrain once that submodule has been imported.
    from .training.pretrain import pretrain
    from .training.recipes import resolve_arguments

    results_file = out / "eval_results.json"
    if results_file.is_file():
        return json.loads(results_file.read_text())
    args = resolve_arguments(
        config.preset,
        data=sources,
        bands=config.bands,
        output_dir=str(out),
        seed=seed,
        split_seed=config.split_seed,
        max_steps=config.max_steps,
        max_time_minutes=config.max_time_minutes,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        model_overrides={**config.model_overrides, **switches},
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        # One validation pass at the end of the budget: per-step evaluations would cost more than the
        # training itself at this size, and every variant gets the same number of updates.
        eval_strategy="steps",
        eval_steps=config.max_steps,
        patience=None,
        overwrite=True,
        plot_windows=2,
    )
    return pretrain(args, verbose=False).eval_results


def run_ablation(config: AblationConfig, progress: bool = True) -> dict[str, Any]:
    """Pretrain and evaluate every variant and seed; write `ablation.json`, `ablation.md`, `ablation.png`."""
    from .evaluation.benchmarks import BENCHMARKS, load_benchmark
    from .evaluation.embed import AstroCoEmbedder
    from .evaluation.fewshot import FewShotConfig, run_fewshot
    from .modeling_astroco import AstroCoModel

    started = time.monotonic()
    out_dir = Path(config.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = config.data or _default_sources(config.data_root)
    labelled = {name: load_benchmark(name, config.data_root) for name in config.benchmarks}
    fewshot_config = FewShotConfig(shots=config.shots, folds=config.folds, seeds=config.head_seeds,
                                   split_seed=config.split_seed)

    per_seed: dict[str, list[dict[str, Any]]] = {name: [] for name in config.variants}
    for seed in config.seeds:
        for name in config.variants:
            variant = VARIANTS[name]
            pretrain_switches = dict(variant.pretraining_switches())
            run_name = "-".join(f"{k}={v}" for k, v in sorted(pretrain_switches.items())) or "astroco"
            run_dir = out_dir / "pretraining" / f"{run_name}-seed{seed}"
            if progress:
                print(f"[ablation] {name} seed {seed}: pretraining in {run_dir}", flush=True)
            results = _pretrain_variant(config, pretrain_switches, seed, run_dir, sources)
            encoder = AstroCoModel.from_pretrained(str(run_dir), pooling=variant.switches.get("pooling", "scalar_mix"))
            embedder = AstroCoEmbedder(encoder, batch_size=256, progress=False)
            row: dict[str, Any] = {
                "seed": seed,
                "run_dir": str(run_dir),
                "parameters": sum(p.numel() for p in encoder.parameters()),  # encoder as evaluated
                "test_rmse_hidden": results["test"]["rmse_hidden"],
                "baseline_rmse_hidden": results["test"]["baseline_rmse_hidden"],
                "training_steps": results["training"]["global_step"],
                "wall_time_s": results["training"]["wall_time_s"],
                "fewshot": {},
            }
            for bench, data in labelled.items():
                # Each benchmark's own test size, as `astroco fewshot` uses (EROS-1's Mira class is too
                # small for 100 train + 100 test objects).
                bench_config = replace(fewshot_config, n_test_per_class=BENCHMARKS[bench].n_test_per_class)
                record = run_fewshot(embedder, data, bench_config, model_name=f"{name}-seed{seed}",
                                     progress=False).record
                row["fewshot"][bench] = {shots: record["results"]["astroco"][shots]["macro_f1_mean"]
                                         for shots in record["results"]["astroco"]}
            per_seed[name].append(row)
            if progress:
                scores = ", ".join(f"{b} {s}-shot {v:.3f}" for b, d in row["fewshot"].items() for s, v in d.items())
                print(f"[ablation] {name} seed {seed}: test RMSE hidden {row['test_rmse_hidden']:.4f}; {scores}",
                      flush=True)
            # Rewritten after every run, so an interrupted comparison still leaves what it measured.
            report = _write_report(config, sources, per_seed, out_dir, time.monotonic() - started)
    return report


def _write_report(config: AblationConfig, sources: list[str], per_seed: dict[str, list[dict[str, Any]]],
                  out_dir: Path, wall_time_s: float) -> dict[str, Any]:
    done = {name: rows for name, rows in per_seed.items() if rows}
    summary = {name: _summarise(rows) for name, rows in done.items()}
    report = {
        "config": asdict(config),
        "sources": sources,
        "variants": {name: {"switches": VARIANTS[name].switches, "description": VARIANTS[name].description}
                     for name in config.variants},
        "complete": all(len(rows) == len(config.seeds) for rows in per_seed.values()),
        "per_seed": per_seed,
        "summary": summary,
        "claims": assess_claims(summary),
        "wall_time_s": wall_time_s,
    }
    (out_dir / "ablation.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "ablation.md").write_text(format_ablation_table(report) + "\n")
    plot_ablation(report, out_dir / "ablation.png")
    return report


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0, "n": len(array)}


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    fewshot = {
        bench: {shots: _mean_std([row["fewshot"][bench][shots] for row in rows]) for shots in rows[0]["fewshot"][bench]}
        for bench in rows[0]["fewshot"]
    }
    return {
        "parameters": rows[0]["parameters"],
        "test_rmse_hidden": _mean_std([row["test_rmse_hidden"] for row in rows]),
        "baseline_rmse_hidden": _mean_std([row["baseline_rmse_hidden"] for row in rows]),
        "fewshot": fewshot,
    }


def _metrics(summary: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    """(name, mean, std, higher_is_better) for every metric of one variant's summary."""
    rows = [("test RMSE (hidden)", summary["test_rmse_hidden"]["mean"], summary["test_rmse_hidden"]["std"], False)]
    for bench, by_shots in summary["fewshot"].items():
        for shots, stats in by_shots.items():
            rows.append((f"{bench} {shots}-shot macro-F1", stats["mean"], stats["std"], True))
    return rows


def assess_claims(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each claim and metric: did the paper's variant beat each alternative by more than the noise?

    A difference counts as real only when it exceeds the larger of the two seed standard deviations;
    with two seeds this is a rough screen, stated as such, not a significance test.
    """
    verdicts: dict[str, dict[str, Any]] = {}
    for claim, (ours, others) in CLAIMS.items():
        if ours not in summary or not any(o in summary for o in others):
            continue
        comparisons = []
        wins = losses = ties = 0
        for other in (o for o in others if o in summary):
            for (metric, mean_a, std_a, higher), (_, mean_b, std_b, _) in zip(
                    _metrics(summary[ours]), _metrics(summary[other]), strict=True):
                gain = (mean_a - mean_b) if higher else (mean_b - mean_a)
                noise = max(std_a, std_b)
                outcome = "better" if gain > noise else "worse" if -gain > noise else "within noise"
                wins += outcome == "better"
                losses += outcome == "worse"
                ties += outcome == "within noise"
                comparisons.append({"against": other, "metric": metric, "ours": mean_a, "theirs": mean_b,
                                    "gain": gain, "noise": noise, "outcome": outcome})
        verdict = ("held" if wins > losses and wins >= ties else "reversed" if losses > wins and losses >= ties
                   else "not supported at this scale (mostly within noise or mixed)")
        verdicts[claim] = {"verdict": verdict, "better": wins, "worse": losses, "within_noise": ties,
                           "comparisons": comparisons}
    return verdicts


def format_ablation_table(report: dict[str, Any]) -> str:
    """Markdown: one row per variant (encoder parameters as evaluated), mean ± std over seeds, then the
    claim verdicts."""
    names = list(report["summary"])
    metric_names = [m[0] for m in _metrics(report["summary"][names[0]])]
    lines = ["| variant | parameters | seeds | " + " | ".join(metric_names) + " |",
             "|---|---:|---:|" + "---:|" * len(metric_names)]
    for name in names:
        cells = [f"{mean:.4f} ± {std:.4f}" if "RMSE" in metric else f"{mean:.3f} ± {std:.3f}"
                 for metric, mean, std, _ in _metrics(report["summary"][name])]
        seeds = report["summary"][name]["test_rmse_hidden"]["n"]
        lines.append(f"| {name} | {report['summary'][name]['parameters']:,} | {seeds} | " + " | ".join(cells) + " |")
    baseline = report["summary"][names[0]]["baseline_rmse_hidden"]["mean"]
    lines += ["", f"Mean ± sample std over encoder seeds (of {list(report['config']['seeds'])}; "
              f"{'all done' if report['complete'] else 'INCOMPLETE run: the seeds column says how many'}); "
              f"window-mean baseline RMSE on the same hidden points: {baseline:.4f}.", ""]
    for claim, verdict in report["claims"].items():
        lines.append(f"- {claim}: **{verdict['verdict']}** ({verdict['better']} better, {verdict['worse']} worse, "
                     f"{verdict['within_noise']} within noise, over variants × metrics)")
    return "\n".join(lines)


def plot_ablation(report: dict[str, Any], path: Path) -> Path:
    """Bar chart per metric (mean ± std over seeds), one bar per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["summary"])
    metrics = _metrics(report["summary"][names[0]])
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    colors = ["C3" if name == "astroco" else "C0" for name in names]
    for index, (metric, _, _, higher) in enumerate(metrics):
        ax = axes[index // columns][index % columns]
        values = [_metrics(report["summary"][n])[index] for n in names]
        ax.bar(range(len(names)), [v[1] for v in values], yerr=[v[2] for v in values], color=colors, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{metric} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        low = min(v[1] - v[2] for v in values)
        high = max(v[1] + v[2] for v in values)
        ax.set_ylim(max(0.0, low - 0.15 * (high - low + 1e-9)), high + 0.15 * (high - low + 1e-9))
    for index in range(len(metrics), rows * columns):
        axes[index // columns][index % columns].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
