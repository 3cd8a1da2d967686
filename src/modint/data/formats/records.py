"""Record files: the authors' published multiple-choice JSON and modint's
generic schema (JSONL, JSON, CSV or TSV; what ``modint data convert`` writes).

Generic schema, one record per row:

    id        text (default: <file stem>-<row>)
    family    image_heavy | text_heavy | vqa (default: the ``family=`` option)
    question  text
    options   a list, or in CSV/TSV a JSON list or ``|``-separated text
    answer    a 0-based index (JSON integer), or text: an option's exact text, else a letter
              (A, B, ...), else digits as an index
    image     a path relative to the file (it may not leave the file's folder) or an absolute
              path (what convert writes); optional
    context   text placed before the question; optional
    facts     {option text: misleading sentence} (JSON text in CSV/TSV); optional
    split     the record's split; optional
    meta      a JSON object kept in Sample.meta; optional
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from modint.data.formats.common import (IMAGE_EXTENSIONS, Base64Image, ImageFile, LoadReport, RowError, Where,
                                        clean_text, guarded, image_file, inside, make_sample, split_from_name)
from modint.data.formats.textfiles import first_jsonl_record, load_json, read_delimited, read_jsonl
from modint.data.sample import FAMILIES, IMAGE_HEAVY, TEXT_HEAVY, VQA, Sample

GENERIC_FIELDS = ("id", "family", "question", "options", "answer", "image", "context", "facts", "split", "meta")
GENERIC_OPTIONS = {"family": "family of records that have none (image_heavy, text_heavy, vqa)"}
PUBLISHED_OPTIONS = {"family": "family of every record (default: the record's, else inferred: no image -> "
                               "text_heavy, facts -> image_heavy, else vqa)",
                     "image_root": "folder image paths are relative to (default: the file's folder, its images/ "
                                   "folder, or the folder the paths were written from); a relative one is taken "
                                   "from the file's folder first"}
EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv")


def iter_records(path: Path, display: str) -> Iterator[tuple[Where, dict | RowError, str | None]]:
    """(where, record or RowError, key) for each record of a JSONL, JSON (a list, or an object of
    records keyed by id) or CSV/TSV (with a header) file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for n, rec in read_jsonl(path, display):
            yield Where(display, n), rec, None
    elif suffix == ".json":
        doc = load_json(path, display)
        data = doc.data
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        items = list(data.items()) if isinstance(data, dict) else list(enumerate(data or [], 1))
        if not isinstance(data, (list, dict)):
            yield Where(display), RowError("expected a list of records or an object of records"), None
        for n, (key, rec) in enumerate(items, 1):
            ok = rec if isinstance(rec, dict) else RowError(f"expected a JSON object, got {type(rec).__name__}")
            yield Where(display, n), ok, str(key) if isinstance(data, dict) else None
        if doc.problem is not None:
            yield Where(display, doc.row), RowError(doc.problem), None
    else:
        header: list[str] = []
        for row in read_delimited(path, display, "\t" if suffix == ".tsv" else ","):
            if row.number == 0:
                header = [h.strip().lower() for h in row.fields or []]
                continue
            where = Where(display, row.number)
            if row.fields is None:
                yield where, RowError(row.problem or "unreadable row"), None
            elif len(row.fields) != len(header):
                kind = "truncated row: " if len(row.fields) < len(header) else ""
                yield where, RowError(f"{kind}{len(row.fields)} of {len(header)} columns"), None
            else:
                yield where, dict(zip(header, row.fields)), None


