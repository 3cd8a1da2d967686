"""Reading a benchmark's files row by row: CSV/TSV with byte offsets, JSONL per line, and JSON
with the records before a break salvaged. A file that cannot be opened is a ``BenchmarkError``; a
row that cannot be read is a ``RowError`` (or a row's ``problem``) for the loader to record."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from modint.data.formats.common import RowError


def open_bytes(path: Path, display: str):
    from modint.data.sample import BenchmarkError

    try:
        return open(path, "rb")
    except OSError as exc:
        raise BenchmarkError(f"{display}: cannot read ({exc.strerror or exc})") from None


@dataclass
class DelimitedRow:
    number: int  # 1-based, the header not counted
    fields: list[str] | None  # None when the file could not be parsed from here on
    start: int  # byte offsets of the row in the file
    end: int
    problem: str | None = None


def read_delimited(path: Path, display: str, delimiter: str, header: bool = True) -> Iterator[DelimitedRow]:
    """Rows of a CSV/TSV file with their byte offsets. Text is decoded as UTF-8 with undecodable
    bytes kept as surrogates, so that ``clean_text`` reports them per row. The header, when
    ``header``, is yielded as row 0."""
    with open_bytes(path, display) as f:
        pos = 0
        starts: list[int] = []

        def lines() -> Iterator[str]:
            nonlocal pos
            for i, raw in enumerate(f):
                starts.append(pos)
                pos += len(raw)
                text = raw.decode("utf-8", "surrogateescape")
                yield text.lstrip("\ufeff") if i == 0 else text

        reader = csv.reader(lines(), delimiter=delimiter)
        number = 0 if header else 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield DelimitedRow(number, None, starts[0] if starts else pos, pos, f"unreadable {display} ({exc})")
                return
            start = starts[0] if starts else pos
            starts.clear()
            if not fields or all(not x.strip() for x in fields):
                continue
            yield DelimitedRow(number, fields, start, pos)
            number += 1


def read_jsonl(path: Path, display: str) -> Iterator[tuple[int, dict | RowError]]:
    """(line number, object) per non-blank line, or (line number, RowError) for a broken line."""
    with open_bytes(path, display) as f:
        for n, raw in enumerate(f, 1):
            text = raw.decode("utf-8", "surrogateescape")
            if n == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                kind = "truncated JSON" if not raw.endswith(b"\n") else "invalid JSON"
                yield n, RowError(f"{kind} ({exc.msg}, column {exc.colno})")
                continue
            yield n, obj if isinstance(obj, dict) else RowError(f"expected a JSON object, got {type(obj).__name__}")


def first_jsonl_record(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            for raw in f:
                if raw.strip():
                    obj = json.loads(raw.decode("utf-8", "replace").lstrip("\ufeff"))
                    return obj if isinstance(obj, dict) else None
    except (OSError, ValueError):
        return None
    return None


@dataclass
class JsonDocument:
    """A JSON file as loaded; a broken file keeps the records before the break (``salvaged``)
    and says where it broke (``problem``, ``row`` = 1-based record that could not be read)."""

    data: Any
    problem: str | None = None
    row: int | None = None


def load_json(path: Path, display: str) -> JsonDocument:
    from modint.data.sample import BenchmarkError

    with open_bytes(path, display) as f:
        try:
            raw = f.read()
        except OSError as exc:
            raise BenchmarkError(f"{display}: cannot read ({exc.strerror or exc})") from None
    text = raw.decode("utf-8", "surrogateescape").lstrip("\ufeff")
    try:
        return JsonDocument(json.loads(text))
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        kind = "truncated JSON" if truncated else "invalid JSON"
        problem = f"{kind} ({exc.msg}, line {exc.lineno} column {exc.colno})"
    data, row = _salvage(text, 0, 0)
    if data is None:
        raise BenchmarkError(f"{display}: {problem}")
    return JsonDocument(data, problem, row)


_DECODER = json.JSONDecoder()
_WS = re.compile(r"\s*")


def _salvage(text: str, pos: int, depth: int) -> tuple[Any, int | None]:
    """The members of the container at ``pos`` up to the first one that cannot be parsed, and that
    member's 1-based number. At the top level a broken member that is a list (SEED-Bench's
    ``questions``) is salvaged one level down, so that its records survive; a broken record is
    left out whole."""
    pos = _WS.match(text, pos).end()
    opener = text[pos:pos + 1]
    if opener not in ("[", "{"):
        return None, None
    closer = "]" if opener == "[" else "}"
    out: Any = [] if opener == "[" else {}
    pos += 1
    while True:
        pos = _WS.match(text, pos).end()
        if text[pos:pos + 1] == closer:
            return out, None
        key = None
        try:
            if opener == "{":
                key, pos = _DECODER.raw_decode(text, pos)
                pos = _WS.match(text, pos).end()
                if text[pos:pos + 1] != ":":
                    return out, len(out) + 1
                pos = _WS.match(text, pos + 1).end()
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            if depth == 0 and key is not None and text[pos:pos + 1] == "[":
                inner, row = _salvage(text, pos, depth + 1)
                out[key] = inner
                return out, row
            return out, len(out) + 1
        if opener == "[":
            out.append(value)
        else:
            out[key] = value
        pos = _WS.match(text, pos).end()
        sep = text[pos:pos + 1]
        if sep == ",":
            pos += 1
        elif sep == closer:
            return out, None
        else:
            return out, len(out) + 1
