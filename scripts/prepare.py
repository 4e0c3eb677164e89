"""Thin wrapper: ``python scripts/prepare.py ARGS`` is ``astroco prepare ARGS`` (see ``--help``)."""

import sys

from astroco_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
