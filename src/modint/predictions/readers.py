"""Prediction files of four kinds, read as ``Prediction(id, condition, text)``.

- VLMEvalKit: a TSV/CSV/xlsx prediction file (the dataset's columns and ``prediction``; the
  sample is ``index``), as written by ``vlmeval/inference.py`` through ``vlmeval/smp/file.py``.
- lmms-eval: a ``samples_<task>.jsonl`` of ``--log_samples`` (``doc_id``, ``filtered_resps``,
  ``resps`` when a filter changed the text; older versions keep ``doc``). ``doc_id`` is the
  document's position in the benchmark, unless ``doc`` carries an id.
- published: the paper's ``{id: letter}`` JSONL (one or more pairs per line) or one JSON object.
- generic: JSONL with ``id``, ``prediction`` and optionally ``condition``.

A file's condition comes from, in order: ``FILE@condition`` as given, a ``condition`` field of
the row (generic), a task name ``<benchmark>@<condition>`` in the file name (what ``modint
export`` writes), the default (``--condition``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

KINDS = ("vlmevalkit", "lmms-eval", "published", "generic")
# Keys a document of an lmms-eval sample may carry its benchmark id under (MMBench/MMStar: index,
# SEED-Bench: question_id, ScienceQA: pid in some copies; modint's own export: id).
DOC_ID_KEYS = ("id", "index", "question_id", "pid")
_TASK_IN_NAME = re.compile(r"@(?P<condition>[A-Za-z0-9_.@]+)$")  # the first "@" ends the benchmark


class PredictionError(ValueError):
    """A prediction file that cannot be read; the message names the file (and row)."""


@dataclass(frozen=True)
class Prediction:
    """An answer to one sample under one condition. ``id`` is None when the file names the sample
    only by its position in the benchmark (``position``)."""

    id: str | None
    condition: str
    text: str
    source: str
    position: int | None = None


def doc_id(sample: Any, index: int) -> int:
    """lmms-eval's doc_id of a sample: its row in the dataset split (``meta["doc_id"]``, set by
    loaders that skip rows, such as SEED-Bench's video questions), else its place in the list."""
    meta = sample.meta if isinstance(sample.meta, dict) else {}
    return int(meta["doc_id"]) if isinstance(meta.get("doc_id"), int) else index


def split_spec(spec: str) -> tuple[Path, str | None]:
    """``FILE@condition`` -> (FILE, condition); a path that exists as written has no condition."""
    if Path(spec).exists() or "@" not in spec:
        return Path(spec), None
    # A condition may hold "@" itself (pgd_pixel@8): the file is the shortest prefix that exists.
    cuts = [i for i, ch in enumerate(spec) if ch == "@"]
    cut = next((i for i in cuts if Path(spec[:i]).is_file()), cuts[-1])
    path, condition = spec[:cut], spec[cut + 1:]
    if not condition.strip():
        raise PredictionError(f"{spec}: empty condition after '@'")
    return Path(path), condition.strip()


def condition_from_name(path: Path) -> str | None:
    """``..._samples_mini@no_image.jsonl`` / ``demo_mini@pgd_pixel@8.tsv`` -> the condition."""
    stem = path.name[:-len(path.suffix)] if path.suffix else path.name
    m = _TASK_IN_NAME.search(stem)
    return m.group("condition") if m else None


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_table(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".xlsx":
        try:
            import openpyxl
        except ImportError:
            raise PredictionError(f"{path}: reading xlsx needs openpyxl (pip install openpyxl)") from None
        sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).worksheets[0]
        rows = list(sheet.iter_rows(values_only=True))
        if not rows:
            return []
        header = [_cell_text(h) for h in rows[0]]
        return [dict(zip(header, row)) for row in rows[1:] if any(v is not None for v in row)]
    import csv

    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def _vlmevalkit(path: Path, condition: str | None) -> list[Prediction]:
    rows = _read_table(path)
    if rows and not {"index", "prediction"} <= set(rows[0]):
        raise PredictionError(f"{path}: a VLMEvalKit prediction file needs the columns index and prediction "
                              f"(has {', '.join(map(str, rows[0]))})")
    out = []
    for n, row in enumerate(rows, 1):
        ident = _cell_text(row.get("index")).strip()
        if not ident:
            raise PredictionError(f"{path} row {n}: empty index")
        out.append(Prediction(ident, condition, _cell_text(row.get("prediction")), f"{path.name} row {n}"))
    return out


