"""Hugging Face Parquet exports of text multiple choice: MMLU (``cais/mmlu``: question, subject,
choices, answer as an index) and OpenBookQA (``allenai/openbookqa``: id, question_stem,
choices {text, label}, answerKey). Reading Parquet needs pyarrow (or pandas with a Parquet
engine); without one the load stops with one clear error."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from modint.data.formats.common import LoadReport, RowError, Where, guarded, make_sample
from modint.data.formats.textmc import mmlu_sample
from modint.data.sample import TEXT_HEAVY, Sample

_SHARD = re.compile(r"^(?P<split>[A-Za-z_]+?)(-\d+-of-\d+)?\.parquet$")


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.parquet") if p.is_file())


def detect(path: Path) -> bool:
    return path.suffix.lower() == ".parquet" if path.is_file() else path.is_dir() and bool(_files(path))


def split_of(file: Path) -> str:
    m = _SHARD.match(file.name)
    return m.group("split") if m else file.stem


def _by_split(path: Path) -> dict[str, list[Path]]:
    """Split -> shards. With a subject per folder (MMLU) and an ``all`` folder holding every
    subject again, only ``all`` is read."""
    files = _files(path)
    if not path.is_file() and any(f.parent.name == "all" for f in files):
        files = [f for f in files if f.parent.name == "all"]
    out: dict[str, list[Path]] = {}
    for f in files:
        out.setdefault(split_of(f), []).append(f)
    return out


def splits(path: Path, options: dict) -> list[str]:
    return list(_by_split(path))


def read_rows(file: Path) -> Iterator[dict[str, Any]]:
    from modint.data.sample import BenchmarkError

    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
        return
    try:
        import pandas as pd

        frame = pd.read_parquet(file)
    except ImportError:
        raise BenchmarkError(f"{file.name}: reading Parquet needs pyarrow (pip install pyarrow) or pandas with a "
                             f"Parquet engine; neither is installed") from None
    for rec in frame.to_dict("records"):
        yield {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in rec.items()}


def row_sample(where: Where, rec: dict[str, Any], split: str, subject_hint: str, start: int = 0) -> Sample:
    """One Parquet row of either layout as a text-heavy sample."""
    if "question_stem" in rec:  # OpenBookQA
        choices = rec.get("choices") or {}
        if not isinstance(choices, dict):
            raise RowError("choices must be {text: [...], label: [...]}")
        labels = [str(x) for x in choices.get("label") or []]
        return make_sample(where, id=str(rec.get("id") or f"{split}-{where.row}"), family=TEXT_HEAVY,
                           question=rec.get("question_stem"), options=list(choices.get("text") or []),
                           answer=rec.get("answerKey"), labels=labels, accept=("letter",),
                           meta={"task": "openbookqa", "split": split})
    if "question" in rec and "choices" in rec:  # MMLU
        subject = str(rec.get("subject") or subject_hint)
        choices = rec.get("choices")
        if not isinstance(choices, (list, tuple)):
            raise RowError("choices must be a list")
        return mmlu_sample(where, f"{subject}-{split}-{start + where.row}", subject, split, rec.get("question"),
                           choices, rec.get("answer"), accept=("index", "letter"))
    raise RowError("unknown Parquet columns (expected MMLU's question/choices/answer or OpenBookQA's "
                   "question_stem/choices/answerKey)")


def rows_to_samples(rows, display: str, split: str, subject_hint: str, start: int = 0) -> list[Sample]:
    """Samples of one shard; ``start`` continues the numbering of earlier shards of the split."""
    out = []
    for n, rec in enumerate(rows, 1):
        where = Where(display, n)
        out.append(guarded(where, f"{subject_hint}-{split}-{start + n}", TEXT_HEAVY,
                           lambda: row_sample(where, rec, split, subject_hint, start)))
    return out


def load(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    out: list[Sample] = []
    for file in _by_split(path)[split]:
        display = file.name if path.is_file() else str(file.relative_to(path))
        subject = file.parent.name if not path.is_file() and file.parent != path else file.stem.split("-")[0]
        out += rows_to_samples(read_rows(file), display, split, subject, start=len(out))
    return out
