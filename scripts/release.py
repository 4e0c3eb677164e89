#!/usr/bin/env python
"""Thin wrapper: ``python scripts/release.py ARGS`` is ``astroco release ARGS``."""

import sys

from astroco_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["release", *sys.argv[1:]]))
