"""Rows derived from a summary, shared by the HTML page and the tables."""

from __future__ import annotations

from typing import Any


def task_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """A row per (family, condition, task): the row's ``by_task`` figures with family, condition,
    task and is_reference, in the summary's row order, tasks alphabetically."""
    return [{"family": row.get("family"), "condition": row.get("condition"), "task": task,
             "is_reference": row.get("is_reference"), **figures}
            for row in summary.get("conditions", []) for task, figures in sorted((row.get("by_task") or {}).items())]
