"""Counted cleaning of raw light curves.

Every rule is configurable and every removed point or curve is counted, per rule and per survey, so
that ``points_in == points_out + sum(points_removed)`` and ``curves_in == curves_out +
sum(curves_removed)`` hold exactly (:meth:`CleaningReport.check`). Rules run in this order:

1. curve filters on the input: ``band_not_selected``, ``label_dropped``, and ``missing_errors``
   under the ``drop`` policy (the curve's points are counted under the same rule);
2. point rules, each counting only points still present: ``non_finite`` (time or magnitude NaN/inf;
   an error NaN/inf in a curve that has errors elsewhere), ``sentinel`` (survey missing-value codes in
   magnitude or error), ``mag_out_of_range`` (per-survey magnitude limits), ``err_out_of_range``
   (keep ``min_err < err < max_err``);
3. sorting by time (counted as ``curves_sorted``, nothing removed) and ``duplicate_time``: points
   closer in time than ``duplicate_tolerance`` to the previous one form a run (default 1e-4 d =
   8.6 s, shorter than any exposure of these surveys; the MACHO Cepheid-field dumps repeat every
   epoch 0.3 s apart with the same magnitude). Of a run, the point with the smallest error is kept
   (``duplicates="min_err"``, NaN errors rank last, ties keep the earliest) or the earliest
   (``"first"``);
4. ``too_short``: curves left with fewer than ``min_points`` points;
5. curves without errors (``mag_err`` all NaN) get the ``missing_errors`` policy:

   * ``"estimate"`` (default): a constant per-curve noise level from the robust point-to-point
     scatter, sigma = 1.4826 * MAD(diff(m)) / sqrt(2) over time-ordered magnitudes. Differencing
     neighbours removes variability slower than the cadence, the MAD ignores outliers, and sqrt(2)
     converts the scatter of a difference to that of one point; for variability on the cadence
     time scale it is an upper bound. Curves whose estimate is not inside
     ``(min_err, max_err)`` are dropped as ``missing_errors``. ``err_imputed`` is set.
   * ``"drop"``: such curves are removed (step 1).
   * ``"constant"``: ``mag_err = constant_err`` everywhere; ``err_imputed`` is set.

No NaN reaches the output: times, magnitudes and errors are finite in every kept point.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schema import CLEAN_SCHEMA, validate_raw_table

CURVE_FILTERS: tuple[str, ...] = ("band_not_selected", "label_dropped", "missing_errors")
POINT_RULES: tuple[str, ...] = ("non_finite", "sentinel", "mag_out_of_range", "err_out_of_range", "duplicate_time")
# Every reason a point can be removed, in the order the rules run.
REMOVAL_RULES: tuple[str, ...] = (*CURVE_FILTERS, *POINT_RULES, "too_short")

MAD_TO_SIGMA = 1.4826  # MAD of a Gaussian times this is its standard deviation


@dataclass
class CleaningConfig:
    """What :func:`clean_lightcurves` removes. Defaults keep ``0 < err < 1`` mag, >= 5 points."""

    mag_sentinels: tuple[float, ...] = (-99.0, -99.99, -99.999, 99.99, 99.999)
    err_sentinels: tuple[float, ...] = (-99.0, 9.999, 29.999, 99.99, 99.999)
    # Sentinels are matched within this tolerance: float32 cannot hold 99.999 exactly.
    sentinel_atol: float = 5e-4
    min_err: float = 0.0
    max_err: float = 1.0
    # Per-survey magnitude limits (inclusive). MACHO magnitudes are instrumental and negative: a
    # positive one is not a star (in the shared data, error columns stored as magnitudes).
    mag_ranges: dict[str, tuple[float, float]] = field(default_factory=lambda: {"MACHO": (-30.0, 0.0)})
    duplicates: Literal["min_err", "first"] = "min_err"
    duplicate_tolerance: float = 1e-4  # days; 0 merges exactly equal times only
    min_points: int = 5
    missing_errors: Literal["estimate", "drop", "constant"] = "estimate"
    constant_err: float | None = None
    bands: tuple[str, ...] | None = None
    drop_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.duplicates not in ("min_err", "first"):
            raise ValueError(f"duplicates must be 'min_err' or 'first', got {self.duplicates!r}")
        if self.missing_errors not in ("estimate", "drop", "constant"):
            raise ValueError(f"missing_errors must be 'estimate', 'drop' or 'constant', got {self.missing_errors!r}")
        if self.missing_errors == "constant" and not (
            self.constant_err is not None and self.min_err < self.constant_err < self.max_err
        ):
            raise ValueError(
                f"missing_errors='constant' needs min_err < constant_err < max_err, got {self.constant_err}"
            )
        if not self.min_err < self.max_err:
            raise ValueError(f"need min_err < max_err, got {self.min_err} and {self.max_err}")
        if self.duplicate_tolerance < 0:
            raise ValueError(f"duplicate_tolerance must be >= 0, got {self.duplicate_tolerance}")
        if self.min_points < 1:
            raise ValueError(f"min_points must be >= 1, got {self.min_points}")


@dataclass
class SurveyCounts:
    """Counts of one survey (or the total)."""

    curves_in: int = 0
    points_in: int = 0
    curves_out: int = 0
    points_out: int = 0
    curves_removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*CURVE_FILTERS, "too_short"), 0))
    points_removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REMOVAL_RULES, 0))
    curves_sorted: int = 0
    curves_err_imputed: int = 0

    def __add__(self, other: SurveyCounts) -> SurveyCounts:
        add = lambda a, b: {k: a.get(k, 0) + b.get(k, 0) for k in a | b}  # noqa: E731
        return SurveyCounts(
            self.curves_in + other.curves_in,
            self.points_in + other.points_in,
            self.curves_out + other.curves_out,
            self.points_out + other.points_out,
            add(self.curves_removed, other.curves_removed),
            add(self.points_removed, other.points_removed),
            self.curves_sorted + other.curves_sorted,
            self.curves_err_imputed + other.curves_err_imputed,
        )


@dataclass
class CleaningReport:
    """Per-survey counts of a cleaning run, with its config. Renders as text, markdown or a dict."""

    config: CleaningConfig
    surveys: dict[str, SurveyCounts]

    @property
    def total(self) -> SurveyCounts:
        return sum(self.surveys.values(), SurveyCounts())

    @classmethod
    def combine(cls, reports: list[CleaningReport]) -> CleaningReport:
        """Sum reports of runs with one config over disjoint parts of the data, survey by survey."""
        surveys: dict[str, SurveyCounts] = {}
        for report in reports:
            for name, counts in report.surveys.items():
                surveys[name] = surveys.get(name, SurveyCounts()) + counts
        return cls(reports[0].config, dict(sorted(surveys.items())))

    def check(self) -> None:
        """Assert that every input point and curve is either kept or counted under a rule."""
        for name, counts in {**self.surveys, "total": self.total}.items():
            removed_points = sum(counts.points_removed.values())
            removed_curves = sum(counts.curves_removed.values())
            if (
                counts.points_in != counts.points_out + removed_points
                or counts.curves_in != counts.curves_out + removed_curves
            ):
                raise AssertionError(f"cleaning counts of {name} do not add up: {counts}")

    def to_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "surveys": {name: asdict(counts) for name, counts in self.surveys.items()},
            "total": asdict(self.total),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def _rows(self) -> tuple[list[str], list[tuple[str, list[int]]]]:
        columns = {**self.surveys, "total": self.total}
        rows: list[tuple[str, Callable[[SurveyCounts], int]]] = [
            ("curves in", lambda c: c.curves_in),
            ("points in", lambda c: c.points_in),
        ]
        rows += [(f"points removed: {rule}", lambda c, r=rule: c.points_removed[r]) for rule in REMOVAL_RULES]
        rows += [
            (f"curves removed: {rule}", lambda c, r=rule: c.curves_removed[r]) for rule in self.total.curves_removed
        ]
        rows += [
            ("curves sorted by time", lambda c: c.curves_sorted),
            ("curves with imputed errors", lambda c: c.curves_err_imputed),
            ("curves out", lambda c: c.curves_out),
            ("points out", lambda c: c.points_out),
        ]
        return list(columns), [(label, [get(c) for c in columns.values()]) for label, get in rows]

    def to_markdown(self) -> str:
        header, rows = self._rows()
        lines = ["| | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
        lines += [f"| {label} | " + " | ".join(f"{v:,}" for v in values) + " |" for label, values in rows]
        return "\n".join(lines)

    def to_text(self) -> str:
        header, rows = self._rows()
        width = max(len(label) for label, _ in rows)
        cells = [[f"{v:,}" for v in values] for _, values in rows]
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
        lines = [" " * width + "  " + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
        for (label, _), row in zip(rows, cells, strict=True):
            lines.append(label.ljust(width) + "  " + "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: curves in and out, and every rule that removed something (for error messages)."""
        total = self.total
        removed = [f"{rule} {count:,}" for rule, count in total.curves_removed.items() if count]
        points = [f"{rule} {count:,}" for rule, count in total.points_removed.items() if count]
        return (f"{total.curves_in:,} curves in, {total.curves_out:,} kept"
                + (f"; curves removed: {', '.join(removed)}" if removed else "")
                + (f"; points removed: {', '.join(points)}" if points else ""))

    def __str__(self) -> str:
        return self.to_text()


