"""Speed: a plain PyTorch reference of AstroCo, the timing harness behind ``astroco benchmark``, an
analytic FLOP count for MFU, and the one-shot GPU check (``scripts/gpu_check.sh``)."""
