"""Benchmarks by name. Loaders for real benchmark formats register here too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from modint.data.sample import Sample


class BenchmarkError(ValueError):
    """An unknown benchmark or split, or a benchmark that cannot be read."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    splits: tuple[str, ...]
    load: Callable[..., list[Sample]]


def _mini(split: str, limit: int | None, **options: Any) -> list[Sample]:
    from modint.data.mini import load_mini

    return load_mini(split=split, limit=limit, **options)


BENCHMARKS: dict[str, Benchmark] = {
    "mini": Benchmark("mini", "bundled, procedurally generated: shapes/colours/digits (image-heavy), "
                              "arithmetic/comparison/knowledge (text-heavy), counting/colour/position (VQA)",
                      ("train", "val", "test"), _mini),
}


def list_benchmarks() -> list[Benchmark]:
    return list(BENCHMARKS.values())


def load_benchmark(name: str, split: str = "test", limit: int | None = None, **options: Any) -> list[Sample]:
    """The samples of ``name``/``split`` (the first ``limit`` if given)."""
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)})")
    bench = BENCHMARKS[name]
    if split not in bench.splits:
        raise BenchmarkError(f"benchmark {name!r} has no split {split!r} (splits: {', '.join(bench.splits)})")
    if limit is not None and limit < 1:
        raise BenchmarkError(f"--limit must be at least 1, got {limit}")
    return bench.load(split, limit, **options)
