"""``modint score``: a run directory from predictions made elsewhere.

Each prediction is paired with its benchmark sample by id (lmms-eval files by the document's
position), parsed with the parser of ``--scoring generate`` and written as the record that run
would have written, so records.jsonl, summary.json, report.html, ``compare`` and ``export`` mean
the same for both.
"""

from __future__ import annotations

import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from modint.data.sample import Sample, SampleError, validate_sample
from modint.diagnose import rundir
from modint.diagnose.metrics import summarize
from modint.diagnose.mmstar import multimodal_gain
from modint.models.prompts import parse_answer
from modint.perturb import REFERENCE_CONDITION, apply_condition, condition_rank, default_pools, get_condition
from modint.predictions.readers import Prediction, PredictionError, doc_id


@dataclass
class ScoreResult:
    """The summary, and what did not become a record: ``unknown`` prediction sources whose sample
    is not in the benchmark, ``duplicates`` (a later answer to an (id, condition) already seen),
    ``missing`` (condition -> samples of the benchmark without an answer)."""

    summary: dict[str, Any]
    unknown: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)


def _perturbed_meta(sample: Sample, condition: str, seed: int, pools: Any) -> dict[str, Any]:
    """What the engine records from the perturbed sample: the distractor a misleading text names
    and the source of a switched image. Empty for a condition modint does not know."""
    try:
        cond = get_condition(condition)
    except KeyError:
        return {}
    if cond.attack_space:
        return {}
    try:
        return apply_condition(sample, condition, seed, pools).meta
    except Exception:  # a condition that does not apply to this family: nothing to carry
        return {}


