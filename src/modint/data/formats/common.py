"""What every benchmark loader shares: where a row is, row errors, answers, text, images.

Reading the files row by row is in ``textfiles``.

A malformed row never stops a load. It becomes a *bad-row sample*: a Sample with no options whose
``meta["load_error"]`` holds the row's one-line message, which ``validate_sample`` raises as a
``SampleError``
("mmbench.tsv row 7: answer 'E' is not among the options (A-D)") and the diagnosis engine turns it
into error records like any other bad sample. ``row_error(sample)`` tells such samples apart
without raising. Images are never decoded at load time: a sample holds a ``LazyImage`` (a
zero-argument callable) whose errors name the file and row as well.
"""

from __future__ import annotations

import base64
import binascii
import csv
import errno
import io
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image

from modint.data.sample import FAMILIES, OPTION_LETTERS, Sample, SampleError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
SPLIT_WORDS = ("train", "validation", "val", "dev", "test")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # base64 images are far longer than csv's 128 KiB default


class RowError(ValueError):
    """A malformed row; the message says what is wrong, the caller adds the file and row."""


@dataclass(frozen=True)
class Where:
    """A row's location as users read it: ``file`` relative to the dataset root, 1-based ``row``,
    and an optional ``key`` (the row's own id, when it has one)."""

    file: str
    row: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        text = self.file if self.row is None else f"{self.file} row {self.row}"
        return f"{text} ({self.key})" if self.key else text


def bad_row(where: Where | str, sample_id: str, family: str, message: str) -> Sample:
    full = _BAD_BYTES.sub("\ufffd", f"{where}: {message}")
    sample_id = _BAD_BYTES.sub("\ufffd", str(sample_id))
    family = family if family in FAMILIES else "text_heavy"
    return Sample(id=str(sample_id), family=family, question="", options=(), answer=None,
                  meta={"load_error": full, "source": str(getattr(where, "file", where))})


def row_error(sample: Sample) -> str | None:
    """The load error of a bad-row sample, None for a readable one."""
    return sample.meta.get("load_error") if isinstance(sample.meta, dict) else None


def guarded(where: Where, sample_id: str, family: str, build: Callable[[], Sample | None]) -> Sample | None:
    """``build()``, or a bad-row sample when it raises RowError. The sample keeps its row in
    ``meta["where"]`` for later messages (a duplicate id)."""
    try:
        sample = build()
    except RowError as exc:
        return bad_row(where, sample_id, family, str(exc))
    if sample is not None and isinstance(sample.meta, dict):
        sample.meta.setdefault("where", str(where))
    return sample


@dataclass
class LoadReport:
    """What a load left out on purpose (e.g. video questions of SEED-Bench): reason -> count;
    and warnings about data that loads but may not be what the user expects."""

    skipped: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


# ---------------------------------------------------------------- text and answers

_BAD_BYTES = re.compile("[\udc80-\udcff]")  # what surrogateescape turns undecodable bytes into


