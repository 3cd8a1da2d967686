"""Benchmarks by name or by path: the bundled ``mini``, and real benchmarks from local files
(``modint.data.formats``), alone or several at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

# BenchmarkError lives beside SampleError; importing it from here still works.
from modint.data.sample import BenchmarkError, Sample


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
    """The samples of ``name``/``split`` (the first ``limit`` if given, spread over families).

    ``name`` is a registered benchmark, a path to a dataset folder or file (format detected, or
    ``format=``; options may follow ``?``: ``data/ScienceQA?scienceqa_imageless=skip``), or several
    of these separated by commas, whose ids are then prefixed with a label (``mmbench:241``) to
    stay unique. ``options`` go to the loader (every loader of a comma-separated list).
    """
    if limit is not None and limit < 1:
        raise BenchmarkError(f"--limit must be at least 1, got {limit}")
    parts = _parts(name)
    if len(parts) == 1:
        return _load_one(parts[0], split, limit, options)
    from modint.data.formats.common import spread

    labels: dict[str, int] = {}
    samples: list[Sample] = []
    for part in parts:
        label = _label(part)
        labels[label] = labels.get(label, 0) + 1
        if labels[label] > 1:
            label = f"{label}-{labels[label]}"
        samples += [s.replace(id=f"{label}:{s.id}", meta={**s.meta, "benchmark": label})
                    for s in _load_one(part, split, None, options)]
    return spread(samples, limit, key=lambda s: (s.meta["benchmark"], s.family))


def _parts(name: str) -> list[str]:
    """One benchmark, or several separated by commas (a path that exists as written is one)."""
    from pathlib import Path

    if name in BENCHMARKS or Path(name.partition("?")[0]).exists() or "," not in name:
        return [name]
    parts = [p.strip() for p in name.split(",") if p.strip()]
    if not parts:
        raise BenchmarkError(f"no benchmark in {name!r}")
    return parts


def _label(part: str) -> str:
    from pathlib import Path

    if part in BENCHMARKS:
        return part
    path = Path(part.partition("?")[0])
    return (path.stem if path.is_file() else path.name) or "data"


def _load_one(name: str, split: str, limit: int | None, options: dict[str, Any]) -> list[Sample]:
    if name in BENCHMARKS:
        bench = BENCHMARKS[name]
        if split not in bench.splits:
            raise BenchmarkError(f"benchmark {name!r} has no split {split!r} (splits: {', '.join(bench.splits)})")
        return bench.load(split, limit, **options)
    from pathlib import Path

    from modint.data.formats import load_path, parse_spec

    path, inline = parse_spec(name)
    if not Path(path).expanduser().exists():
        looks_like_path = any(sep in path for sep in ("/", "\\")) or Path(path).suffix != ""
        if looks_like_path:
            raise BenchmarkError(f"benchmark path {path!r} does not exist")
        raise BenchmarkError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)}; "
                             f"or give the path of a dataset folder or file)")
    return load_path(path, split=split, limit=limit, **{**options, **inline})