def _record(sample: Sample, condition: str, text: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The record ``Scorer._score`` writes in generate mode for the same answer."""
    pred = parse_answer(text, sample.options)
    record = {"id": sample.id, "family": sample.family, "condition": condition, "gold": sample.answer,
              "pred": pred, "correct": pred == sample.answer, "probs": None, "error": None,
              "distractor": meta.get("distractor"), "task": sample.meta.get("task"), "response": text}
    if "switched_from" in meta:
        record["switched_from"] = meta["switched_from"]
    return record


def _error_record(sample: Sample, condition: str, message: str) -> dict[str, Any]:
    gold = sample.answer if isinstance(sample.answer, int) else None
    return {"id": sample.id, "family": sample.family, "condition": condition, "gold": gold, "pred": None,
            "correct": False, "probs": None, "error": message, "distractor": None,
            "task": sample.meta.get("task") if isinstance(sample.meta, dict) else None}


def build_records(predictions: Sequence[Prediction], samples: Sequence[Sample], seed: int = 0,
                  switch_source: str = "mixed") -> tuple[list[dict[str, Any]], ScoreResult]:
    """Records for the predictions that name a sample of ``samples``; the rest is counted in the
    returned ScoreResult (its summary is empty here)."""
    by_id = {s.id: s for s in samples}
    by_position = {doc_id(s, i): s for i, s in enumerate(samples)}
    pools = default_pools(list(samples), switch_source=switch_source)
    result = ScoreResult(summary={})
    records, seen = [], set()
    for pred in predictions:
        if pred.id is not None and pred.id in by_id:
            sample = by_id[pred.id]
        elif pred.id is None and pred.position in by_position:
            sample = by_position[pred.position]
        else:
            result.unknown.append(pred.source)
            continue
        key = (sample.id, pred.condition)
        if key in seen:
            result.duplicates.append(pred.source)
            continue
        seen.add(key)
        try:
            validate_sample(sample)
        except SampleError as exc:
            records.append(_error_record(sample, pred.condition, str(exc)))
            continue
        records.append(_record(sample, pred.condition, pred.text, _perturbed_meta(sample, pred.condition, seed, pools)))
    for condition in sorted({p.condition for p in predictions}):
        mine = [r for r in records if r["condition"] == condition]
        answered = {r["id"] for r in mine}
        families = _families_of(condition, {r["family"] for r in mine})
        missing = sum(s.id not in answered for s in samples if s.family in families)
        if missing:
            result.missing[condition] = missing
    return records, result


def _families_of(condition: str, answered: set[str]) -> set[str]:
    """The families a condition applies to (for one modint does not know: those answered)."""
    try:
        return set(get_condition(condition).families)
    except KeyError:
        return answered


def _rank_or_last(name: str) -> tuple:
    try:
        return (0, *condition_rank(name))
    except KeyError:
        return (1, 0, 0.0)


def score_predictions(predictions: Sequence[Prediction], samples: Sequence[Sample], out_dir: str | Path,
                      run_info: dict[str, Any] | None = None, seed: int = 0, n_boot: int = 2000,
                      reference: dict[str, str] | None = None) -> ScoreResult:
    """Write records.jsonl, summary.json, manifest.json and report.html for ``predictions`` of
    ``samples`` into ``out_dir`` (which must not hold records already); returns the result.

    Args:
        predictions: answers read by ``modint.predictions.readers``.
        samples: the benchmark the answers were made on (its order gives lmms-eval's doc_id).
        out_dir: the run directory to create.
        run_info: model, benchmark, split, limit and command, as ``run_diagnosis`` takes them.
        seed: the perturbation seed the answers were made with (which option a misleading text named).
    """
    started = time.time()
    run_info = dict(run_info or {})
    reference = dict(reference or REFERENCE_CONDITION)
    out = Path(out_dir)
    if (out / rundir.RECORDS).exists():
        raise PredictionError(f"{out}: already holds {rundir.RECORDS}; score into a new directory")
    if not predictions:
        raise PredictionError("no predictions in the given files")
    records, result = build_records(predictions, samples, seed=seed)
    if not records:
        raise PredictionError(f"none of the {len(predictions)} predictions names a sample of the benchmark "
                              f"(first: {result.unknown[0]})")
    out.mkdir(parents=True, exist_ok=True)
    with rundir.RecordWriter(out / rundir.RECORDS) as writer:
        writer.write_many(records)
    summary = {**{k: run_info.get(k) for k in ("model", "benchmark", "split")}, "seed": seed, "scoring": "generate",
               **summarize(records, reference=reference, n_boot=n_boot, seed=seed,
                           condition_order=sorted({r["condition"] for r in records}, key=_rank_or_last))}
    gain = multimodal_gain(records, reference)
    if gain:
        summary["multimodal_gain"] = gain
    rundir.write_json(out / rundir.SUMMARY, summary)
    rundir.write_json(out / rundir.MANIFEST, _manifest(samples, records, result, run_info, seed, reference, started))
    try:
        from modint.report.html import write_report

        write_report(out, samples=samples)
    except Exception as exc:  # the report must never cost the records or the summary
        import logging

        logging.getLogger(__name__).warning("could not write report.html: %s", exc)
    result.summary = summary
    return result


def _manifest(samples: Sequence[Sample], records: list[dict], result: ScoreResult, run_info: dict, seed: int,
              reference: dict[str, str], started: float) -> dict[str, Any]:
    import modint

    families = Counter(s.family for s in samples)
    conditions = sorted({(r["family"], r["condition"]) for r in records})
    return {
        "model": {"id": run_info.get("model"), "source": "predictions made elsewhere"},
        "benchmark": {"name": run_info.get("benchmark"), "split": run_info.get("split"),
                      "limit": run_info.get("limit"), "samples": len(samples), "per_family": dict(families)},
        "conditions": [{"family": f, "condition": c, "seed": seed, "reference": reference.get(f)}
                       for f, c in conditions],
        "config": {"seed": seed, "scoring": "generate", "reference": reference},
        "scoring": "generate",
        "predictions": {"files": run_info.get("files", []), "unknown_ids": len(result.unknown),
                        "duplicates": len(result.duplicates), "missing": result.missing},
        "versions": {"modint": modint.__version__, "python": platform.python_version()},
        "command": run_info.get("command") or " ".join(sys.argv),
        "timing": {"seconds": round(time.time() - started, 3)},
    }
