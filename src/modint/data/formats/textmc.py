"""Text-only multiple choice as text-heavy samples: OpenBookQA (official JSONL) and MMLU (official
header-less CSVs per subject, or the Hugging Face Parquet layout)."""

from __future__ import annotations

import re
from pathlib import Path

from modint.data.formats.common import LoadReport, RowError, Where, bad_row, guarded, make_sample, split_from_name
from modint.data.formats.textfiles import first_jsonl_record, read_delimited, read_jsonl
from modint.data.sample import TEXT_HEAVY, Sample

# ---------------------------------------------------------------- OpenBookQA


def _obqa_dirs(path: Path) -> list[Path]:
    """The folders of OpenBookQA files: ``Main`` and, in the official release, ``Additional``
    (the same questions with their science fact, ``*_complete.jsonl``) beside it."""
    for sub in ("", "Main", "Data/Main", "OpenBookQA-V1-Sep2018/Data/Main"):
        d = path / sub if sub else path
        if d.is_dir() and any(_is_obqa(f) for f in sorted(d.glob("*.jsonl"))):
            extra = d.parent / "Additional"
            has_extra = d.name == "Main" and extra.is_dir() and any(_is_obqa(f) for f in sorted(extra.glob("*.jsonl")))
            return [d, extra] if has_extra else [d]
    return []


def _is_obqa(path: Path) -> bool:
    rec = first_jsonl_record(path)
    return bool(rec) and isinstance(rec.get("question"), dict) and "stem" in rec["question"]


def detect_obqa(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".jsonl" and _is_obqa(path)
    return path.is_dir() and bool(_obqa_dirs(path))


def _obqa_files(path: Path) -> dict[str, Path]:
    if path.is_file():
        return {split_from_name(path.name): path}
    files: dict[str, Path] = {}
    for d in _obqa_dirs(path):
        for f in sorted(d.glob("*.jsonl")):
            if _is_obqa(f):
                files[f.stem if f.stem not in files else f"{d.name.lower()}-{f.stem}"] = f
    return files


def splits_obqa(path: Path, options: dict) -> list[str]:
    return list(_obqa_files(path))


def obqa_sample(where: Where, rec: dict, split: str) -> Sample:
    question = rec.get("question")
    if not isinstance(question, dict):
        raise RowError("question must be an object with 'stem' and 'choices'")
    choices = question.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise RowError("question.choices must be a list of {text, label}")
    labels = [str(c.get("label", "")).strip() for c in choices]
    meta = {"task": "openbookqa", "split": split}
    if rec.get("fact1"):
        meta["fact"] = str(rec["fact1"])
    return make_sample(where, id=str(rec.get("id") or f"{split}-{where.row}"), family=TEXT_HEAVY,
                       question=question.get("stem"), options=[c.get("text") for c in choices],
                       answer=rec.get("answerKey"), labels=labels, accept=("letter",), meta=meta)


def load_obqa(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    file = _obqa_files(path)[split]
    display = file.name if path.is_file() else str(file.relative_to(path))
    out = []
    for n, rec in read_jsonl(file, display):
        ident = str(rec.get("id")) if isinstance(rec, dict) and rec.get("id") else f"{split}-row{n}"
        where = Where(display, n)

        def build(rec=rec, where=where) -> Sample:
            if isinstance(rec, RowError):
                raise rec
            return obqa_sample(where, rec, split)

        out.append(guarded(where, ident, TEXT_HEAVY, build))
    return out


# ---------------------------------------------------------------- MMLU (official CSVs)

MMLU_SPLITS = ("test", "val", "dev", "auxiliary_train")
_MMLU_FILE = re.compile(r"^(?P<subject>.+)_(?P<split>test|val|dev|auxiliary_train|train)\.csv$")


def _mmlu_root(path: Path) -> Path:
    return path / "data" if (path / "data").is_dir() and not any((path / s).is_dir() for s in MMLU_SPLITS) else path


def _mmlu_csvs(folder: Path) -> list[Path]:
    return sorted(f for f in folder.glob("*.csv") if _MMLU_FILE.match(f.name)) if folder.is_dir() else []


def _mmlu_split_files(path: Path) -> dict[str, list[Path]]:
    if path.is_file():
        m = _MMLU_FILE.match(path.name)
        return {m.group("split") if m else split_from_name(path.name): [path]}
    root = _mmlu_root(path)
    found = {s: _mmlu_csvs(root / s) for s in MMLU_SPLITS}
    found = {s: files for s, files in found.items() if files}
    if not found:  # a folder of subject files of one split
        for f in _mmlu_csvs(root):
            found.setdefault(_MMLU_FILE.match(f.name).group("split"), []).append(f)
    return found


def detect_mmlu(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".csv" and bool(_MMLU_FILE.match(path.name))
    return path.is_dir() and bool(_mmlu_split_files(path))


def splits_mmlu(path: Path, options: dict) -> list[str]:
    return list(_mmlu_split_files(path))


def mmlu_sample(where: Where, ident: str, subject: str, split: str, question, choices, answer,
                accept=("letter",)) -> Sample:
    return make_sample(where, id=ident, family=TEXT_HEAVY, question=question, options=list(choices),
                       answer=answer, accept=accept,
                       meta={"task": "mmlu", "subject": subject, "split": split})


def load_mmlu(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    out = []
    for file in _mmlu_split_files(path)[split]:
        m = _MMLU_FILE.match(file.name)
        subject = m.group("subject") if m else file.stem
        display = file.name if path.is_file() else str(file.relative_to(path))
        if file.stat().st_size == 0:  # one line for it, and the other subjects still load
            out.append(bad_row(Where(display), f"{subject}-{split}-empty", TEXT_HEAVY, "empty file (no questions)"))
            continue
        for row in read_delimited(file, display, ",", header=False):
            where = Where(display, row.number)
            ident = f"{subject}-{split}-{row.number}"

            def build(row=row, where=where, ident=ident) -> Sample:
                if row.fields is None:
                    raise RowError(row.problem or "unreadable row")
                if len(row.fields) != 6:
                    raise RowError(f"expected 6 columns (question, A, B, C, D, answer), got {len(row.fields)}")
                return mmlu_sample(where, ident, subject, split, row.fields[0], row.fields[1:5], row.fields[5])

            out.append(guarded(where, ident, TEXT_HEAVY, build))
    return out