def _json_field(value: Any, what: str) -> Any:
    """A field that is structured in JSON and JSON text in CSV."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise RowError(f"{what} is not valid JSON") from None
    return value


def _options(value: Any) -> list:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = _json_field(text, "options")
            if not isinstance(parsed, list):
                raise RowError("options must be a list")
            return parsed
        return text.split("|") if text else []
    if value is None:
        raise RowError("missing options")
    raise RowError("options must be a list or '|'-separated text")


def _family(value: Any, default: str | None) -> str:
    family = clean_text(value, "family") or (default or "")
    if not family:
        raise RowError("missing family (give the record one, or pass family=...)")
    if family not in FAMILIES:
        raise RowError(f"unknown family {family!r} (expected {', '.join(FAMILIES)})")
    return family


def _check_options(options: dict) -> None:
    from modint.data.sample import BenchmarkError

    family = options.get("family")
    if family is not None and family not in FAMILIES:
        raise BenchmarkError(f"family={family!r}: expected one of {', '.join(FAMILIES)}")


# ---------------------------------------------------------------- generic schema

def _sniff(path: Path) -> dict | None:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return first_jsonl_record(path)
    if suffix in (".csv", ".tsv"):
        try:
            with open(path, "rb") as f:
                head = f.readline().decode("utf-8", "replace").lstrip("\ufeff").strip().lower()
        except OSError:
            return None
        return {h.strip(): "" for h in head.split("\t" if suffix == ".tsv" else ",")}
    if suffix == ".json":
        try:
            with open(path, "rb") as f:
                head = f.read(65536).decode("utf-8", "replace")
        except OSError:
            return None
        keys = re.findall(r'"([A-Za-z_]+)"\s*:', head)
        return {k: "" for k in keys}
    return None


def detect_generic(path: Path) -> bool:
    if not path.is_file():
        return False
    rec = _sniff(path)
    return bool(rec) and {"question", "options", "answer"} <= set(rec)


def _generic_splits(path: Path) -> list[str]:
    found: dict[str, None] = {}
    for _, rec, _ in iter_records(path, path.name):
        if isinstance(rec, dict) and isinstance(rec.get("split"), str) and rec["split"].strip():
            found[rec["split"].strip()] = None
    return list(found) or [split_from_name(path.name)]


def splits_generic(path: Path, options: dict) -> list[str]:
    return _generic_splits(path)


def generic_sample(where: Where, rec: dict, path: Path, default_family: str | None, split: str) -> Sample:
    family = _family(rec.get("family"), default_family)
    image = None
    raw_image = clean_text(rec.get("image"), "image")
    if raw_image:
        if os.path.isabs(raw_image):
            if not os.path.isfile(raw_image):
                raise RowError(f"image not found: {raw_image}")
            image = ImageFile(raw_image, where)
        else:
            image = image_file(path.parent, raw_image, where)
    meta = _json_field(rec.get("meta"), "meta") or {}
    if not isinstance(meta, dict):
        raise RowError("meta must be a JSON object")
    facts = _json_field(rec.get("facts"), "facts")
    meta = {**meta, "split": split, **({"facts": facts} if facts is not None else {})}
    answer = rec.get("answer")
    return make_sample(where, id=clean_text(rec.get("id"), "id") or f"{path.stem}-{where.row}", family=family,
                       question=rec.get("question"), options=_options(rec.get("options")), answer=answer,
                       image=image, meta=meta, context=rec.get("context"))


def load_generic(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    _check_options(options)
    splits = _generic_splits(path)
    single = len(splits) == 1
    out = []
    for where, rec, key in iter_records(path, path.name):
        # A record without a split belongs to the file's only split; an unreadable one is reported
        # with the first split, so that loading every split reports it once.
        rec_split = str(rec.get("split") or "").strip() if isinstance(rec, dict) else splits[0]
        if (rec_split or (splits[0] if single else "")) != split:
            continue
        ident = str(rec.get("id") or "").strip() if isinstance(rec, dict) else ""
        ident = ident or key or f"{path.stem}-{where.row}"
        fam = rec.get("family") if isinstance(rec, dict) and rec.get("family") in FAMILIES else options.get("family")
        fam = fam or (VQA if isinstance(rec, dict) and rec.get("image") else TEXT_HEAVY)

        def build(rec=rec, where=where) -> Sample:
            if isinstance(rec, RowError):
                raise rec
            return generic_sample(where, rec, path, options.get("family"), split)

        out.append(guarded(where, ident, fam, build))
    return out


# ---------------------------------------------------------------- the published multiple-choice JSON

def _published_sniff(path: Path) -> bool:
    rec = _sniff(path)
    return bool(rec) and "multiple_choices" in rec


def detect_published(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".json", ".jsonl") and _published_sniff(path)


def splits_published(path: Path, options: dict) -> list[str]:
    return [split_from_name(path.name)]


_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{32,}")


def looks_base64(text: str) -> bool:
    """An embedded image rather than a path: a data URI, or long base64 text without an image
    file's extension."""
    if text.startswith("data:image"):
        return True
    if text.lower().endswith(IMAGE_EXTENSIONS):
        return False
    return _BASE64.fullmatch(text[:4096]) is not None


