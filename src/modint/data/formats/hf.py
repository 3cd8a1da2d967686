"""Hugging Face copies of the VQA benchmarks: a ``datasets.save_to_disk`` folder (Arrow files) or
a folder of Parquet shards, in the lmms-lab layouts of ScienceQA-IMG, MMBench, SEED-Bench and
MMStar. Images are Hugging Face ``Image`` values ({bytes, path}) or paths.

Fields, as the dataset cards and lmms-eval's task utils read them (lmms_eval/tasks/...):
- ScienceQA (scienceqa/utils.py): question, hint, choices (list), answer (index), image; subject,
  topic, category, skill, grade.
- MMBench (mmbench/en_utils.py): index, question, hint, A-D, answer (letter), category,
  l2-category, image.
- SEED-Bench (seedbench/utils.py): question_id, question, choice_a-d, answer (letter),
  data_type (image/video), question_type_id, image (a list of images).
- MMStar (mmstar/utils.py): index, question (the options follow "Options:" as "A: ..., B: ..."),
  answer (letter), category, l2_category, image.
Reading needs pyarrow (``pip install modint[hf]``); ``datasets`` itself is not needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from modint.data.formats.common import (Base64Image, LazyImage, LoadReport, RowError, Where, clean_text, guarded,
                                        image_file, make_sample)
from modint.data.formats.parquet import split_of
from modint.data.sample import OPTION_LETTERS, TEXT_HEAVY, VQA, Sample

# SEED-Bench's question_type ids of image questions (SEED-Bench.json, "question_type").
SEED_TYPES = {1: "Scene Understanding", 2: "Instance Identity", 3: "Instance Attributes", 4: "Instance Location",
              5: "Instances Counting", 6: "Spatial Relation", 7: "Instance Interaction", 8: "Visual Reasoning",
              9: "Text Understanding"}


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        from modint.data.sample import BenchmarkError

        raise BenchmarkError("reading Hugging Face datasets needs pyarrow (pip install pyarrow)") from None
    return pyarrow


def layout_of(columns: set[str]) -> str | None:
    if {"question_id", "choice_a", "answer"} <= columns:
        return "seedbench"
    if {"index", "question", "A", "B", "answer"} <= columns:
        return "mmbench"
    if {"question", "choices", "answer", "hint", "image"} <= columns:  # MMLU has the first three too
        return "scienceqa"
    if {"index", "question", "answer", "image", "category", "l2_category"} <= columns:
        return "mmstar"
    return None


# ---------------------------------------------------------------- files and splits

def _is_saved(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or
                              ((path / "state.json").is_file() and any(path.glob("*.arrow"))))


def _saved_splits(path: Path) -> dict[str, list[Path]]:
    if (path / "dataset_dict.json").is_file():
        names = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits") or []
        return {n: sorted((path / n).glob("*.arrow")) for n in names if (path / n).is_dir()}
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    files = [path / f["filename"] for f in state.get("_data_files", [])] or sorted(path.glob("*.arrow"))
    return {str(state.get("_split") or "test"): files}


def _parquet_splits(path: Path) -> dict[str, list[Path]]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*.parquet") if p.is_file())
    out: dict[str, list[Path]] = {}
    for f in files:
        out.setdefault(split_of(f), []).append(f)
    return out


def _by_split(path: Path) -> dict[str, list[Path]]:
    return _saved_splits(path) if _is_saved(path) else _parquet_splits(path)


def _columns(file: Path) -> set[str]:
    pa = _pyarrow()
    if file.suffix == ".parquet":
        return set(pa.parquet.read_schema(file).names)
    return set(_open_arrow(file).schema.names)


def _open_arrow(file: Path):
    pa = _pyarrow()
    try:
        return pa.ipc.open_stream(pa.memory_map(str(file)))  # what datasets writes
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(str(file)))


def detect(path: Path) -> bool:
    try:
        files = [f for fs in _by_split(path).values() for f in fs]
    except (OSError, ValueError):
        return False
    if not files or not (_is_saved(path) or path.suffix == ".parquet" or path.is_dir()):
        return False
    try:
        return layout_of(_columns(files[0])) is not None
    except Exception:  # no pyarrow, or not a readable file: another format's business
        return False


def splits(path: Path, options: dict) -> list[str]:
    return list(_by_split(path))


def read_rows(file: Path) -> Iterator[dict[str, Any]]:
    pa = _pyarrow()
    if file.suffix == ".parquet":
        for batch in pa.parquet.ParquetFile(file).iter_batches(batch_size=256):
            yield from batch.to_pylist()
        return
    for batch in _open_arrow(file):
        yield from batch.to_pylist()


# ---------------------------------------------------------------- images

class BytesImage(LazyImage):
    """An image held as encoded bytes (a Hugging Face Image value)."""

    def __init__(self, data: bytes, where: Where | str):
        self.data, self.where = data, str(where)

    def raw_bytes(self) -> bytes:
        return self.data

    def __repr__(self) -> str:
        return f"BytesImage({len(self.data)} bytes, {self.where!r})"


def _image(value: Any, root: Path, where: Where) -> LazyImage | None:
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("bytes"):
            return BytesImage(bytes(value["bytes"]), where)
        if value.get("path"):
            return image_file(root, value["path"], where)
        return None
    if isinstance(value, (bytes, bytearray)):
        return BytesImage(bytes(value), where)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if (root / text).is_file() or re.search(r"\.(png|jpe?g|gif|bmp|webp)$", text, re.I):
            return image_file(root, text, where)
        return Base64Image(text, where)
    raise RowError(f"image must be an Image value, bytes or a path, got {type(value).__name__}")


# ---------------------------------------------------------------- rows

def _scienceqa(rec: dict, where: Where, ident: str, split: str, root: Path) -> Sample:
    choices = rec.get("choices")
    if not isinstance(choices, (list, tuple)):
        raise RowError("choices must be a list")
    image = _image(rec.get("image"), root, where)
    hint = clean_text(rec.get("hint"), "hint")
    question = clean_text(rec.get("question"), "question", required=True)
    meta = {k: rec[k] for k in ("subject", "topic", "category", "skill", "grade") if isinstance(rec.get(k), str)
            and rec[k]}
    meta.update({"task": "scienceqa", "split": split})
    return make_sample(where, id=ident, family=VQA if image is not None else TEXT_HEAVY,
                       question=f"{hint}\n{question}" if hint else question, options=list(choices),
                       answer=rec.get("answer"), accept=("index",), image=image, meta=meta)


def _mmbench(rec: dict, where: Where, ident: str, split: str, root: Path) -> Sample:
    letters = [L for L in OPTION_LETTERS if L in rec and clean_text(rec.get(L), L) not in ("", "nan")]
    hint = clean_text(rec.get("hint"), "hint")
    hint = "" if hint.lower() == "nan" else hint
    question = clean_text(rec.get("question"), "question", required=True)
    image = _image(rec.get("image"), root, where)
    if image is None:
        raise RowError("missing image")
    meta = {k: str(rec[k]).strip() for k in ("category", "l2-category", "source") if rec.get(k)}
    meta.update({"task": meta.get("category", "mmbench"), "split": split})
    return make_sample(where, id=ident, family=VQA, question=f"{hint}\n{question}" if hint else question,
                       options=[rec[L] for L in letters], labels=letters, answer=rec.get("answer"),
                       accept=("letter",), image=image, meta=meta)


def _seedbench(rec: dict, where: Where, ident: str, split: str, root: Path) -> Sample | None:
    images = rec.get("image")
    if isinstance(images, (list, tuple)):
        if len(images) > 1:
            raise RowError(f"{len(images)} images; multi-image questions are not supported")
        images = images[0] if images else None
    image = _image(images, root, where)
    if image is None:
        raise RowError("missing image")
    choices = [rec.get(f"choice_{c}") for c in "abcdefgh" if f"choice_{c}" in rec and rec.get(f"choice_{c}")]
    type_id = rec.get("question_type_id")
    task = SEED_TYPES.get(int(type_id), f"type {type_id}") if isinstance(type_id, (int, float)) else "seedbench"
    return make_sample(where, id=ident, family=VQA, question=rec.get("question"), options=choices,
                       answer=rec.get("answer"), accept=("letter",), image=image, meta={"task": task, "split": split})


_OPTIONS_AT = re.compile(r"\bOptions?\s*:\s*", re.I)


def mmstar_options(text: str) -> tuple[str, list[str], list[str]]:
    """MMStar's question text -> (stem, letters, option texts): the options follow the last
    "Options:" as "A: ..., B: ..., C: ...". RowError when fewer than two are found."""
    starts = list(_OPTIONS_AT.finditer(text))
    if not starts:
        raise RowError("no 'Options:' in the question")
    stem, body = text[:starts[-1].start()].strip(), text[starts[-1].end():]
    marks, pos = [], 0
    for letter in OPTION_LETTERS:
        m = re.compile(rf"(?:^|(?<=[\s,;])){letter}\s*[:.)]\s*").search(body, pos)
        if m is None:
            break
        marks.append((letter, m.start(), m.end()))
        pos = m.end()
    if len(marks) < 2:
        raise RowError("fewer than 2 options after 'Options:'")
    texts = [body[end:(marks[i + 1][1] if i + 1 < len(marks) else len(body))].strip().rstrip(",;").strip()
             for i, (_, _, end) in enumerate(marks)]
    return stem, [m[0] for m in marks], texts


def _mmstar(rec: dict, where: Where, ident: str, split: str, root: Path) -> Sample:
    stem, letters, texts = mmstar_options(clean_text(rec.get("question"), "question", required=True))
    image = _image(rec.get("image"), root, where)
    if image is None:
        raise RowError("missing image")
    meta = {"task": str(rec.get("category") or "mmstar"), "split": split}
    if rec.get("l2_category"):
        meta["l2_category"] = str(rec["l2_category"])
    return make_sample(where, id=ident, family=VQA, question=stem, options=texts, labels=letters,
                       answer=rec.get("answer"), accept=("letter",), image=image, meta=meta)


ROWS: dict[str, Callable[..., Sample | None]] = {"scienceqa": _scienceqa, "mmbench": _mmbench,
                                                 "seedbench": _seedbench, "mmstar": _mmstar}
ID_KEYS = {"scienceqa": None, "mmbench": "index", "seedbench": "question_id", "mmstar": "index"}


def load(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    root = path if path.is_dir() else path.parent
    out: list[Sample] = []
    position = -1  # the row's 0-based place in the split: lmms-eval's doc_id
    for file in _by_split(path)[split]:
        layout = layout_of(_columns(file))
        if layout is None:
            from modint.data.sample import BenchmarkError

            raise BenchmarkError(f"{file.name}: not a ScienceQA, MMBench, SEED-Bench or MMStar layout")
        display = file.name if path.is_file() else str(file.relative_to(root))
        build = ROWS[layout]
        for n, rec in enumerate(read_rows(file), 1):
            position += 1
            key = ID_KEYS[layout]
            raw_id = rec.get(key) if key else None
            ident = str(raw_id) if raw_id not in (None, "") else f"{split}-{len(out) + 1}"
            where = Where(display, n, f"{key} {raw_id}" if key and raw_id not in (None, "") else None)
            if layout == "seedbench" and rec.get("data_type", "image") not in ("image", None):
                report.skip(f"{rec.get('data_type')} question (only image questions are loaded)")
                continue
            sample = guarded(where, ident, VQA, lambda: build(rec, where, ident, split, root))
            out.append(sample.replace(meta={**sample.meta, "doc_id": position}))
    return out
