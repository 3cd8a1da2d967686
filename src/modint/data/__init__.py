"""Samples, the bundled benchmark and benchmark loaders (no torch, no models here)."""

from modint.data.sample import FAMILIES, Sample, SampleError, load_image, validate_sample

__all__ = ["FAMILIES", "Sample", "SampleError", "load_image", "validate_sample"]
