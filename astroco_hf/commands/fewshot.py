"""``astroco fewshot``: the paper's frozen-encoder few-shot protocol with the feature reference rows."""

from __future__ import annotations

import argparse
import sys

_PRECISIONS = ("auto", "fp32", "bf16", "int8")  # astroco_hf.precision.INFERENCE_PRECISIONS (not imported: fast --help)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..evaluation.benchmarks import BENCHMARKS

    parser.add_argument("--model", required=True, metavar="DIR", help="saved AstroCo model folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--benchmark", choices=sorted(BENCHMARKS),
                        help="; ".join(f"{b.name}: {b.description} ({'/'.join(b.classes)})" for b in BENCHMARKS.values()))
    source.add_argument("--data", nargs="+", metavar="PATH", help="any labelled light-curve files (label column)")
    parser.add_argument("--data-root", metavar="DIR", help="folder of the shared lightcurves/*.parquet (for --benchmark)")
    parser.add_argument("--classes", nargs="+", help="with --data: classes to keep, in this order (default: all labels)")
    parser.add_argument("--band", help="with --data: keep one band (one light curve per object)")
    parser.add_argument("--survey", nargs="+", help="with --data: keep these surveys")
    parser.add_argument("--shots", nargs="+", type=int, default=[20, 100, 500], help="training objects per class (default: 20 100 500)")
    parser.add_argument("--folds", type=int, default=3, help="folds (default: 3)")
    parser.add_argument("--seeds", type=int, default=3, help="head seeds per fold (default: 3)")
    parser.add_argument("--n-test", type=int, default=None,
                        help="test objects per class, shared by the folds (default: the benchmark's, else 100)")
    parser.add_argument("--n-validation", type=int, default=None, help="validation objects per class (default: max(5, N/10))")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the object splits (default: 0)")
    parser.add_argument("--feature-classifier", nargs="+", choices=("random_forest", "logreg"),
                        default=["random_forest", "logreg"],
                        help="classifiers of the feature rows (default: random_forest logreg)")
    parser.add_argument("--no-handcrafted", action="store_true",
                        help="skip the rows of the seven astropy features (alone and with the light-curve features): "
                             "their periodograms cost ~10x the light-curve features")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder: fewshot_results.json, fewshot_table.md, confusion_matrix.png")
    parser.add_argument("--overwrite", action="store_true", help="replace the result files already in --out")
    parser.add_argument("--batch-size", type=int, default=256, help="windows per forward pass (default: 256)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available, else cpu)")
    parser.add_argument("--precision", choices=_PRECISIONS, default="fp32",
                        help="fp32 (default: the reference numbers); bf16 (autocast; warns where emulated); int8 "
                             "(dynamic quantization of the linear layers); auto: the fastest eager path measured on "
                             "the first batch that keeps cosine >= 0.999 with fp32 (the per-layer means the head "
                             "needs exist in PyTorch only, so no ONNX)")
    parser.add_argument("--bf16", action="store_true", help="deprecated: --precision bf16")
    parser.add_argument("--no-feature-cache", action="store_true", help="recompute the features")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..evaluation import (
        BENCHMARKS,
        AstroCoEmbedder,
        FewShotConfig,
        load_benchmark,
        load_labelled,
        run_fewshot,
        write_outputs,
    )
    from ..evaluation.catalogue import example_batch
    from ..evaluation.fewshot import DEFAULT_FEATURE_CACHE, format_table, output_paths
    from ..outputs import lock_output_dir, refuse_existing
    from ..precision import candidate_paths, choose_inference_path, prepare_for_inference
    from ._checks import check_at_least, check_device, check_model_folder

    if args.bf16:
        print("astroco fewshot: --bf16 is deprecated; use --precision bf16", file=sys.stderr)
        args.precision = "bf16"
    check_at_least(1, shots=args.shots, folds=args.folds, seeds=args.seeds, n_test=args.n_test,
                   n_validation=args.n_validation, batch_size=args.batch_size)  # before any work or output
    device = check_device(args.device)
    check_model_folder(args.model)
    out = Path(args.out)
    for path in output_paths(out).values():  # before any work
        refuse_existing(path, overwrite=args.overwrite)
    with lock_output_dir(out, take_over=args.overwrite):
        if args.benchmark:
            labelled = load_benchmark(args.benchmark, args.data_root)
            n_test = args.n_test or BENCHMARKS[args.benchmark].n_test_per_class
        else:
            labelled = load_labelled(args.data, classes=args.classes, band=args.band, surveys=args.survey)
            n_test = args.n_test or 100
        print(f"{labelled.name}: {len(labelled):,} objects {labelled.class_counts()}")
        config = FewShotConfig(shots=tuple(args.shots), folds=args.folds, seeds=args.seeds, split_seed=args.split_seed,
                               n_validation_per_class=args.n_validation, n_test_per_class=n_test,
                               feature_classifiers=tuple(dict.fromkeys(args.feature_classifier)),
                               handcrafted=not args.no_handcrafted)
        loaded = AstroCoEmbedder.from_pretrained(args.model, device=device)  # with the folder's feature extractor
        path = args.precision
        encoder = loaded.model
        if path != "fp32":
            example = {k: v.to(device) for k, v in
                       example_batch(labelled.table, loaded.window, min(args.batch_size, 64)).items()}
            if path == "auto":  # the head reads per-layer means: eager paths only (ONNX returns pooled outputs)
                calibration = choose_inference_path(
                    encoder, example, candidates=[p for p in candidate_paths(device) if p.backend == "eager"])
                print(calibration.to_text(), file=sys.stderr)
                path = calibration.chosen
            encoder = prepare_for_inference(encoder, path, example)  # warns (once, at the CLI) where bf16 is emulated
        embedder = AstroCoEmbedder(encoder, batch_size=args.batch_size, device=device,
                                   feature_extractor=loaded.feature_extractor, progress=not args.no_progress)
        result = run_fewshot(embedder, labelled, config, model_name=args.model, progress=not args.no_progress,
                             feature_cache_dir=None if args.no_feature_cache else DEFAULT_FEATURE_CACHE,
                             inference_path=path)
        paths = write_outputs(result, out, overwrite=args.overwrite)
    print(format_table(result.record))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
