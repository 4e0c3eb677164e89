"""Sub-commands of the ``astroco`` CLI (see :mod:`astroco_hf.cli`)."""
