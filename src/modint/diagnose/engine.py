"""The diagnosis engine: samples x applicable conditions -> records -> summary.

All conditions of a sample go into the same batch, so work they share (the sample's image, its
prompt) is prepared together. Records are appended and flushed as produced; a re-run with the
same output directory skips finished (id, condition) pairs. Under ``accelerate launch`` each rank
takes a disjoint share of the scoring calls and rank 0 merges the shards into one run directory.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from modint.data.sample import Sample, SampleError, load_image, validate_sample
from modint.diagnose import rundir
from modint.diagnose.metrics import robustness_curves, summarize
from modint.diagnose.mmstar import multimodal_gain
from modint.diagnose.reliance_metrics import reliance_summary
from modint.diagnose.sweep import strongest_within_ball
from modint.distributed import distributed_state
from modint.perturb import (REFERENCE_CONDITION, apply_condition, condition_rank, conditions_for, default_pools,
                            get_condition)

log = logging.getLogger(__name__)

SCORING_MODES = ("letters", "generate")
Progress = Callable[[int, int], None]


@dataclass
class DiagnoseConfig:
    conditions: list[str] | None = None  # None: every condition that applies to a family
    seed: int = 0
    batch_size: int = 16
    scoring: str = "letters"
    strict: bool = False
    switch_source: str = "mixed"
    pool_part: str = "eval"  # perturbation pools: eval (held out from training) or train
    max_new_tokens: int = 10
    repetition_penalty: float = 1.2
    n_boot: int = 2000
    reference: dict[str, str] = field(default_factory=lambda: dict(REFERENCE_CONDITION))
    # adversarial conditions: PGD settings other than eps (see modint.attacks.PGDConfig)
    attack: dict[str, Any] = field(default_factory=lambda: {"steps": 10, "step_rule": "sign", "restarts": 1})
    save_adversarial: bool = False  # write each attacked image to OUT/adversarial/
    # letter scoring: compute each distinct prompt prefix (header + image) once and run only the
    # suffixes (modint.models.sharing); False: one full forward per input, the reference path
    share: bool = True
    prefix_cache_mb: int = 64  # memory bound of the cached prefixes' keys and values
    # per-record reliance measures (modint.diagnose.reliance); letter scoring, heuristic conditions
    reliance: bool = False
    # embedding attacks on image-heavy samples: the text after the image (after_image) or all of
    # it, chat header included (all); modint.attacks.vlm.attack
    embed_text: str = "after_image"
    # what batch_size counts: work items (one per sample and condition) or whole samples (each
    # attack condition then runs PGD over up to batch_size samples at once)
    batch_unit: str = "inputs"

    def check(self) -> None:
        if self.scoring not in SCORING_MODES:
            raise ValueError(f"unknown scoring {self.scoring!r}; use one of {', '.join(SCORING_MODES)}")
        for name in self.conditions or []:
            get_condition(name)  # KeyError listing the known names
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if self.prefix_cache_mb < 0:
            raise ValueError("prefix cache size must be >= 0 MB")
        if self.reliance and self.scoring != "letters":
            raise ValueError("reliance measures read option-letter scores: use --scoring letters")
        if self.embed_text not in ("after_image", "all"):
            raise ValueError(f"unknown embed text {self.embed_text!r}; use after_image or all")
        if self.batch_unit not in ("inputs", "samples"):
            raise ValueError(f"unknown batch unit {self.batch_unit!r}; use inputs or samples")
        if self.pool_part not in ("train", "eval"):
            raise ValueError(f"unknown pool part {self.pool_part!r}; use train or eval")
        from modint.attacks import PGDConfig

        try:
            PGDConfig(eps=0, **self.attack).check()
        except TypeError as exc:
            raise ValueError(f"bad attack setting: {exc}") from None


@dataclass
class _Item:
    sample: Sample
    condition: str


def plan(samples: Sequence[Sample], config: DiagnoseConfig) -> tuple[list[list[_Item]], list[dict]]:
    """Work items grouped per sample, and error records for samples that cannot run at all
    (invalid fields, duplicate ids). A family with no requested condition contributes nothing."""
    groups: list[list[_Item]] = []
    errors: list[dict] = []
    seen: set[str] = set()
    dup_count: dict[str, int] = {}
    for sample in samples:
        try:
            names = conditions_for(sample.family, config.conditions)
        except (KeyError, ValueError):
            names = list(config.conditions or ["clean"])
        problem = None
        if sample.id in seen:
            problem = f"sample {sample.id!r}: duplicate id (only the first is run)"
        else:
            try:
                validate_sample(sample)
            except SampleError as exc:
                problem = str(exc)
        if problem:
            if config.strict:
                raise SampleError(problem)
            # A duplicate gets its own record id so that no (id, condition) appears twice.
            dup_count[sample.id] = dup_count.get(sample.id, 0) + (sample.id in seen)
            key = f"{sample.id}#dup{dup_count[sample.id]}" if sample.id in seen else sample.id
            errors.extend(_error_record(sample, name, problem, record_id=key) for name in names)
            seen.add(sample.id)
            continue
        seen.add(sample.id)
        if names:
            groups.append([_Item(sample, name) for name in names])
    return groups, errors


def _error_record(sample: Sample, condition: str, message: str, record_id: str | None = None) -> dict:
    gold = sample.answer if isinstance(sample.answer, int) else None
    return {"id": record_id or sample.id, "family": sample.family, "condition": condition, "gold": gold,
            "pred": None, "correct": False, "probs": None, "error": message, "distractor": None,
            "task": sample.meta.get("task") if isinstance(sample.meta, dict) else None}


def _record(item: Sample, condition: str, probs: list[float] | None, pred: int | None,
            response: str | None) -> dict:
    record = {"id": item.id, "family": item.family, "condition": condition, "gold": item.answer,
              "pred": pred, "correct": pred == item.answer, "probs": probs, "error": None,
              "distractor": item.meta.get("distractor"), "task": item.meta.get("task")}
    if response is not None:
        record["response"] = response
    if "switched_from" in item.meta:
        record["switched_from"] = item.meta["switched_from"]
    return record


class Scorer:
    """Turns prepared (perturbed, image-decoded) samples into records: one adapter call for the
    heuristic conditions, one attack per adversarial condition present in the batch."""

    def __init__(self, adapter: Any, config: DiagnoseConfig, out_dir: Path | None = None):
        self.adapter = adapter
        self.config = config
        self.out_dir = out_dir
        self.shared: Any = None  # the prefix-sharing scorer, made on first use (letter scoring only)

    def _letters(self, samples: list[Sample]) -> list:
        if not self.config.share:
            return self.adapter.score(samples)
        return self._shared_scorer().score(samples)

    def _shared_scorer(self) -> Any:
        if self.shared is None:
            from modint.models.sharing import PrefixCache, SharedScorer

            cache = PrefixCache(max_bytes=self.config.prefix_cache_mb * 2**20)
            self.shared = SharedScorer(self.adapter, cache, batch_size=self.config.batch_size)
            if self.shared.blocker:
                log.info("prefix sharing does not apply to this model (%s): reference path", self.shared.blocker)
        return self.shared

    def expect(self, batches: list[list[_Item]], pools: Any, rank: int = 0, world: int = 1) -> None:
        """Tell the prefix cache which images later batches reuse (``prefix_plan``); ``batches``
        are every rank's, of which this one scores ``batches[rank::world]``."""
        if self.config.scoring == "letters" and self.config.share and not self.config.reliance:
            if not self._shared_scorer().blocker:
                from modint.diagnose.prefix_plan import prefix_calls

                calls = prefix_calls(batches, self.config.seed, pools)
                self.shared.reused = {use for use, at in calls.items() if len(at) > 1}
                self.shared.cache.expect({use: [i // world for i in at if i % world == rank] for use, at in calls.items()})

    def at_batch(self, index: int) -> None:
        """Batch ``index`` of the planned ones is scored next (past the last: the run is done)."""
        if self.shared is not None:
            self.shared.cache.at_call(index)

    def sharing_report(self) -> dict[str, Any]:
        """For the manifest: whether prefixes were shared, why not, and the prefix cache's counters."""
        if self.shared is None:
            return {"requested": self.config.share, "used": False, "reason": None}
        return {"requested": True, "used": self.shared.blocker is None, "reason": self.shared.blocker,
                **self.shared.cache.stats()}

    def __call__(self, prepared: list[tuple[Sample, str]]) -> list[dict]:
        records: list[dict | None] = [None] * len(prepared)
        plain = [i for i, (_, c) in enumerate(prepared) if not get_condition(c).attack_space]
        for i, rec in zip(plain, self._score([prepared[i] for i in plain]) if plain else []):
            records[i] = rec
        attacked: dict[str, list[int]] = {}
        for i, (_, c) in enumerate(prepared):
            if get_condition(c).attack_space:
                attacked.setdefault(c, []).append(i)
        for condition, rows in attacked.items():
            for i, rec in zip(rows, self._attack(condition, [prepared[i][0] for i in rows])):
                records[i] = rec
        strongest_within_ball([records[i] for rows in attacked.values() for i in rows])
        return records  # type: ignore[return-value]

    def _score(self, prepared: list[tuple[Sample, str]]) -> list[dict]:
        samples = [s for s, _ in prepared]
        if self.config.scoring == "letters" and self.config.reliance:
            # One eager forward gives the scores and the measures (not the shared fast path).
            from modint.diagnose.reliance import measure

            return [{**_record(s, c, [round(float(p), 6) for p in probs], pred, None), "reliance": measures}
                    for (s, c), (probs, pred, measures) in zip(prepared, measure(self.adapter, samples))]
        if self.config.scoring == "letters":
            scored = self._letters(samples)
            return [_record(s, c, [round(float(p), 6) for p in r.probs], r.pred, None)
                    for (s, c), r in zip(prepared, scored)]
        texts = self.adapter.generate(samples, max_new_tokens=self.config.max_new_tokens,
                                      repetition_penalty=self.config.repetition_penalty)
        preds = [self.adapter.parse(t, s) for s, t in zip(samples, texts)]
        # The published scoring retries an unparsed answer once. Greedy decoding would repeat the
        # same text, so the retry lets the answer run on: twice the new tokens.
        retry = [i for i, p in enumerate(preds) if p is None]
        if retry:
            again = self.adapter.generate([samples[i] for i in retry], max_new_tokens=2 * self.config.max_new_tokens,
                                          repetition_penalty=self.config.repetition_penalty)
            for i, text in zip(retry, again):
                texts[i], preds[i] = text, self.adapter.parse(text, samples[i])
        records = [_record(s, c, None, p, t) for (s, c), p, t in zip(prepared, preds, texts)]
        for i in retry:
            records[i]["retried"] = True
        return records

    def _attack(self, condition: str, samples: list[Sample]) -> list[dict]:
        """Option-letter scores under PGD (generate scoring does not apply: the attack is on the
        letter probabilities)."""
        from modint.attacks import PGDConfig
        from modint.attacks.vlm import attack

        cond = get_condition(condition)
        pgd = PGDConfig(eps=cond.parameters["eps"], seed=self.config.seed, **self.config.attack)
        records = []
        for s, outcome in zip(samples, attack(self.adapter, samples, cond.attack_space, pgd,
                                              embed_text=self.config.embed_text, share=self.config.share)):
            rec = _record(s, condition, [round(float(p), 6) for p in outcome.probs], outcome.pred, None)
            rec.update({"attack_space": cond.attack_space, "eps": pgd.eps, "attack_target": outcome.target,
                        "perturbation": round(outcome.perturbation, 6)})
            if outcome.image is not None and self.config.save_adversarial and self.out_dir is not None:
                folder = self.out_dir / "adversarial"
                folder.mkdir(exist_ok=True)
                name = f"{_safe(s.id)}__{_safe(condition)}.png"
                outcome.image.save(folder / name)
                rec["adversarial_image"] = f"adversarial/{name}"
            records.append(rec)
        return records


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in text)


def _prepare(item: _Item, config: DiagnoseConfig, pools: Any, decoded: dict[str, Any]) -> Sample:
    perturbed = apply_condition(item.sample, item.condition, config.seed, pools)
    if perturbed.image is not None and perturbed.image is item.sample.image:
        # Conditions that keep the sample's image (text perturbations) share one decoding of it.
        if item.sample.id not in decoded:
            decoded[item.sample.id] = load_image(item.sample)
        return perturbed.replace(image=decoded[item.sample.id])
    return perturbed.replace(image=load_image(perturbed))


def _run_batch(batch: list[_Item], scorer: Scorer, config: DiagnoseConfig, pools: Any) -> list[dict]:
    """Records for a batch; a sample that fails (bad image, a model error on its input) becomes
    an error record and the rest of the batch still runs."""
    prepared, records, decoded = [], {}, {}
    for i, item in enumerate(batch):
        try:
            prepared.append((i, _prepare(item, config, pools, decoded), item.condition))
        except SampleError as exc:
            if config.strict:
                raise
            records[i] = _error_record(item.sample, item.condition, str(exc))
    if prepared:
        try:
            for (i, _, _), rec in zip(prepared, scorer([(s, c) for _, s, c in prepared])):
                records[i] = rec
        except Exception as exc:
            if config.strict or len(prepared) == 1:
                if config.strict:
                    raise
                i, s, c = prepared[0]
                records[i] = _error_record(batch[i].sample, c, f"sample {s.id!r} ({c}): model failed: "
                                                               f"{type(exc).__name__}: {exc}")
            else:  # isolate the failing sample by scoring one at a time
                log.warning("batch failed (%s); retrying one sample at a time", exc)
                for i, s, c in prepared:
                    try:
                        records[i] = scorer([(s, c)])[0]
                    except Exception as one_exc:
                        records[i] = _error_record(batch[i].sample, c, f"sample {s.id!r} ({c}): model failed: "
                                                                       f"{type(one_exc).__name__}: {one_exc}")
    return [records[i] for i in range(len(batch))]


# Letter scoring with shared prefixes takes this many batches' worth of conditions per call: its
# forwards still hold at most batch_size rows, and a larger call buckets rows by length better
# and runs fewer forwards.
SHARED_CALL_BATCHES = 4


def _call_size(todo: list[list[_Item]], config: DiagnoseConfig) -> int:
    """Work items per scoring call (an attack batches every item of its condition in the call)."""
    shared = config.scoring == "letters" and config.share and not config.reliance
    if shared and not any(get_condition(it.condition).attack_space for g in todo for it in g):
        return config.batch_size * SHARED_CALL_BATCHES
    return config.batch_size


def _batches(groups: list[list[_Item]], batch_size: int, unit: str = "inputs") -> list[list[_Item]]:
    """Pack whole sample groups into batches of about ``batch_size`` items, or of ``batch_size``
    samples (``unit="samples"``)."""
    batches, current, n_samples = [], [], 0  # a group holds one sample's items
    for group in groups:
        full = n_samples >= batch_size if unit == "samples" else len(current) + len(group) > batch_size
        if current and full:
            batches.append(current)
            current, n_samples = [], 0
        current.extend(group)
        n_samples += 1
    if current:
        batches.append(current)
    return batches


def run_diagnosis(adapter: Any, samples: Sequence[Sample], out_dir: str | Path, config: DiagnoseConfig | None = None,
                  progress: Progress | None = None, run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Diagnose ``samples`` with ``adapter`` into ``out_dir``; returns the summary.

    ``run_info`` (model, benchmark, split, command, ...) goes into summary.json / manifest.json.
    The report is the caller's to write (``modint.api.run_diagnosis`` writes report.html).
    """
    config = config or DiagnoseConfig()
    config.check()
    run_info = dict(run_info or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rank, world, barrier = distributed_state()
    with rundir.RunLock(out, "" if rank == 0 else f"rank{rank}"):  # one writer per run directory
        return _diagnose_locked(adapter, samples, out, config, progress, run_info, started, rank, world, barrier)


def _diagnose_locked(adapter: Any, samples: Sequence[Sample], out: Path, config: DiagnoseConfig,
                     progress: Progress | None, run_info: dict[str, Any], started: float, rank: int, world: int,
                     barrier: Callable[[], None]) -> dict[str, Any]:
    groups, invalid = plan(samples, config)
    _check_letters(adapter, groups, config)
    pools = default_pools(list(samples), switch_source=config.switch_source, part=config.pool_part)
    final_path = out / rundir.RECORDS
    own_path = final_path if world == 1 else out / f"records.rank{rank}.jsonl"
    done = set(rundir.iter_keys(rundir.read_records(final_path)))
    for r in range(world if world > 1 else 0):  # every rank's shard: all ranks plan the same calls
        done |= set(rundir.iter_keys(rundir.read_records(out / f"records.rank{r}.jsonl")))
    barrier()  # before any rank writes

    invalid = [r for r in invalid if (r["id"], r["condition"]) not in done] if rank == 0 else []
    todo = [[it for it in g if (it.sample.id, it.condition) not in done] for g in groups]
    todo = [g for g in todo if g]
    # Ranks share out whole calls: a batched forward's rounding depends on the rows it holds.
    every_rank = _batches(todo, _call_size(todo, config), config.batch_unit)
    batches = every_rank[rank::world]
    total = sum(len(b) for b in batches) + len(invalid)
    scorer = Scorer(adapter, config, out)
    produced = 0
    scorer.expect(every_rank, pools, rank, world)  # from the work that remains: a resumed run counts only that
    with rundir.RecordWriter(own_path) as writer:
        if invalid:
            writer.write_many(invalid)
            produced += len(invalid)
            if progress:
                progress(produced, total)
        for index, batch in enumerate(batches):
            scorer.at_batch(index)
            writer.write_many(_run_batch(batch, scorer, config, pools))
            produced += len(batch)
            if progress:
                progress(produced, total)
        scorer.at_batch(len(batches))
    barrier()
    if rank != 0:
        barrier()
        return {}
    if world > 1:
        rundir.merge_rank_files(out, world)
    records = rundir.read_records(final_path)
    summary = {**{k: run_info.get(k) for k in ("model", "benchmark", "split")},
               "seed": config.seed, "scoring": config.scoring,
               **summarize(records, reference=config.reference, n_boot=config.n_boot, seed=config.seed,
                         condition_order=sorted({r["condition"] for r in records}, key=_rank_or_last))}
    curves = robustness_curves(records, config.reference)
    if curves:
        summary["robustness"] = curves
    gain = multimodal_gain(records, config.reference)
    if gain:
        summary["multimodal_gain"] = gain
    reliance = reliance_summary(records, config.reference, n_boot=config.n_boot, seed=config.seed)
    if reliance:
        summary["reliance"] = reliance
    rundir.write_json(out / rundir.SUMMARY, summary)
    elapsed = time.time() - started
    manifest = _manifest(adapter, samples, config, run_info, records, elapsed, produced, world)
    rundir.write_json(out / rundir.MANIFEST, {**manifest, "pools": pools.describe(),
                                              "prefix_sharing": scorer.sharing_report()})
    barrier()
    return summary


def _check_letters(adapter: Any, groups: list[list[_Item]], config: DiagnoseConfig) -> None:
    """Letter scoring and every attack read option-letter tokens: a model without a token for a
    letter the samples need fails here (LetterScoringError), before any record is written."""
    lettered = [it.sample for g in groups for it in g
                if config.scoring == "letters" or get_condition(it.condition).attack_space]
    if lettered:
        adapter.check_letters(max(len(s.options) for s in lettered))


def _rank_or_last(name: str) -> tuple:
    try:
        return (0, *condition_rank(name))
    except KeyError:  # a record of a condition this version does not know
        return (1, 0, 0.0)


def _plain(value: Any) -> Any:
    """JSON-safe form of processor settings (transformers uses dict-like SizeDict objects)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _manifest(adapter: Any, samples: Sequence[Sample], config: DiagnoseConfig, run_info: dict, records: list[dict],
              elapsed: float, produced: int, world: int) -> dict[str, Any]:
    import numpy
    import torch
    import transformers

    import modint

    model = getattr(adapter, "model", None)
    mconf = getattr(model, "config", None)
    processor = getattr(adapter, "processor", None)
    image_processor = getattr(processor, "image_processor", None)
    families: dict[str, int] = {}
    for s in samples:
        families[s.family] = families.get(s.family, 0) + 1
    conditions = sorted({(r["family"], r["condition"]) for r in records})
    return {
        "model": {"id": run_info.get("model") or getattr(adapter, "name", None),
                  "model_type": getattr(mconf, "model_type", None),
                  "revision": getattr(mconf, "_commit_hash", None),
                  "dtype": str(getattr(model, "dtype", "")).replace("torch.", ""),
                  "device": str(getattr(adapter, "device", "")),
                  "parameters": sum(p.numel() for p in model.parameters()) if model is not None else None},
        "processor": {"class": type(processor).__name__ if processor is not None else None,
                      "image_processor": type(image_processor).__name__ if image_processor is not None else None,
                      "image_size": _plain(getattr(image_processor, "size", None)),
                      "chat_template": bool(getattr(processor, "chat_template", None))},
        "benchmark": {"name": run_info.get("benchmark"), "split": run_info.get("split"),
                      "limit": run_info.get("limit"), "samples": len(samples), "per_family": families},
        "conditions": [{"family": f, "condition": c, "seed": config.seed,
                        "parameters": get_condition(c).parameters if hasattr(get_condition(c), "parameters") else {},
                        "reference": config.reference.get(f)} for f, c in conditions],
        "config": asdict(config),
        "scoring": config.scoring,
        "versions": {"modint": modint.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": numpy.__version__,
                     "python": platform.python_version()},
        "command": run_info.get("command") or " ".join(sys.argv),
        "processes": world,
        "timing": {"seconds": round(elapsed, 3), "records_this_run": produced,
                   "records_per_second": round(produced / elapsed, 3) if elapsed > 0 else None},
    }
