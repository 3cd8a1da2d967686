"""VLMEvalKit's prediction file, one per condition: the dataset's columns without the image, and
``prediction``.

Read from VLMEvalKit's source (open-compass/VLMEvalKit): ``vlmeval/inference.py`` pops ``image``
from the dataset frame, adds ``prediction`` and dumps it to ``<model>_<dataset>.<fmt>``
(``vlmeval/smp/file.py``: ``get_pred_file_path``; ``dump`` writes TSV with pandas ``to_csv(sep="\\t",
index=False, quoting=csv.QUOTE_ALL)`` and xlsx with ``to_excel(index=False)``; ``load`` reads
them back with ``read_csv(sep="\\t")`` / ``read_excel``). The multiple-choice columns are those of
``vlmeval/dataset/image_mcq.py``: index, question, hint, A, B, ..., answer, category, l2-category, split.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from modint.export.common import benchmark_label, records_by_condition, response_text
from modint.report.safe import spreadsheet_cell

def _columns(n_letters: int) -> list[str]:
    letters = [chr(ord("A") + i) for i in range(n_letters)]
    return ["index", "question", "hint", *letters, "answer", "category", "l2-category", "split", "prediction"]


def _row(record: dict[str, Any], sample: Any, n_letters: int) -> list[Any]:
    options = list(sample.options) + [""] * (n_letters - len(sample.options))
    meta = sample.meta if isinstance(sample.meta, dict) else {}
    category = meta.get("category") or meta.get("task") or sample.family
    return [sample.id, sample.question, "", *options, sample.letters[sample.answer], category,
            meta.get("l2-category", ""), meta.get("split", ""), response_text(record, sample)]


def write_vlmevalkit(run: Any, samples: list, out: Path) -> list[Path]:
    summary = run.summary or {}
    model = re.sub(r"[^A-Za-z0-9._-]+", "_", str(summary.get("model") or "model")).strip("_") or "model"
    out.mkdir(parents=True, exist_ok=True)
    by_id = {s.id: s for s in samples}
    order = {s.id: i for i, s in enumerate(samples)}
    written = []
    for condition, records in records_by_condition(run.records).items():
        kept = sorted((r for r in records if r["id"] in by_id), key=lambda r: order[r["id"]])
        n_letters = max((len(by_id[r["id"]].options) for r in kept), default=4)
        header = _columns(n_letters)
        rows = [[spreadsheet_cell(v) for v in _row(r, by_id[r["id"]], n_letters)] for r in kept]
        stem = f"{model}_{benchmark_label(summary.get('benchmark'))}@{condition}"
        tsv = out / f"{stem}.tsv"
        with open(tsv, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        written.append(tsv)
        xlsx = _write_xlsx(out / f"{stem}.xlsx", header, rows)
        if xlsx is not None:
            written.append(xlsx)
    return written


def _write_xlsx(path: Path, header: list[str], rows: list[list[Any]]) -> Path | None:
    try:
        import openpyxl
    except ImportError:
        return None
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        # openpyxl stores a string starting with "=" as a formula; the apostrophe above already
        # keeps those as text, and every cell is written with an explicit string type.
        sheet.append([str(v) if v is not None else "" for v in row])
    book.save(path)
    return path