def clean_text(value: Any, what: str, required: bool = False) -> str:
    """A field as stripped text; RowError for bytes that were not UTF-8 or a missing required field."""
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        text = ""
    elif isinstance(value, (dict, list)):
        raise RowError(f"{what} must be text, got a JSON {'object' if isinstance(value, dict) else 'list'}")
    else:
        text = str(value).strip()
    if _BAD_BYTES.search(text):
        raise RowError(f"non-UTF-8 text in {what}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate written as a JSON escape
        raise RowError(f"invalid Unicode text in {what}") from None
    if required and not text:
        raise RowError(f"missing {what}")
    return text


def letter_range(labels: Sequence[str]) -> str:
    """``A, B`` / ``A-D`` for consecutive letters, the labels themselves otherwise."""
    labels = list(labels)
    if len(labels) > 2 and labels == list(OPTION_LETTERS[:len(labels)]):
        return f"A-{labels[-1]}"
    return ", ".join(labels)


def resolve_answer(value: Any, options: Sequence[str], labels: Sequence[str] | None = None,
                   accept: Sequence[str] = ("index", "letter", "text")) -> int:
    """The index of the answer among ``options``.

    ``accept``: ``index`` (a JSON integer, or digits in text, 0-based), ``letter`` (A, B, ... or the
    row's own ``labels``), ``text`` (an option's exact text, tried first for strings).
    """
    n = len(options)
    labels = list(labels) if labels is not None else list(OPTION_LETTERS[:n])
    if value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip()):
        raise RowError("missing answer")
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise RowError(f"answer must be an index, a letter or an option's text, got {json.dumps(value)[:40]}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if "index" not in accept:
            raise RowError(f"answer {value!r} is not a letter")
        if not 0 <= value < n:
            raise RowError(f"answer index {value} is not among the {n} options")
        return value
    text = clean_text(value, "answer")
    if "text" in accept:
        hits = [i for i, o in enumerate(options) if o == text]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise RowError(f"answer {text!r} matches {len(hits)} options")
    if "letter" in accept:
        for candidate in (text, text.upper()):
            if candidate in labels:
                return labels.index(candidate)
        if len(text) == 1 and text.upper() in OPTION_LETTERS:
            raise RowError(f"answer {text!r} is not among the options ({letter_range(labels)})")
    if "index" in accept and re.fullmatch(r"-?\d+", text):
        index = int(text)
        if not 0 <= index < n:
            raise RowError(f"answer index {index} is not among the {n} options")
        return index
    raise RowError(f"answer {text[:60]!r} is not among the options")


def make_sample(where: Where, *, id: str, family: str, question: Any, options: Sequence[Any], answer: Any,
                labels: Sequence[str] | None = None, accept: Sequence[str] = ("index", "letter", "text"),
                image: Any = None, meta: dict | None = None, context: Any = "") -> Sample:
    """A checked Sample, or RowError naming what is wrong with the row."""
    if family not in FAMILIES:
        raise RowError(f"unknown family {family!r} (expected {', '.join(FAMILIES)})")
    question = clean_text(question, "question", required=True)
    texts = [clean_text(o, f"option {OPTION_LETTERS[i] if i < 26 else i + 1}") for i, o in enumerate(options)]
    if len(texts) < 2:
        raise RowError(f"needs at least 2 options, has {len(texts)}")
    if len(texts) > len(OPTION_LETTERS):
        raise RowError(f"at most {len(OPTION_LETTERS)} options supported, has {len(texts)}")
    for i, t in enumerate(texts):
        if not t:
            raise RowError(f"option {labels[i] if labels else OPTION_LETTERS[i]} is empty")
    index = resolve_answer(answer, texts, labels, accept)
    meta = dict(meta or {})
    for key, value in meta.items():
        if isinstance(value, str):
            clean_text(value, key)
    ident = clean_text(id, "id", required=True)
    facts = meta.get("facts")
    if facts is not None:
        if not isinstance(facts, dict):
            raise RowError("facts must be an object {option text: misleading sentence}")
        meta["facts"] = {clean_text(k, "facts"): clean_text(v, "facts") for k, v in facts.items()}
        if not meta["facts"]:
            del meta["facts"]
    return Sample(id=ident, family=family, question=question, options=tuple(texts), answer=index,
                  image=image, meta=meta, context=clean_text(context, "context"))


def humanise(name: str) -> str:
    """A class folder's name as an option: underscores to spaces, lower case."""
    return " ".join(name.replace("_", " ").split()).lower()


def split_from_name(name: str) -> str:
    """The split a single file holds, from its name: ``MMBench_DEV_EN.tsv`` -> ``dev``."""
    stem = Path(name).name.split(".")[0]
    words = re.split(r"[^a-z]+", stem.lower())
    for word in SPLIT_WORDS:
        if word in words:
            return word
    return stem


# ---------------------------------------------------------------- images

def _unreadable(where: str, exc: Exception) -> SampleError:
    from PIL import UnidentifiedImageError

    detail = "not a known image format" if isinstance(exc, UnidentifiedImageError) else f"{type(exc).__name__}: {exc}"
    return SampleError(f"{where}: unreadable image ({detail})")


class LazyImage:
    """An image decoded only when called (memory stays flat); errors name the row."""

    where: str

    def raw_bytes(self) -> bytes:
        raise NotImplementedError

    def __call__(self) -> Image.Image:
        data = self.raw_bytes()
        try:
            with Image.open(io.BytesIO(data)) as opened:
                return opened.convert("RGB")
        except Exception as exc:
            raise _unreadable(self.where, exc) from None


class ImageFile(LazyImage):
    """An image file; ``os.fspath`` gives its path."""

    def __init__(self, path: str | Path, where: Where | str):
        self.path = os.path.abspath(path)
        self.where = str(where)

    def __fspath__(self) -> str:
        return self.path

    def raw_bytes(self) -> bytes:
        try:
            return Path(self.path).read_bytes()
        except FileNotFoundError:
            raise SampleError(f"{self.where}: image not found: {self.path}") from None
        except OSError as exc:
            raise SampleError(f"{self.where}: unreadable image ({exc.strerror or exc})") from None

    def __call__(self) -> Image.Image:
        try:
            with Image.open(self.path) as opened:
                return opened.convert("RGB")
        except FileNotFoundError:
            raise SampleError(f"{self.where}: image not found: {self.path}") from None
        except Exception as exc:
            raise _unreadable(self.where, exc) from None

    def __repr__(self) -> str:
        return f"ImageFile({self.path!r})"


def decode_base64(text: str, where: str) -> bytes:
    text = text.strip()
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    text = "".join(text.split())
    if not text:
        raise SampleError(f"{where}: empty image")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SampleError(f"{where}: broken base64 image") from None


class Base64Image(LazyImage):
    """A base64 image held as text (JSON formats keep the text they were given)."""

    def __init__(self, text: str, where: Where | str):
        self.text = text
        self.where = str(where)

    def raw_bytes(self) -> bytes:
        return decode_base64(self.text, self.where)

    def __repr__(self) -> str:
        return f"Base64Image({len(self.text)} chars, {self.where!r})"


class DelimitedCell(LazyImage):
    """A base64 image in a cell of a TSV/CSV row, read again from the file when needed, so that
    loading a 1 GB TSV holds byte offsets, not images."""

    def __init__(self, path: str | Path, start: int, end: int, column: int, delimiter: str, where: Where | str):
        self.path, self.start, self.end = str(path), start, end
        self.column, self.delimiter, self.where = column, delimiter, str(where)

    def raw_bytes(self) -> bytes:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.start)
                raw = f.read(self.end - self.start)
        except OSError as exc:
            raise SampleError(f"{self.where}: cannot read the image ({exc.strerror or exc})") from None
        fields = next(csv.reader(io.StringIO(raw.decode("utf-8", "surrogateescape").lstrip("\ufeff"), newline=""),
                                 delimiter=self.delimiter), [])
        cell = fields[self.column] if self.column < len(fields) else ""
        return decode_base64(cell, self.where)

    def __repr__(self) -> str:
        return f"DelimitedCell({self.path!r}, bytes {self.start}-{self.end}, column {self.column})"