def _near_any(values: np.ndarray, targets: tuple[float, ...], atol: float) -> np.ndarray:
    hit = np.zeros(values.shape, dtype=bool)
    for target in targets:
        hit |= np.abs(values - target) <= atol
    return hit


def _segment_median(values: np.ndarray, segments: np.ndarray, n_segments: int) -> np.ndarray:
    """Median of ``values`` per segment id (NaN for empty segments), shape ``(n_segments,)``."""
    order = np.lexsort((values, segments))
    sorted_values = values[order]
    counts = np.bincount(segments, minlength=n_segments)
    starts = np.cumsum(counts) - counts
    median = np.full(n_segments, np.nan)
    has = counts > 0
    low = sorted_values[(starts + (counts - 1) // 2)[has]]
    high = sorted_values[(starts + counts // 2)[has]]
    median[has] = 0.5 * (low + high)
    return median


def robust_noise(mag: np.ndarray, segments: np.ndarray, n_segments: int) -> np.ndarray:
    """Per-curve noise level 1.4826 * MAD(diff(m)) / sqrt(2), shape ``(n_segments,)``.

    ``mag`` must be time-ordered within each segment; ``segments`` is non-decreasing. Curves with
    fewer than two points get NaN."""
    same = segments[1:] == segments[:-1]
    diffs = np.diff(mag.astype(np.float64))[same]
    diff_segments = segments[1:][same]
    center = _segment_median(diffs, diff_segments, n_segments)
    mad = _segment_median(np.abs(diffs - center[diff_segments]), diff_segments, n_segments)
    return MAD_TO_SIGMA * mad / np.sqrt(2.0)


class _Tally:
    """Accumulates per-survey removal counts from boolean masks."""

    def __init__(self, survey_of_curve: np.ndarray, n_surveys: int) -> None:
        self.survey_of_curve = survey_of_curve
        self.n_surveys = n_surveys
        self.points = {rule: np.zeros(n_surveys, np.int64) for rule in REMOVAL_RULES}
        self.curves = {rule: np.zeros(n_surveys, np.int64) for rule in (*CURVE_FILTERS, "too_short")}

    def by_survey(self, curves: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        counts = np.bincount(self.survey_of_curve[curves], weights=weights, minlength=self.n_surveys)
        return counts.astype(np.int64)

    def points_removed(self, rule: str, segments_of_removed: np.ndarray) -> None:
        self.points[rule] += self.by_survey(segments_of_removed)

    def curves_removed(self, rule: str, curves: np.ndarray, points_left: np.ndarray) -> None:
        self.curves[rule] += self.by_survey(curves)
        self.points[rule] += self.by_survey(curves, points_left[curves])


def clean_lightcurves(table: pa.Table, config: CleaningConfig | None = None) -> tuple[pa.Table, CleaningReport]:
    """Apply the cleaning rules (module docstring) to a raw table.

    Args:
        table: light curves in :data:`~astroco_hf.data.schema.RAW_SCHEMA`, one row per (object, band).
        config: the rules; ``CleaningConfig()`` by default.

    Returns:
        The kept curves in :data:`~astroco_hf.data.schema.CLEAN_SCHEMA` (input row order, times
        sorted, ``n_obs`` and ``err_imputed`` added) and the :class:`CleaningReport`.
    """
    config = config or CleaningConfig()
    lengths = validate_raw_table(table)
    n_curves = table.num_rows
    surveys, survey_of_curve = np.unique(
        np.asarray(table["survey"].to_pylist(), dtype=object).astype(str), return_inverse=True
    )
    tally = _Tally(survey_of_curve, len(surveys))

    def flat(name: str, dtype: type) -> np.ndarray:
        values = pc.list_flatten(table[name]).to_numpy()  # nulls inside a list become NaN
        return np.asarray(values, dtype=dtype)

    time, mag, err = flat("time", np.float64), flat("mag", np.float32), flat("mag_err", np.float32)
    segments = np.repeat(np.arange(n_curves), lengths)
    finite_err = np.isfinite(err)
    has_errors = np.bincount(segments, weights=finite_err, minlength=n_curves) > 0

    # 1. Curve filters on the input.
    keep_curve = np.ones(n_curves, dtype=bool)

    def drop_curves(rule: str, mask: np.ndarray, points_left: np.ndarray) -> None:
        curves = np.flatnonzero(mask & keep_curve)
        tally.curves_removed(rule, curves, points_left)
        keep_curve[curves] = False

    column = lambda name: np.asarray(table[name].to_pylist(), dtype=object)  # noqa: E731
    if config.bands is not None:
        drop_curves("band_not_selected", ~np.isin(column("band"), list(config.bands)), lengths)
    if config.drop_labels:
        drop_curves("label_dropped", np.isin(column("label"), list(config.drop_labels)), lengths)
    if config.missing_errors == "drop":
        drop_curves("missing_errors", ~has_errors, lengths)

    # 2. Point rules.
    keep = keep_curve[segments]

    def drop_points(rule: str, bad: np.ndarray) -> None:
        removed = bad & keep
        tally.points_removed(rule, segments[removed])
        keep[removed] = False

    curve_has_errors = has_errors[segments]
    drop_points("non_finite", ~np.isfinite(time) | ~np.isfinite(mag) | (~finite_err & curve_has_errors))
    drop_points(
        "sentinel",
        _near_any(mag, config.mag_sentinels, config.sentinel_atol)
        | _near_any(err, config.err_sentinels, config.sentinel_atol),
    )
    if config.mag_ranges:
        low = np.array([config.mag_ranges.get(s, (-np.inf, np.inf))[0] for s in surveys])[survey_of_curve][segments]
        high = np.array([config.mag_ranges.get(s, (-np.inf, np.inf))[1] for s in surveys])[survey_of_curve][segments]
        drop_points("mag_out_of_range", (mag < low) | (mag > high))
    drop_points("err_out_of_range", curve_has_errors & ((err <= config.min_err) | (err >= config.max_err)))

    time, mag, err, segments = time[keep], mag[keep], err[keep], segments[keep]

    # 3. Sort by time within each curve (stable: equal times keep their input order), then duplicates.
    same_curve = segments[1:] == segments[:-1]
    backwards = same_curve & (np.diff(time) < 0)
    sorted_curves = np.unique(segments[1:][backwards])
    if sorted_curves.size:
        order = np.lexsort((time, segments))
        time, mag, err, segments = time[order], mag[order], err[order], segments[order]
    duplicate = (segments[1:] == segments[:-1]) & (np.diff(time) <= config.duplicate_tolerance)
    if duplicate.any():
        if config.duplicates == "first":
            keep = np.concatenate([[True], ~duplicate])
        else:
            run = np.concatenate([[0], np.cumsum(~duplicate)])
            in_run = np.zeros(len(time), dtype=bool)
            in_run[1:] |= duplicate
            in_run[:-1] |= duplicate
            members = np.flatnonzero(in_run)
            by_error = members[np.lexsort((np.where(np.isnan(err[members]), np.inf, err[members]), run[members]))]
            best = by_error[np.concatenate([[True], run[by_error][1:] != run[by_error][:-1]])]
            keep = ~in_run
            keep[best] = True
        tally.points_removed("duplicate_time", segments[~keep])
        time, mag, err, segments = time[keep], mag[keep], err[keep], segments[keep]

    # 4. Too short.
    points_left = np.bincount(segments, minlength=n_curves)
    drop_curves("too_short", points_left < config.min_points, points_left)

    # 5. Missing-error policy.
    imputed = keep_curve & ~has_errors
    if imputed.any():
        if config.missing_errors == "estimate":
            subset = imputed[segments]
            sigma = robust_noise(mag[subset], segments[subset], n_curves)
            unusable = imputed & ~((sigma > config.min_err) & (sigma < config.max_err))
            drop_curves("missing_errors", unusable, points_left)
            imputed &= keep_curve
        else:  # "constant"; "drop" removed these curves in step 1
            sigma = np.full(n_curves, config.constant_err)
        fill = imputed[segments]
        err[fill] = sigma[segments[fill]]

    keep = keep_curve[segments]
    time, mag, err, segments = time[keep], mag[keep], err[keep], segments[keep]
    kept_rows = np.flatnonzero(keep_curve)
    n_obs = np.bincount(segments, minlength=n_curves)[kept_rows]
    offsets = pa.array(np.concatenate([[0], np.cumsum(n_obs)]).astype(np.int32))
    columns = {
        name: table[name].take(kept_rows)
        for name in ("object_id", "survey", "band", "label", "source", "orig_label", "period")
    }
    columns |= {
        "time": pa.ListArray.from_arrays(offsets, pa.array(time)),
        "mag": pa.ListArray.from_arrays(offsets, pa.array(mag, pa.float32())),
        "mag_err": pa.ListArray.from_arrays(offsets, pa.array(err, pa.float32())),
        "n_obs": pa.array(n_obs.astype(np.int32)),
        "err_imputed": pa.array(imputed[kept_rows]),
    }
    clean = pa.Table.from_arrays([columns[name] for name in CLEAN_SCHEMA.names], schema=CLEAN_SCHEMA)

    def survey_counts(index: int) -> SurveyCounts:
        mine = survey_of_curve == index
        return SurveyCounts(
            curves_in=int(mine.sum()),
            points_in=int(lengths[mine].sum()),
            curves_out=int((mine & keep_curve).sum()),
            points_out=int(n_obs[mine[kept_rows]].sum()),
            curves_removed={rule: int(counts[index]) for rule, counts in tally.curves.items()},
            points_removed={rule: int(counts[index]) for rule, counts in tally.points.items()},
            curves_sorted=int(np.isin(sorted_curves, np.flatnonzero(mine)).sum()),
            curves_err_imputed=int((imputed & mine).sum()),
        )

    report = CleaningReport(config, {str(name): survey_counts(i) for i, name in enumerate(surveys)})
    report.check()
    return clean, report
