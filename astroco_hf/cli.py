"""The ``astroco`` command line: one sub-command per module in :mod:`astroco_hf.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
heavy imports happen inside ``run`` so that ``astroco --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-command modules, in the order they appear in ``astroco --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "astroco_hf.commands.info",
    "astroco_hf.commands.benchmark",
    "astroco_hf.commands.pretrain",
    "astroco_hf.commands.prepare",
    "astroco_hf.commands.release",
    "astroco_hf.commands.ablate",
    "astroco_hf.commands.embed",
    "astroco_hf.commands.fewshot",
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="astroco",
        description="AstroCo: a Conformer-style self-supervised encoder for irregular stellar light curves.",
    )
    parser.add_argument("--version", action="version", version=f"astroco_hf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
