"""Reading a run directory for the reports, and rebuilding its samples from the manifest."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modint.diagnose import rundir

log = logging.getLogger(__name__)


class RunError(ValueError):
    """A directory that is not a readable run directory; the message names the path."""


@dataclass
class Run:
    path: Path
    records: list[dict[str, Any]]
    summary: dict[str, Any] | None
    manifest: dict[str, Any] | None

    @property
    def label(self) -> str:
        return self.path.name or str(self.path)


def _json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not readable JSON ({exc})".replace("\n", " ")) from None


def load_run(path: str | Path, need_summary: bool = False) -> Run:
    """Records (required), summary and manifest (optional unless ``need_summary``) of a run."""
    run = Path(path)
    records_path = run / rundir.RECORDS
    if not records_path.is_file():
        raise RunError(f"{run}: not a run directory (no {rundir.RECORDS})")
    try:
        records = rundir.read_records(records_path)
    except (OSError, ValueError) as exc:
        raise RunError(str(exc)) from None
    summary = _json(run / rundir.SUMMARY)
    if need_summary and summary is None:
        raise RunError(f"{run}: no {rundir.SUMMARY} (the run did not finish)")
    return Run(run, records, summary, _json(run / rundir.MANIFEST))


def samples_for_run(manifest: dict[str, Any] | None, records: list[dict[str, Any]]) -> list | None:
    """The samples a run was made from, rebuilt from the manifest's benchmark and split, or None
    when that is not possible (no manifest, a benchmark not registered here, ...).

    First the benchmark's first ``limit`` samples (what ``modint diagnose --limit`` ran); when they
    do not cover the records (a filtered run such as ``modint attack``), the whole split kept to
    the ids that have records.
    """
    bench = (manifest or {}).get("benchmark") or {}
    name, split = bench.get("name"), bench.get("split")
    if not name or not split:
        return None
    from modint.data.registry import load_benchmark

    ids = {str(r.get("id")) for r in records}
    try:
        limit = bench.get("limit")
        samples = load_benchmark(name, split=split, limit=limit)
        have = {s.id for s in samples}
        if ids <= have and (bench.get("samples") in (None, len(samples))):
            return samples
        samples = load_benchmark(name, split=split)
        return [s for s in samples if s.id in ids]
    except Exception as exc:  # a report never fails for want of thumbnails
        log.warning("could not rebuild the samples of %s/%s: %s", name, split, exc)
        return None
