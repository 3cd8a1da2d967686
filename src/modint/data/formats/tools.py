"""``modint data inspect`` and ``modint data convert``: what a dataset holds, and the same samples
in the generic JSONL schema."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from modint.data.formats import LoadedSamples, available_splits, load_path, parse_spec, resolve
from modint.data.formats.common import ImageFile, LazyImage, row_error
from modint.data.sample import Sample, SampleError, load_image, validate_sample

INTERNAL_META = {"error", "source", "split", "facts", "where"}


def _load_splits(path: str, split: str | None, options: dict[str, Any]) -> tuple[str, list[tuple[str, LoadedSamples]]]:
    path, inline = parse_spec(path)
    options = {**options, **inline}
    names = [split] if split else available_splits(path, **options)
    loaded = []
    for name in names:
        samples = load_path(path, split=name, **options)
        loaded.append((name if len(samples.splits) != 1 else samples.splits[0], samples))
    fmt = loaded[0][1].format if loaded else resolve(path, dict(options))[1].name
    return fmt, loaded


def inspect_dataset(path: str, split: str | None = None, images: bool = True, max_messages: int = 10,
                    **options: Any) -> dict[str, Any]:
    """Counts per split and family, the option-count histogram, and every problem: rows that could
    not be read, samples that fail validation, images that do not decode (each decoded once).

    A sample is counted in the first split that holds it: derived splits that repeat others
    (ScienceQA's ``trainval``, ``minitrain``, ...; OpenBookQA's ``Additional``) add only what is
    new, and the repeats are reported under ``skipped``."""
    fmt, loaded = _load_splits(path, split, options)
    counted: set[str] = set()
    warnings: list[str] = []
    per_split: dict[str, dict[str, dict[str, int]]] = {}
    n_options: Counter = Counter()
    messages: list[str] = []
    errors = 0
    skipped: Counter = Counter()
    decoded = 0
    for name, samples in loaded:
        skipped.update(samples.skipped)
        warnings += [w for w in samples.warnings if w not in warnings]
        table: dict[str, dict[str, int]] = {}
        seen: set[str] = set()
        repeats = 0
        for s in samples:
            if s.id in counted and s.id not in seen:
                repeats += 1
                continue
            cell = table.setdefault(s.family, {"samples": 0, "errors": 0, "with_image": 0})
            cell["samples"] += 1
            problem = row_error(s)
            if problem is None:
                try:
                    if s.id in seen:
                        raise SampleError(f"{s.meta.get('where') or 'sample'}: duplicate id {s.id!r} (only the "
                                          f"first is used)")
                    validate_sample(s)
                    if s.image is not None:
                        cell["with_image"] += 1
                        if images:
                            image = load_image(s)
                            decoded += 1
                            if image is not None:
                                image.close()
                except SampleError as exc:
                    problem = str(exc)
            seen.add(s.id)
            if problem is None:
                n_options[len(s.options)] += 1
                continue
            cell["errors"] += 1
            errors += 1
            if len(messages) < max_messages:
                messages.append(problem)
        counted |= seen
        if table:
            per_split[name] = table
        if repeats:
            skipped[f"sample already counted in an earlier split ({name})"] += repeats
    return {"path": str(path), "format": fmt, "splits": per_split,
            "samples": sum(c["samples"] for t in per_split.values() for c in t.values()),
            "options_histogram": {str(k): v for k, v in sorted(n_options.items())},
            "errors": errors, "error_messages": messages, "skipped": dict(skipped),
            "images_decoded": decoded, "warnings": warnings}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text).strip("._") or "image"


_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"), (b"II*\x00", ".tif"),
          (b"MM\x00*", ".tif"))


def _extension(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), None)


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _image_reference(s: Sample, folder: Path, used: set[str]) -> str | None:
    """An absolute path for the sample's image; embedded images are written into ``folder``."""
    src = s.image
    if src is None:
        return None
    if isinstance(src, (str, Path)):
        return os.path.abspath(src)
    if isinstance(src, ImageFile):
        return src.path
    stem = _safe(s.id)
    name = stem
    k = 1
    while name in used:
        k += 1
        name = f"{stem}-{k}"
    used.add(name)
    folder.mkdir(parents=True, exist_ok=True)
    data = src.raw_bytes() if isinstance(src, LazyImage) else None
    ext = _extension(data) if data is not None else None
    if data is not None and ext is not None:
        target = folder / f"{name}{ext}"
        target.write_bytes(data)
    else:
        image = load_image(s)
        target = folder / f"{name}.png"
        image.save(target)
    return str(target.resolve())


def convert_dataset(path: str, out_file: str | Path, split: str | None = None, max_messages: int = 10,
                    **options: Any) -> dict[str, Any]:
    """Write the dataset (every split, or ``split``) as generic JSONL; images by absolute path,
    embedded ones written to ``<out stem>_images/`` beside it. Rows with errors are left out and
    reported."""
    out_file = Path(out_file)
    folder = out_file.with_name(out_file.stem + "_images")
    fmt, loaded = _load_splits(path, split, options)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    written = images_written = errors = duplicates = 0
    messages: list[str] = []
    used: set[str] = set()
    ids: set[str] = set()
    tmp = out_file.with_name(out_file.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for name, samples in loaded:
            for s in samples:
                if s.id in ids and row_error(s) is None:  # overlapping splits: written with the first
                    duplicates += 1
                    continue
                try:
                    problem = row_error(s)
                    if problem is not None:
                        raise SampleError(problem)
                    validate_sample(s)
                    if s.image is not None:  # a row whose image does not decode is left out, as promised
                        decoded = load_image(s)
                        decoded.close()
                    embedded = s.image is not None and not isinstance(s.image, (str, Path, ImageFile))
                    image = _image_reference(s, folder, used)
                except SampleError as exc:
                    errors += 1
                    if len(messages) < max_messages:
                        messages.append(str(exc))
                    continue
                images_written += embedded
                record: dict[str, Any] = {"id": s.id, "family": s.family, "question": s.question,
                                          "options": list(s.options), "answer": s.answer, "image": image,
                                          "split": s.meta.get("split", name)}
                if s.context:
                    record["context"] = s.context
                if s.meta.get("facts"):
                    record["facts"] = s.meta["facts"]
                meta = {k: v for k, v in s.meta.items() if k not in INTERNAL_META and _json_safe(v)}
                if meta:
                    record["meta"] = meta
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                ids.add(s.id)
                written += 1
    tmp.replace(out_file)
    return {"path": str(path), "format": fmt, "out": str(out_file), "written": written,
            "images_written": images_written, "images_folder": str(folder) if images_written else None,
            "duplicates": duplicates, "errors": errors, "error_messages": messages,
            "warnings": list(dict.fromkeys(w for _, samples in loaded for w in samples.warnings))}
