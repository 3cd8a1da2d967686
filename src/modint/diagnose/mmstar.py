"""Multimodal gain and leakage, as MMStar defines them (Chen et al., "Are We on the Right Way for
Evaluating Large Vision-Language Models?", 2024, section 4):

    MG = S_v - S_wv                 the LVLM with its image minus the same LVLM without it
    ML = max(0, S_wv - S_t)         the LVLM without the image minus its LLM base, text only

S_v is accuracy under the family's reference condition (``clean``; text-heavy: ``noise_image``),
S_wv under ``no_image``, S_t the text model's accuracy under ``no_image``. Unlike MMStar's
benchmark-level scores, each figure is computed on the samples that have a scored (non-error)
record under both of its terms, so the two accuracies describe the same questions. Rows are per
family (``task`` None) and per family and task.
"""

from __future__ import annotations

from typing import Any, Iterable

NO_IMAGE = "no_image"


def _ok_by_key(records: Iterable[dict], condition: str | None = None) -> dict[tuple[str, str], dict]:
    """(family, id) -> record, for scored records of ``condition`` (any condition when None)."""
    return {(r["family"], str(r["id"])): r for r in records
            if r.get("error") is None and (condition is None or r["condition"] == condition)}


def _groups(keys: Iterable[tuple[str, str]], task_of: dict[tuple[str, str], Any]) -> dict[tuple, list]:
    """(family, None) and (family, task) -> the keys in them."""
    out: dict[tuple, list] = {}
    for key in keys:
        out.setdefault((key[0], None), []).append(key)
        task = task_of.get(key)
        if task is not None:
            out.setdefault((key[0], str(task)), []).append(key)
    return out


def _accuracy(recs: dict, keys: list) -> float:
    return sum(bool(recs[k]["correct"]) for k in keys) / len(keys)


def _order(item: tuple) -> tuple:
    from modint.diagnose.metrics import family_key

    (family, task), _ = item
    return (family_key(family), task is not None, task or "")


def multimodal_gain(records: Iterable[dict], reference: dict[str, str]) -> list[dict[str, Any]]:
    """Rows ``{"family", "task", "with_image", "n", "accuracy_with_image", "accuracy_without_image",
    "multimodal_gain"}``; [] when no family has both its reference and ``no_image`` records."""
    records = list(records)
    without = _ok_by_key(records, NO_IMAGE)
    rows = []
    by_family: dict[str, dict] = {}
    for family in {f for f, _ in without}:
        ref = reference.get(family)
        if ref and ref != NO_IMAGE:
            by_family[family] = {k: r for k, r in _ok_by_key(records, ref).items() if k[0] == family}
    with_image = {k: r for recs in by_family.values() for k, r in recs.items()}
    paired = [k for k in without if k in with_image]
    task_of = {k: with_image[k].get("task") for k in paired}
    for (family, task), keys in sorted(_groups(paired, task_of).items(), key=_order):
        s_v, s_wv = _accuracy(with_image, keys), _accuracy(without, keys)
        rows.append({"family": family, "task": task, "with_image": reference[family], "n": len(keys),
                     "accuracy_with_image": s_v, "accuracy_without_image": s_wv, "multimodal_gain": s_v - s_wv})
    return rows


def multimodal_leakage(records: Iterable[dict], text_records: Iterable[dict]) -> list[dict[str, Any]]:
    """Rows ``{"family", "task", "n", "accuracy_without_image", "text_model_accuracy",
    "multimodal_leakage"}``: the LVLM's ``no_image`` records against the text model's ``no_image``
    records of the same samples; [] when they share none."""
    without = _ok_by_key(records, NO_IMAGE)
    text = _ok_by_key(text_records, NO_IMAGE)
    paired = [k for k in without if k in text]
    task_of = {k: without[k].get("task") for k in paired}
    rows = []
    for (family, task), keys in sorted(_groups(paired, task_of).items(), key=_order):
        s_wv, s_t = _accuracy(without, keys), _accuracy(text, keys)
        rows.append({"family": family, "task": task, "n": len(keys), "accuracy_without_image": s_wv,
                     "text_model_accuracy": s_t, "multimodal_leakage": max(0.0, s_wv - s_t)})
    return rows


def add_leakage(run_dir: Any, text_run_dir: Any, text_model: str | None = None) -> dict[str, Any]:
    """Add ``multimodal_leakage`` (and the text model's name) to RUN/summary.json from the text
    model's run directory; returns the summary. ValueError when the runs share no no_image sample."""
    from pathlib import Path

    from modint.diagnose import rundir
    from modint.report.load import load_run

    run, text_run = load_run(run_dir, need_summary=True), load_run(text_run_dir)
    rows = multimodal_leakage(run.records, text_run.records)
    if not rows:
        raise ValueError(f"{text_run_dir} and {run_dir} share no sample scored under no_image: run both with "
                         f"--conditions including no_image on the same benchmark")
    summary = dict(run.summary or {})
    summary["multimodal_leakage"] = rows
    summary["text_model"] = text_model or str(text_run_dir)
    rundir.write_json(Path(run_dir) / rundir.SUMMARY, summary)
    return summary