def _jsonl(path: Path) -> list[tuple[int, Any]]:
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise PredictionError(f"{path} line {n}: invalid JSON ({exc.msg})") from None
    return rows


def _response_text(value: Any) -> str:
    """The first response of lmms-eval's (possibly nested) resps / filtered_resps."""
    while isinstance(value, (list, tuple)):
        if not value:
            return ""
        value = value[0]
    return "" if value is None else str(value)


def _lmms_eval(path: Path, rows: list[tuple[int, Any]], condition: str | None) -> list[Prediction]:
    out = []
    for n, row in rows:
        where = f"{path.name} line {n}"
        if not isinstance(row, dict) or "doc_id" not in row:
            raise PredictionError(f"{path} line {n}: not an lmms-eval sample (no doc_id)")
        # The raw response when a filter changed it (resps kept), else the filtered one.
        text = _response_text(row["resps"] if "resps" in row else row.get("filtered_resps"))
        doc = row.get("doc") if isinstance(row.get("doc"), dict) else {}
        ident = next((str(doc[k]) for k in DOC_ID_KEYS if doc.get(k) is not None), None)
        try:
            position = int(row["doc_id"])
        except (TypeError, ValueError):
            raise PredictionError(f"{path} line {n}: doc_id {row['doc_id']!r} is not an integer") from None
        out.append(Prediction(ident, condition, text, where, position=position))
    return out


def _generic(path: Path, rows: list[tuple[int, Any]], condition: str | None, told: bool) -> list[Prediction]:
    out = []
    for n, row in rows:
        if not isinstance(row, dict) or "id" not in row or "prediction" not in row:
            raise PredictionError(f"{path} line {n}: expected an object with id and prediction")
        own = row.get("condition")
        out.append(Prediction(str(row["id"]), condition if told or not own else str(own),
                              _cell_text(row["prediction"]), f"{path.name} line {n}"))
    return out


def _published(path: Path, rows: list[tuple[int, Any]], condition: str | None) -> list[Prediction]:
    out = []
    for n, row in rows:
        if not isinstance(row, dict):
            raise PredictionError(f"{path} line {n}: expected an object {{id: answer}}")
        for key, value in row.items():
            if isinstance(value, (dict, list)):
                raise PredictionError(f"{path} line {n}: the answer of {key!r} is not text")
            out.append(Prediction(str(key), condition, _cell_text(value), f"{path.name} line {n}"))
    return out


def detect_kind(path: Path, rows: list[tuple[int, Any]] | None) -> str:
    if path.suffix.lower() in (".tsv", ".csv", ".xlsx"):
        return "vlmevalkit"
    first = next((row for _, row in rows or []), None)
    if isinstance(first, dict) and "doc_id" in first:
        return "lmms-eval"
    if isinstance(first, dict) and "id" in first and "prediction" in first:
        return "generic"
    return "published"


def read_predictions(spec: str, default_condition: str | None = None, kind: str | None = None) -> list[Prediction]:
    """The predictions of one file (``FILE`` or ``FILE@condition``); PredictionError for a file
    that cannot be read or whose rows have no condition."""
    path, told = split_spec(spec)
    if not path.is_file():
        raise PredictionError(f"{path}: no such prediction file")
    if kind is not None and kind not in KINDS:
        raise PredictionError(f"unknown prediction kind {kind!r} (use one of {', '.join(KINDS)})")
    condition = told or condition_from_name(path) or default_condition
    rows = None
    if path.suffix.lower() in (".json",):
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise PredictionError(f"{path}: invalid JSON ({exc.msg})") from None
        items = data if isinstance(data, list) else [data]
        rows = [(n, row) for n, row in enumerate(items, 1)]
    elif path.suffix.lower() not in (".tsv", ".csv", ".xlsx"):
        rows = _jsonl(path)
    kind = kind or detect_kind(path, rows)
    if kind == "vlmevalkit":
        preds = _vlmevalkit(path, condition)
    elif kind == "lmms-eval":
        preds = _lmms_eval(path, rows or [], condition)
    elif kind == "generic":
        preds = _generic(path, rows or [], condition, told is not None)
    else:
        preds = _published(path, rows or [], condition)
    missing = next((p for p in preds if not p.condition), None)
    if missing is not None:
        raise PredictionError(f"{missing.source}: no condition; name it as {path}@CONDITION or pass --condition")
    return preds


def read_all(specs: Sequence[str], default_condition: str | None = None,
             kind: str | None = None) -> list[Prediction]:
    out: list[Prediction] = []
    for spec in specs:
        out += read_predictions(spec, default_condition, kind)
    return out
