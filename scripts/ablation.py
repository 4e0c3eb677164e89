#!/usr/bin/env python
"""Thin wrapper: `python scripts/ablation.py ...` is `astroco ablate ...`."""

import sys

from astroco_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["ablate", *sys.argv[1:]]))
