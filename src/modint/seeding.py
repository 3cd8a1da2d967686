"""Stable seeding: every random choice derives from explicit parts, never from global state.

Python's ``hash`` is salted per process, so seeds are derived with SHA-256 instead; the same
(seed, sample id, condition) gives the same stream on every machine and in every run.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 63-bit integer seed that depends only on the string forms of ``parts``."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def rng_for(*parts: object) -> np.random.Generator:
    """A NumPy generator seeded from ``parts`` (e.g. seed, sample id, condition name)."""
    return np.random.default_rng(derive_seed(*parts))
