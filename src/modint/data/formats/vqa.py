"""Image questions as VQA samples: ScienceQA (problems.json + pid_splits.json + images/), MMBench
(TSV with base64 images) and SEED-Bench (JSON questions + an image folder). ScienceQA questions
without an image become text-heavy samples or are skipped (``scienceqa_imageless=text|skip``)."""

from __future__ import annotations

import re
from pathlib import Path

from modint.data.formats.common import (DelimitedCell, LoadReport, RowError, Where, bad_row, clean_text, guarded,
                                        image_file, make_sample, split_from_name)
from modint.data.formats.textfiles import load_json, read_delimited
from modint.data.sample import OPTION_LETTERS, TEXT_HEAVY, VQA, Sample

# ---------------------------------------------------------------- ScienceQA

SCIENCEQA_OPTIONS = {"scienceqa_imageless": "text (default: image-less questions become text-heavy) or skip"}


def _sqa_root(path: Path) -> Path:
    if path.is_file():
        return path.parent
    for sub in ("", "data/scienceqa", "data", "ScienceQA"):
        d = path / sub if sub else path
        if (d / "problems.json").is_file():
            return d
    return path


def detect_scienceqa(path: Path) -> bool:
    if path.is_file():
        return path.name == "problems.json"
    return (_sqa_root(path) / "problems.json").is_file()


def _sqa_splits(root: Path) -> dict[str, list[str]] | None:
    file = root / "pid_splits.json"
    if not file.is_file():
        return None
    doc = load_json(file, "pid_splits.json")
    if not isinstance(doc.data, dict):
        from modint.data.sample import BenchmarkError

        raise BenchmarkError("pid_splits.json: expected an object {split: [pid, ...]}")
    return {str(k): [str(p) for p in v] for k, v in doc.data.items() if isinstance(v, list)}


def splits_scienceqa(path: Path, options: dict) -> list[str]:
    root = _sqa_root(path)
    splits = _sqa_splits(root)
    if splits is not None:  # the official splits first, then derived ones (trainval, minival, ...)
        return sorted(splits, key=lambda s: (["train", "val", "test"] + [s]).index(s))
    problems = load_json(root / "problems.json", "problems.json").data
    found = {str(p.get("split")) for p in (problems or {}).values() if isinstance(p, dict) and p.get("split")}
    return sorted(found) or ["all"]


def _imageless_mode(options: dict) -> str:
    from modint.data.sample import BenchmarkError

    mode = str(options.get("scienceqa_imageless", "text")).lower()
    if mode not in ("text", "skip"):
        raise BenchmarkError(f"scienceqa_imageless must be text or skip, got {mode!r}")
    return mode


def scienceqa_sample(where: Where, root: Path, pid: str, problem: dict, split: str, imageless: str) -> Sample | None:
    if not isinstance(problem, dict):
        raise RowError("expected a JSON object")
    image_name = problem.get("image")
    if not image_name and imageless == "skip":
        return None
    choices = problem.get("choices")
    if not isinstance(choices, list):
        raise RowError("choices must be a list")
    hint = clean_text(problem.get("hint"), "hint")
    question = clean_text(problem.get("question"), "question", required=True)
    meta = {k: problem[k] for k in ("subject", "topic", "category", "skill", "grade") if problem.get(k)}
    meta.update({"task": "scienceqa", "split": split})
    image = None
    if image_name:
        folder = str(problem.get("split") or split)
        image = image_file(root, f"images/{folder}/{pid}/{image_name}", where)
    return make_sample(where, id=pid, family=VQA if image is not None else TEXT_HEAVY,
                       question=f"{hint}\n{question}" if hint else question, options=choices,
                       answer=problem.get("answer"), accept=("index",), image=image, meta=meta)


