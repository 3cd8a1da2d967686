"""lmms-eval's ``--log_samples`` layout, each modint condition a task ``<benchmark>@<condition>``.

Read from lmms-eval's source (EvolvingLMMs-Lab/lmms-eval): ``evaluator.py`` builds each logged
sample (doc_id, target, resps, filtered_resps, token_counts, doc_hash = sha256 of the document
dumped with ``json.dumps(indent=2, ensure_ascii=False)``, then the metric keys) and the results
dict (results, group_subtasks, configs, versions, n-shot, higher_is_better, n-samples);
``loggers/evaluation_tracker.py`` writes ``OUT/<model>/<date>_results.json`` (adding task_hashes
and the general config: model_name, start_time, ...) and ``OUT/<model>/<date>_samples_<task>.jsonl``
(adding ``input``, flattening one-request lists, dropping ``resps`` when it equals
``filtered_resps``, dropping ``doc`` and ``arguments``, ``target`` as text); ``utils.py`` names
the model folder (``sanitize_model_name``) and the date (``%Y%m%d_%H%M%S``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modint.export.common import benchmark_label, records_by_condition, response_text
from modint.models.prompts import user_text
from modint.predictions.readers import doc_id

METRIC = "exact_match"
FILTER = "none"  # no filter: filtered_resps is the response as generated


def hash_string(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sanitize_model_name(name: str) -> str:
    """lmms-eval's folder name for a model: its last two path parts, unsafe characters as ``__``."""
    parts = name.split("/")
    last_two = "/".join(parts[-2:]) if len(parts) > 1 else parts[-1]
    return re.sub(r"[\"<>:/\|\\?\*\[\]]+", "__", last_two)


def task_name(benchmark: str | None, condition: str) -> str:
    return f"{benchmark_label(benchmark)}@{condition}"


def document(sample: Any) -> dict[str, Any]:
    """The sample as an lmms-eval document (its text fields; images are never logged)."""
    doc = {"id": sample.id, "question": sample.question}
    doc.update({letter: option for letter, option in zip(sample.letters, sample.options)})
    doc.update({"answer": sample.letters[sample.answer], "family": sample.family,
                "task": sample.meta.get("task")})
    return doc


def logged_sample(position: int, record: dict[str, Any], sample: Any, shown: Any = None) -> dict[str, Any]:
    """One line of a samples JSONL, with lmms-eval's keys in lmms-eval's order; ``input`` is the
    text the model was shown (``shown``: the perturbed sample, when it can be rebuilt)."""
    doc = document(sample)
    text = response_text(record, sample)
    return {"doc_id": position, "target": sample.letters[sample.answer], "filtered_resps": text,
            "token_counts": [None],
            "doc_hash": hash_string(json.dumps(doc, indent=2, ensure_ascii=False)),
            METRIC: 1.0 if record.get("correct") else 0.0, "input": user_text(shown or sample)}


def perturbed_text_sample(samples: list, seed: int):
    """``shown(sample, condition)``: the sample as the condition presented it (its text; images
    are not decoded), or None for a condition modint cannot rebuild."""
    from modint.perturb import apply_condition, default_pools, get_condition

    pools = default_pools(samples, switch_source="photos")

    def shown(sample: Any, condition: str) -> Any:
        try:
            if get_condition(condition).attack_space:
                return None
            return apply_condition(sample, condition, seed, pools)
        except Exception:  # unknown to this version, or not applicable to the family
            return None

    return shown


def _stderr(values: list[float]) -> float | str:
    """lmms-eval's mean_stderr: the sample standard deviation over sqrt(n); "N/A" for one value."""
    n = len(values)
    if n < 2:
        return "N/A"
    mu = sum(values) / n
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def write_lmms_eval(run: Any, samples: list, out: Path) -> list[Path]:
    summary, manifest = run.summary or {}, run.manifest or {}
    model = str(summary.get("model") or (manifest.get("model") or {}).get("id") or "model")
    folder = out / sanitize_model_name(model)
    folder.mkdir(parents=True, exist_ok=True)
    date_id = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    position = {s.id: doc_id(s, i) for i, s in enumerate(samples)}
    by_id = {s.id: s for s in samples}
    results: dict[str, Any] = {"results": {}, "group_subtasks": {}, "configs": {}, "versions": {}, "n-shot": {},
                               "higher_is_better": {}, "n-samples": {}}
    task_hashes, written = {}, []
    shown = perturbed_text_sample(samples, int(summary.get("seed") or 0))
    for condition, records in records_by_condition(run.records).items():
        task = task_name(summary.get("benchmark"), condition)
        lines = sorted((logged_sample(position[r["id"]], r, by_id[r["id"]], shown(by_id[r["id"]], condition))
                        for r in records if r["id"] in by_id),
                       key=lambda line: line["doc_id"])
        scores = [line[METRIC] for line in lines]
        path = folder / f"{date_id}_samples_{task}.jsonl"
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
        written.append(path)
        task_hashes[task] = hash_string("".join(f"sample_{i}" + line["doc_hash"] for i, line in enumerate(lines)))
        results["results"][task] = {"alias": task, f"{METRIC},{FILTER}": sum(scores) / len(scores) if scores else None,
                                    f"{METRIC}_stderr,{FILTER}": _stderr(scores)}
        results["group_subtasks"][task] = []
        results["configs"][task] = {"task": task, "dataset_path": summary.get("benchmark"),
                                    "test_split": summary.get("split"), "output_type": "generate_until",
                                    "metric_list": [{"metric": METRIC, "aggregation": "mean",
                                                     "higher_is_better": True}],
                                    "metadata": {"modint_condition": condition,
                                                 "scoring": summary.get("scoring")}}
        results["versions"][task] = 0
        results["n-shot"][task] = 0
        results["higher_is_better"][task] = {METRIC: True}
        results["n-samples"][task] = {"original": len(samples), "effective": len(lines)}
    now = time.time()
    results.update({"config": {"model": model, "model_args": "", "batch_size": None, "device": None},
                    "date": date_id, "task_hashes": task_hashes, "model_source": "modint", "model_name": model,
                    "model_name_sanitized": sanitize_model_name(model), "system_instruction": None,
                    "system_instruction_sha": None, "fewshot_as_multiturn": False, "chat_template": None,
                    "chat_template_sha": None, "start_time": now, "end_time": now,
                    "total_evaluation_time_seconds": "0"})
    results_path = folder / f"{date_id}_results.json"
    results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return [results_path, *written]
