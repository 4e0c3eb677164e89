#!/usr/bin/env python
"""Thin wrapper: ``python scripts/pretrain.py ARGS`` is ``astroco pretrain ARGS``.

Also the entry point for multi-process launchers that take a script path, e.g.
``torchrun --nproc_per_node 4 scripts/pretrain.py --preset astroco-s --data DIR``.
"""

import sys

from astroco_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
