"""Rows derived from a summary or from the records, shared by the HTML page, its browser and the tables."""

from __future__ import annotations

from typing import Any, Iterable


def task_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """A row per (family, condition, task): the row's ``by_task`` figures with family, condition,
    task and is_reference, in the summary's row order, tasks alphabetically."""
    return [{"family": row.get("family"), "condition": row.get("condition"), "task": task,
             "is_reference": row.get("is_reference"), **figures}
            for row in summary.get("conditions", []) for task, figures in sorted((row.get("by_task") or {}).items())]


def index_records(records: Iterable[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    """(family, condition) -> id -> record (a repeated key keeps the last record: a report never
    refuses a run directory)."""
    table: dict[tuple[str, str], dict[str, dict]] = {}
    for r in records:
        table.setdefault((str(r.get("family")), str(r.get("condition"))), {})[str(r.get("id"))] = r
    return table