def load_scienceqa(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    imageless = _imageless_mode(options)
    root = _sqa_root(path)
    doc = load_json(root / "problems.json", "problems.json")
    problems = doc.data if isinstance(doc.data, dict) else {}
    order = {pid: n for n, pid in enumerate(problems, 1)}
    splits = _sqa_splits(root)
    if splits is not None:
        pids = splits.get(split, [])
    else:
        pids = [pid for pid, p in problems.items()
                if split == "all" or (isinstance(p, dict) and p.get("split") == split)]
    out: list[Sample] = []
    for pid in pids:
        where = Where("problems.json", order.get(pid), f"pid {pid}")
        if pid not in problems:
            if doc.problem is None:  # a salvaged file misses its tail; those pids get the file's error below
                out.append(bad_row(Where("pid_splits.json", key=f"pid {pid}"), pid, TEXT_HEAVY,
                                   "pid not in problems.json"))
            continue
        has_image = isinstance(problems[pid], dict) and problems[pid].get("image")
        sample = guarded(where, pid, VQA if has_image else TEXT_HEAVY,
                         lambda: scienceqa_sample(where, root, pid, problems[pid], split, imageless))
        if sample is None:
            report.skip("image-less question (scienceqa_imageless=skip)")
        else:
            out.append(sample)
    if doc.problem is not None:
        out.append(bad_row(Where("problems.json", doc.row), f"problems.json-row{doc.row}", TEXT_HEAVY, doc.problem))
    return out


# ---------------------------------------------------------------- MMBench

def _tsv_header(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            line = f.readline().decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")
        return [h.strip() for h in line.split("\t")]
    except OSError:
        return []


def _mmbench_files(path: Path) -> dict[str, Path]:
    files = [path] if path.is_file() else sorted(path.glob("*.tsv"))
    out: dict[str, Path] = {}
    for f in files:
        header = _tsv_header(f)
        if all(c in header for c in ("index", "question", "image", "A", "B")):
            out[split_from_name(f.name) if split_from_name(f.name) not in out else f.stem] = f
    return out


def detect_mmbench(path: Path) -> bool:
    if path.is_file() and path.suffix.lower() != ".tsv":
        return False
    return bool(_mmbench_files(path))


def splits_mmbench(path: Path, options: dict) -> list[str]:
    return list(_mmbench_files(path))


def load_mmbench(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    file = _mmbench_files(path)[split]
    display = file.name
    header: list[str] = []
    rows = []
    spans: dict[str, tuple[int, int]] = {}  # index -> where its image cell is (for rows that refer to it)
    for row in read_delimited(file, display, "\t"):
        if row.number == 0:
            header = [h.strip() for h in row.fields or []]
            missing = [c for c in ("index", "question", "image") if c not in header]
            if missing:
                from modint.data.sample import BenchmarkError

                raise BenchmarkError(f"{display}: not an MMBench TSV (no column {', '.join(missing)})")
            continue
        record = dict(zip(header, row.fields)) if row.fields is not None else None
        if record is not None:
            image = record.get("image", "")
            record["image"] = image if len(image) <= 64 else None  # the text itself is re-read lazily
            spans.setdefault(record.get("index", "").strip(), (row.start, row.end))
        rows.append((row, record))
    col = {name: i for i, name in enumerate(header)}
    letters = [h for h in header if len(h) == 1 and h in OPTION_LETTERS]
    out = []
    for row, record in rows:
        where = Where(display, row.number)
        ident = (record or {}).get("index", "").strip() or f"{split}-row{row.number}"

        def build(row=row, record=record, where=where, ident=ident) -> Sample:
            if record is None:
                raise RowError(row.problem or "unreadable row")
            if len(row.fields) < len(header):
                raise RowError(f"truncated row: {len(row.fields)} of {len(header)} columns")
            if len(row.fields) > len(header):
                raise RowError(f"{len(row.fields)} columns, the header has {len(header)}")
            kept = [(L, record[L]) for L in letters if str(record.get(L, "")).strip()]
            ref = record["image"]
            if ref is None:
                start, end = row.start, row.end
            elif ref.strip().isdigit() and ref.strip() in spans:  # a repeated question points at its image row
                start, end = spans[ref.strip()]
            elif not ref.strip():
                raise RowError("missing image")
            else:
                raise RowError("broken base64 image")
            image = DelimitedCell(file, start, end, col["image"], "\t", where)
            hint = clean_text(record.get("hint"), "hint")
            hint = "" if hint.lower() == "nan" else hint
            question = clean_text(record.get("question"), "question", required=True)
            meta = {k: record[k].strip() for k in ("category", "l2-category", "source") if record.get(k, "").strip()}
            meta.update({"task": meta.get("category", "mmbench"), "split": split})
            return make_sample(where, id=ident, family=VQA, question=f"{hint}\n{question}" if hint else question,
                               options=[t for _, t in kept], labels=[L for L, _ in kept], answer=record.get("answer"),
                               accept=("letter",), image=image, meta=meta)

        out.append(guarded(where, ident, VQA, build))
    return out


# ---------------------------------------------------------------- SEED-Bench

SEED_OPTIONS = {"image_root": "folder of the images (default: SEED-Bench-image/, cc3m-image/ or images/ beside "
                              "the JSON)"}


def _seed_file(path: Path) -> Path | None:
    if path.is_file():
        return path
    for name in ("SEED-Bench.json", "seed_bench.json", "SEED-Bench-1.json"):
        if (path / name).is_file():
            return path / name
    return None


def detect_seed(path: Path) -> bool:
    file = _seed_file(path)
    if file is None or file.suffix.lower() != ".json":
        return False
    try:
        with open(file, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return bool(re.search(r'"questions"\s*:', head)) and ("choice_a" in head or "question_type" in head)


def splits_seed(path: Path, options: dict) -> list[str]:
    return ["test"]


def _seed_image_root(file: Path, options: dict) -> Path:
    if options.get("image_root"):
        return Path(options["image_root"])
    for sub in ("SEED-Bench-image", "cc3m-image", "images"):
        if (file.parent / sub).is_dir():
            return file.parent / sub
    return file.parent


def load_seed(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    from modint.data.sample import BenchmarkError

    file = _seed_file(path)
    display = file.name
    doc = load_json(file, display)
    if not isinstance(doc.data, dict) or not isinstance(doc.data.get("questions"), list):
        if doc.problem:
            raise BenchmarkError(f"{display}: {doc.problem}")
        raise BenchmarkError(f"{display}: expected an object with a 'questions' list")
    types = {v: k for k, v in (doc.data.get("question_type") or {}).items()} if isinstance(
        doc.data.get("question_type"), dict) else {}
    root = _seed_image_root(file, options)
    out = []
    for n, q in enumerate(doc.data["questions"], 1):
        qid = str(q.get("question_id")) if isinstance(q, dict) and q.get("question_id") is not None else f"row{n}"
        where = Where(display, n, f"question_id {qid}" if isinstance(q, dict) and q.get("question_id") else None)
        if isinstance(q, dict) and q.get("data_type", "image") != "image":
            report.skip(f"{q.get('data_type')} question (only image questions are loaded)")
            continue

        def build(q=q, where=where, qid=qid) -> Sample:
            if not isinstance(q, dict):
                raise RowError("expected a JSON object")
            choices = [q.get(f"choice_{c}") for c in "abcdefgh" if f"choice_{c}" in q]
            data_id = q.get("data_id")
            if isinstance(data_id, list):
                raise RowError("multi-image questions are not supported")
            image = image_file(root, data_id, where, extensions=(".jpg", ".png", ".jpeg"))
            task = types.get(q.get("question_type_id"), "seedbench")
            return make_sample(where, id=qid, family=VQA, question=q.get("question"), options=choices,
                               answer=q.get("answer"), accept=("letter",), image=image,
                               meta={"task": str(task), "split": split})

        out.append(guarded(where, qid, VQA, build))
    if doc.problem is not None:
        out.append(bad_row(Where(display, doc.row), f"{display}-row{doc.row}", VQA, doc.problem))
    return out