def published_roots(path: Path, image_root: str | None) -> list[Path]:
    """Folders a record's image path may be relative to, in the order tried. The authors keep a
    set's JSON and its ``images/`` folder in ``data/<set>/`` and write paths either as bare file
    names or from the repository root (``data/<set>/images/x.jpg``); neither may depend on the
    folder the command runs in."""
    here = path.parent.resolve()
    if image_root:
        given = Path(image_root).expanduser()
        chosen = [given] if given.is_absolute() else [here / given, given.resolve()]
        return chosen + [here, here / "images"]
    return [here, here / "images"]


def published_image(roots: list[Path], here: Path, raw: str, where: Where) -> ImageFile:
    """The image of a record: the first of ``roots`` that holds ``raw``, else ``raw`` taken as
    written from a folder above the JSON file's folder ``here`` (its leading parts name that
    folder: ``data/<set>/images/x.jpg``)."""
    for root in roots:
        full = inside(root, raw)
        if os.path.isfile(full):
            return ImageFile(full, where)
    parts = Path(os.path.normpath(raw.strip())).parts
    for depth in range(1, min(len(here.parts), len(parts))):
        if parts[:depth] == here.parts[-depth:]:
            full = inside(here, os.path.join(*parts[depth:]))
            if os.path.isfile(full):
                return ImageFile(full, where)
    raise RowError(f"image not found: {raw.strip()} (looked in {', '.join(str(r) for r in roots)}; "
                   f"pass -o image_root=FOLDER)")


def published_sample(where: Where, rec: dict, roots: list[Path], family: str | None, ident: str,
                     split: str, here: Path | None = None) -> Sample:
    choices = rec.get("multiple_choices")
    if not isinstance(choices, dict):
        raise RowError("multiple_choices must be an object {letter: text}")
    labels = [str(k).strip() for k in choices]
    image = None
    raw = rec.get("image")
    if isinstance(raw, str) and raw.strip():
        image = Base64Image(raw, where) if looks_base64(raw.strip()) else published_image(
            roots, here or roots[0], raw, where)
    facts = rec.get("facts")
    if family is None:
        family = clean_text(rec.get("family"), "family") or (
            TEXT_HEAVY if image is None else IMAGE_HEAVY if facts else VQA)
    return make_sample(where, id=ident, family=_family(family, None), question=rec.get("question"),
                       options=list(choices.values()), labels=labels, answer=rec.get("multiple_choices_answer"),
                       accept=("letter",), image=image,
                       meta={"split": split, **({"facts": facts} if facts is not None else {})})


def load_published(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    _check_options(options)
    roots = published_roots(path, options.get("image_root"))
    out = []
    for where, rec, key in iter_records(path, path.name):
        ident = (str(rec.get("id") or "").strip() if isinstance(rec, dict) else "") or key or f"{path.stem}-{where.row}"
        fam = options.get("family") or (rec.get("family") if isinstance(rec, dict) else None)
        guess = fam if fam in FAMILIES else (IMAGE_HEAVY if isinstance(rec, dict) and rec.get("facts") else
                                             VQA if isinstance(rec, dict) and rec.get("image") else TEXT_HEAVY)

        def build(rec=rec, where=where, ident=ident) -> Sample:
            if isinstance(rec, RowError):
                raise rec
            return published_sample(where, rec, roots, options.get("family"), ident, split, path.parent.resolve())

        out.append(guarded(where, ident, guess, build))
    return out
