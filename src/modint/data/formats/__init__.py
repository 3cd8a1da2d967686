"""Real benchmarks from local files, as Samples of the right family.

``load_path(path, split, limit, **options)`` detects the format from the layout or the extension
(or takes ``format=``), reads one split (``split="all"``: every split), and returns the samples.
A malformed row never stops a load: it becomes a sample that fails ``validate_sample`` with one
line naming the file and row (see ``common``), so ``modint diagnose`` records it as an error and
``modint data inspect`` lists it. Images are never decoded while loading.

A benchmark string may carry options after ``?``: ``data/ScienceQA?scienceqa_imageless=skip`` or
``data/x.json?format=published&family=image_heavy``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from modint.data.formats import classfolder, hf, parquet, records, textmc, vqa
from modint.data.formats.common import LoadReport, row_error, spread
from modint.data.sample import Sample

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Format:
    name: str
    families: str
    layout: str
    detect: Callable[[Path], bool]
    splits: Callable[[Path, dict], list[str]]
    load: Callable[[Path, str, dict, LoadReport], list[Sample]]
    options: dict[str, str] = field(default_factory=dict)


# In detection order: layouts with telling names or columns first, names-only guesses (MMLU's
# <subject>_test.csv) after them, the class-folder tree (any folder of image folders) last.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("scienceqa", "vqa + text_heavy", "problems.json, pid_splits.json, images/<split>/<pid>/image.png",
           vqa.detect_scienceqa, vqa.splits_scienceqa, vqa.load_scienceqa, vqa.SCIENCEQA_OPTIONS),
    Format("mmbench", "vqa", "MMBench_DEV_EN.tsv (index, question, hint, A-D, answer, category, base64 image)",
           vqa.detect_mmbench, vqa.splits_mmbench, vqa.load_mmbench),
    Format("seedbench", "vqa", "SEED-Bench.json + SEED-Bench-image/<data_id>",
           vqa.detect_seed, vqa.splits_seed, vqa.load_seed, vqa.SEED_OPTIONS),
    Format("published", "any", "the authors' multiple-choice JSON/JSONL",
           records.detect_published, records.splits_published, records.load_published, records.PUBLISHED_OPTIONS),
    Format("generic", "any", "JSONL/JSON/CSV/TSV with id, family, question, options, answer, image, ...",
           records.detect_generic, records.splits_generic, records.load_generic, records.GENERIC_OPTIONS),
    Format("openbookqa", "text_heavy", "Data/Main/{train,dev,test}.jsonl",
           textmc.detect_obqa, textmc.splits_obqa, textmc.load_obqa),
    Format("mmlu", "text_heavy", "data/{dev,val,test}/<subject>_<split>.csv (header-less)",
           textmc.detect_mmlu, textmc.splits_mmlu, textmc.load_mmlu),
    Format("hf", "vqa", "Hugging Face save_to_disk folder or Parquet shards of ScienceQA-IMG, MMBench, SEED-Bench "
           "or MMStar (lmms-lab layouts)", hf.detect, hf.splits, hf.load),
    Format("parquet", "text_heavy", "Hugging Face Parquet: MMLU (question, choices, answer) or OpenBookQA",
           parquet.detect, parquet.splits, parquet.load),
    Format("miniimagenet", "image_heavy", "images/ + {train,val,test}.csv (filename,label)",
           classfolder.detect_mini, classfolder.splits_mini, classfolder.load_mini, classfolder.OPTIONS),
    Format("classfolder", "image_heavy", "<root>/<class>/<image> (Caltech-101's 101_ObjectCategories), or "
           "<root>/{train,val,test}/<class>/<image>",
           classfolder.detect_tree, classfolder.splits_tree, classfolder.load_tree, classfolder.OPTIONS),
)}
ALIASES = {"caltech101": "classfolder", "caltech-101": "classfolder", "imagefolder": "classfolder",
           "mini-imagenet": "miniimagenet", "seed": "seedbench", "seed-bench": "seedbench", "obqa": "openbookqa",
           "jsonl": "generic", "csv": "generic", "tsv": "generic", "mc-json": "published",
           "huggingface": "hf", "arrow": "hf"}
COMMON_OPTIONS = {"format": "the format, when detection is not wanted"}


class LoadedSamples(list):
    """A list of samples that also says where they came from: ``format``, ``splits`` loaded,
    ``skipped`` (reason -> count of records left out on purpose) and ``warnings``."""

    format: str = ""
    splits: list[str]
    skipped: dict[str, int]
    warnings: list[str]

    @property
    def errors(self) -> list[str]:
        return [e for e in (row_error(s) for s in self) if e]


def _error(message: str) -> Exception:
    from modint.data.sample import BenchmarkError

    return BenchmarkError(message)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``path?key=value&key=value`` -> (path, options). A path that exists as written wins."""
    if Path(spec).exists() or "?" not in spec:
        return spec, {}
    path, _, query = spec.partition("?")
    options = {}
    for part in query.split("&"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise _error(f"benchmark option {part!r} is not key=value (in {spec!r})")
        options[key.strip()] = value.strip()
    return path, options


def get_format(name: str) -> Format:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in FORMATS:
        raise _error(f"unknown format {name!r} (known: {', '.join(FORMATS)})")
    return FORMATS[key]


def detect(path: Path) -> Format:
    if not path.exists():
        raise _error(f"no such file or directory: {path}")
    if path.is_file():
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:  # say so, rather than that no format matched
            raise _error(f"{path}: cannot read ({exc.strerror or exc})") from None
    for fmt in FORMATS.values():
        try:
            if fmt.detect(path):
                return fmt
        except OSError:
            continue
    kind = "folder" if path.is_dir() else "file"
    raise _error(f"cannot tell the format of the {kind} {path}: pass format=... (known: {', '.join(FORMATS)})")


def resolve(path: str | Path, options: dict[str, Any]) -> tuple[Path, Format, dict[str, Any]]:
    """(path, format, the format's options), checking the option names."""
    path = Path(path).expanduser()
    options = {k: v for k, v in options.items() if v is not None}
    fmt = get_format(str(options.pop("format"))) if options.get("format") else detect(path)
    if not path.exists():
        raise _error(f"no such file or directory: {path}")
    unknown = sorted(set(options) - set(fmt.options))
    if unknown:
        known = ", ".join(["format", *fmt.options]) or "format"
        raise _error(f"format {fmt.name!r} takes no option {', '.join(unknown)} (options: {known})")
    return path, fmt, options


def available_splits(path: str | Path, **options: Any) -> list[str]:
    path, fmt, options = resolve(path, options)
    return fmt.splits(path, options)


def load_path(path: str | Path, split: str = "test", limit: int | None = None, **options: Any) -> LoadedSamples:
    """The samples of one split of the dataset at ``path``.

    A dataset without named splits (one file, a class-folder tree) is one split and loads whatever
    ``split`` says; ``split="all"`` loads every split. ``limit`` takes the first samples in turn
    from each family (file order within a family)."""
    path, fmt, options = resolve(path, options)
    splits = fmt.splits(path, options)
    if not splits:
        raise _error(f"{path}: no data found for format {fmt.name!r} (expected {fmt.layout})")
    if split == "all" or len(splits) == 1:
        chosen = list(splits)
    elif split in splits:
        chosen = [split]
    else:
        raise _error(f"{path} has no split {split!r} (splits: {', '.join(splits)}, or all)")
    report = LoadReport()
    samples: list[Sample] = []
    earlier: set[str] = set()
    for name in chosen:
        loaded = fmt.load(path, name, options, report)
        for s in loaded:
            if s.id in earlier:  # overlapping splits (ScienceQA's trainval, minival, ...)
                report.skip("sample already loaded from an earlier split")
            else:
                samples.append(s)
        earlier |= {s.id for s in loaded}
    out = LoadedSamples(spread(samples, limit))
    out.format, out.splits, out.skipped = fmt.name, chosen, dict(report.skipped)
    out.warnings = list(report.warnings)
    for message in out.warnings:
        log.warning("%s", message)
    return out