def inside(root: str | Path, relative: Any, what: str = "image path") -> str:
    """``root/relative`` as an absolute path; RowError when ``relative`` is absolute or leaves
    ``root`` (``../../etc/passwd``). The check is on the path as written: links the dataset's owner
    made inside the tree are followed as usual."""
    rel = clean_text(relative, what, required=True)
    if os.path.isabs(rel) or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", rel):
        raise RowError(f"{what} {rel!r} is absolute; it must be inside the dataset folder")
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.join(base, rel))
    if os.path.commonpath([base, full]) != base:
        raise RowError(f"{what} {rel!r} escapes the dataset folder")
    return full


def image_file(root: str | Path, relative: Any, where: Where, extensions: Sequence[str] = ()) -> ImageFile:
    """A lazily decoded image at ``root/relative`` that exists (RowError otherwise); ``extensions``
    are tried in turn when the path as written has none."""
    full = inside(root, relative)
    if not os.path.isfile(full):
        for ext in extensions:
            if os.path.isfile(full + ext):
                return ImageFile(full + ext, where)
        shown = os.path.relpath(full, os.path.abspath(root))
        raise RowError(not_a_file(full, shown) or f"image not found: {shown}")
    return ImageFile(full, where)


def not_a_file(full: str, shown: str) -> str | None:
    """Why an existing-looking image path is no file (a folder, a dangling or looping link)."""
    if os.path.isdir(full):
        return f"image path {shown} is a folder, not a file"
    if os.path.islink(full):
        try:
            os.stat(full)
        except OSError as exc:
            kind = "looping" if exc.errno == errno.ELOOP else "dangling"
            return f"image path {shown} is a {kind} symbolic link"
    return None


def spread(samples: Sequence[Sample], limit: int | None,
           key: Callable[[Sample], Any] = lambda s: s.family) -> list[Sample]:
    """The first ``limit`` samples taken in turn from each group (family by default), in file
    order within a group, so that a limit keeps the families balanced as in the bundled set."""
    if limit is None or limit >= len(samples):
        return list(samples)
    groups: dict[Any, list[Sample]] = {}
    for s in samples:
        groups.setdefault(key(s), []).append(s)
    out: list[Sample] = []
    queues = [iter(g) for g in groups.values()]
    while len(out) < limit and queues:
        alive = []
        for q in queues:
            s = next(q, None)
            if s is None:
                continue
            alive.append(q)
            out.append(s)
            if len(out) >= limit:
                break
        queues = alive
    return out
