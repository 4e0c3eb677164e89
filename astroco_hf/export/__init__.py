"""Exports of AstroCo models to serving formats (ONNX, and the ``light_curve.embed`` adapter)."""
