"""A run directory written as other harnesses write their results: lmms-eval's ``--log_samples``
layout and VLMEvalKit's prediction files (``export_run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modint.export.common import benchmark_label, records_by_condition, response_text  # noqa: F401 (public)

TARGETS = ("lmms-eval", "vlmevalkit")


class ExportError(ValueError):
    """A run that cannot be exported; the message names the run and the problem."""


def run_samples(run: Any, benchmark: str | None, split: str | None) -> list:
    """The run's samples, in benchmark order: rebuilt from the manifest, or loaded from
    ``benchmark`` / ``split`` when given."""
    from modint.report.load import samples_for_run

    if benchmark:
        from modint.data.registry import load_benchmark

        bench = (run.manifest or {}).get("benchmark") or {}
        return load_benchmark(benchmark, split=split or bench.get("split") or "test", limit=bench.get("limit"))
    manifest = run.manifest
    if manifest and split:
        manifest = {**manifest, "benchmark": {**(manifest.get("benchmark") or {}), "split": split}}
    samples = samples_for_run(manifest, run.records)
    if not samples:
        raise ExportError(f"{run.path}: the run's samples cannot be rebuilt from its manifest; pass --benchmark "
                          f"(and --split) to say where its questions are")
    return samples


def export_run(run_dir: str | Path, to: str, out_dir: str | Path, benchmark: str | None = None,
               split: str | None = None) -> list[Path]:
    """Write the run at ``run_dir`` into ``out_dir`` in the format ``to`` (lmms-eval or vlmevalkit).

    Args:
        run_dir: a run directory (records.jsonl, summary.json, manifest.json).
        to: ``lmms-eval`` (results JSON + a samples JSONL per condition) or ``vlmevalkit`` (a
            prediction TSV per condition, and xlsx where openpyxl is installed).
        out_dir: the folder to write into.
        benchmark, split: where the run's questions are, when the manifest's benchmark cannot be
            loaded here.
    Returns:
        The files written.
    """
    from modint.report.load import RunError, load_run

    if to not in TARGETS:
        raise ExportError(f"unknown export format {to!r} (use {', '.join(TARGETS)})")
    try:
        run = load_run(run_dir, need_summary=True)
    except RunError as exc:
        raise ExportError(str(exc)) from None
    samples = run_samples(run, benchmark, split)
    if to == "lmms-eval":
        from modint.export.lmms_eval import write_lmms_eval

        return write_lmms_eval(run, samples, Path(out_dir))
    from modint.export.vlmevalkit import write_vlmevalkit

    return write_vlmevalkit(run, samples, Path(out_dir))
