"""Thin wrapper: ``python scripts/embed.py ARGS`` is ``astroco embed ARGS``."""

import sys

from astroco_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["embed", *sys.argv[1:]]))
