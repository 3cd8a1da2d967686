"""Helpers every export writer shares: task labels, answers as text, records per condition."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def benchmark_label(name: str | None) -> str:
    """The benchmark part of a task name: a registered name, or a dataset path's last part."""
    if not name:
        return "benchmark"
    path = Path(str(name).partition("?")[0])
    return (path.stem if path.suffix else path.name) or "benchmark"


def response_text(record: dict[str, Any], sample: Any) -> str:
    """What the model answered: the generated text, or the letter of the option it scored best."""
    if record.get("response") is not None:
        return str(record["response"])
    pred = record.get("pred")
    return sample.letters[pred] if pred is not None and 0 <= pred < len(sample.options) else ""


def records_by_condition(records: Sequence[dict]) -> dict[str, list[dict]]:
    """Scored records (no errors) per condition, in the order conditions first appear."""
    out: dict[str, list[dict]] = {}
    for r in records:
        if r.get("error") is None:
            out.setdefault(str(r["condition"]), []).append(r)
    return out
