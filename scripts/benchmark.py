#!/usr/bin/env python
"""Thin wrapper: ``python scripts/benchmark.py ARGS`` is ``astroco benchmark ARGS``."""

import sys

from astroco_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
