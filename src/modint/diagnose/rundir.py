"""The run directory contract (DESIGN section 3): records.jsonl streamed and resumable,
summary.json, manifest.json."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

log = logging.getLogger(__name__)

RECORDS = "records.jsonl"
SUMMARY = "summary.json"
MANIFEST = "manifest.json"
REPORT = "report.html"


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSONL file. A torn last line (a run killed mid-write) is dropped, so a
    resumed run redoes that one record; a bad line elsewhere is an error naming the line."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                log.warning("%s: dropping a torn last line (an interrupted write)", path)
                continue
            raise ValueError(f"{path}: line {number} is not valid JSON") from None
    return records


def repair_torn_tail(path: Path) -> None:
    """Cut a partial last line left by a kill, so appended records start on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(cut)


class RecordWriter:
    """Appends one JSON line per record and flushes it to disk as it is produced."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        for r in records:
            self._fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), so a kill never leaves half a summary."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def iter_keys(records: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for r in records:
        yield (r["id"], r["condition"])
