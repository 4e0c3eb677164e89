"""Thin wrapper: ``python scripts/fewshot.py ARGS`` is ``astroco fewshot ARGS``."""

import sys

from astroco_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["fewshot", *sys.argv[1:]]))
