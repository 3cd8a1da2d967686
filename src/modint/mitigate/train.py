"""The mitigation recipe: heuristic views + embedding-space PGD + consistency, on any adapter.

One training step (``step_loss``) for anchors drawn with modality quotas:
- every anchor in its family's reference condition (text-heavy: noise image; others: clean);
- views (recipes ``aug*``): text-heavy -> switched / black / white image; image-heavy ->
  misleading / unrelated text; VQA -> none; built by the perturbation library, seeded by
  (seed, epoch, sample id, condition), so every epoch sees fresh perturbations;
- ``L = CE(answer tokens of anchors and views) + w_adv * CE(adversarial views)
  + lambda * mean consistency(view || sg(anchor))`` with the adversarial views (embedding PGD on
  the irrelevant modality, ``modint.attacks``) joining the consistency term; ``adv_mode=free``
  swaps the k-step PGD for the "free" perturbation of Shafahi et al. (``mitigate.adversarial``);
- optionally (``preserve_weight``; not in the paper, off by default) ``+ mu * KL(p_before || q)``
  on the clean anchors' answers, where p_before is the model before fine-tuning: learning
  without forgetting, so the reference accuracies hold while the views are trained.

Data parallel: each rank takes its own quota shard. Under a plain multi-process launch the
gradients are averaged over ranks after backward (an all-reduce, so every forward path of the
adapter works unchanged). When the accelerate config shards the model (FSDP2 or DeepSpeed ZeRO,
``configs/accelerate/``), the model and optimizer go through ``Accelerator.prepare`` instead; the
adapter keeps calling the model (FSDP2 shards it in place; DeepSpeed hooks its modules), whose
forward gathers the parameters it needs.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import torch

from modint.attacks import PGDConfig
from modint.data.sample import IMAGE_HEAVY, TEXT_HEAVY, VQA, Sample, load_image
from modint.mitigate.adversarial import ADV_MODES, FreeAdversary, pgd_delta, perturbed_mask
from modint.mitigate.forward import answer_states
from modint.mitigate.step_forward import bucketed_states
from modint.mitigate.objectives import consistency, preservation
from modint.mitigate.sampler import DEFAULT_QUOTAS, QuotaBatchSampler
from modint.mitigate.shared_prefix import prefix_sharing_blocker
from modint.mitigate.trainable import prepare_trainable, reference_model
from modint.mitigate.vision_cache import encode_each_image_once
from modint.perturb import REFERENCE_CONDITION, apply_condition, default_pools
from modint.seeding import derive_seed

log = logging.getLogger(__name__)

VIEWS = {TEXT_HEAVY: ("switched_image", "black_image", "white_image"),
         IMAGE_HEAVY: ("misleading_text", "unrelated_text"), VQA: ()}

@dataclass(frozen=True)
class Recipe:
    """What a recipe trains: the anchors of ``families``, and which terms join their CE."""

    families: tuple[str, ...]
    views: bool = False  # heuristic views of each anchor (text-heavy: images, image-heavy: texts)
    consistency: bool = False  # each view's answer distribution pulled to its anchor's
    adversarial: bool = False  # embedding-space PGD views of each anchor


ALL_FAMILIES = (IMAGE_HEAVY, TEXT_HEAVY, VQA)
RECIPES = {
    "sft": Recipe(ALL_FAMILIES),
    "vqa_only": Recipe((VQA,)),
    "aug": Recipe(ALL_FAMILIES, views=True),
    "aug_kl": Recipe(ALL_FAMILIES, views=True, consistency=True),
    "aug_kl_pgd": Recipe(ALL_FAMILIES, views=True, consistency=True, adversarial=True),
}
# Presets (settings for a model, e.g. the small demo model): configs/train/<name>.yaml, loaded by
# modint.mitigate.config.


@dataclass
class TrainConfig:
    recipe: str = "aug_kl_pgd"
    epochs: float = 1.0
    max_steps: int | None = None
    lr: float = 2e-5
    weight_decay: float = 1e-4
    adam_eps: float = 1e-6
    warmup_ratio: float = 0.03
    grad_clip: float = 1.0
    quotas: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    consistency: str = "kl"  # kl | js | skl | mse
    consistency_weight: float = 0.01  # lambda
    temperature: float = 1.0
    shift_logits: bool = True  # False reproduces the published off-by-one
    adv_weight: float = 1.0
    # Switched-image views per text-heavy anchor (the paper: 1). Each extra view draws another
    # picture from the switch pool: the switched image is the one text-heavy view that real
    # pictures make hard (black and white are near their reference already).
    switched_views: int = 1
    preserve_weight: float = 0.0  # mu: KL(model before fine-tuning || model) on clean anchors; 0 = off (published)
    adv_noise: str = "pgd"  # pgd | gaussian (the RG variant)
    # pgd: k PGD steps per training step, the model frozen (the paper's); free: delta gets its
    # gradient from the training backward and is carried across steps (Shafahi et al. 2019)
    adv_mode: str = "pgd"
    pgd_eps: float = 0.05
    pgd_eps_relative: bool = True  # eps x RMS of the perturbed embeddings; False: absolute
    # eps for the rows whose irrelevant modality is the image (text-heavy anchors); None: pgd_eps.
    # Not in the paper: a ball of 0.05 x RMS around the image tokens holds nothing like a whole
    # other picture, which is what a switched image is.
    pgd_eps_image: float | None = None
    pgd_steps: int = 2
    pgd_step_rule: str = "sign"
    pgd_alpha: float | None = None
    trainable: str = "full"  # full (vision tower frozen) | all | lora | projector
    lora_r: int = 128
    lora_alpha: int = 256
    lora_targets: list[str] | None = None  # None: the language model's attention (models/specs.py LORA_TARGETS)
    seed: int = 0
    checkpoint_every: int = 0
    log_every: int = 1

    def check(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; use one of {', '.join(RECIPES)}")
        if self.trainable not in ("full", "all", "lora", "projector"):
            raise ValueError(f"unknown trainable {self.trainable!r}; use full, all, lora or projector")
        if self.adv_noise not in ("pgd", "gaussian"):
            raise ValueError(f"unknown adv_noise {self.adv_noise!r}; use pgd or gaussian")
        if self.adv_mode not in ADV_MODES:
            raise ValueError(f"unknown adv_mode {self.adv_mode!r}; use one of {', '.join(ADV_MODES)}")
        if self.adv_mode == "free" and self.adv_noise != "pgd":
            raise ValueError("adv_mode=free ascends the loss: it has no gaussian variant (adv_noise=pgd)")
        if self.switched_views < 1:
            raise ValueError(f"switched_views must be >= 1, got {self.switched_views}")
        if self.preserve_weight < 0:
            raise ValueError(f"preserve_weight must be >= 0, got {self.preserve_weight}")
        if self.lora_targets is not None and (isinstance(self.lora_targets, str) or not self.lora_targets
                                              or not all(isinstance(t, str) and t for t in self.lora_targets)):
            raise ValueError(f"lora_targets must be a list of layer names (--set lora_targets=[q_proj,v_proj]), "
                             f"got {self.lora_targets!r}")
        PGDConfig(eps=self.pgd_eps, steps=self.pgd_steps, step_rule=self.pgd_step_rule).check()
        if self.pgd_eps_image is not None:
            PGDConfig(eps=self.pgd_eps_image, steps=self.pgd_steps, step_rule=self.pgd_step_rule).check()


# ------------------------------------------------------------------------------- one step

def _decoded(sample: Sample) -> Sample:
    return sample.replace(image=load_image(sample))


def build_sequences(anchors: Sequence[Sample], cfg: TrainConfig, pools: Any, epoch: int
                    ) -> tuple[list[Sample], list[int], list[tuple[int, int]]]:
    """(sequences, row of each anchor, (view row, anchor row) pairs) for a batch of anchors."""
    with_views = RECIPES[cfg.recipe].views
    seed = derive_seed("train-views", cfg.seed, epoch)
    sequences, anchor_rows, pairs = [], [], []
    for s in anchors:
        anchor_rows.append(len(sequences))
        sequences.append(_decoded(apply_condition(s, REFERENCE_CONDITION[s.family], seed, pools)))
        views = [(v, seed) for v in VIEWS[s.family]] if with_views else []
        if with_views and s.family == TEXT_HEAVY:
            views += [("switched_image", derive_seed("train-views", cfg.seed, epoch, k))
                      for k in range(1, cfg.switched_views)]
        for view, view_seed in views:
            pairs.append((len(sequences), anchor_rows[-1]))
            sequences.append(_decoded(apply_condition(s, view, view_seed, pools)))
    return sequences, anchor_rows, pairs


def _adversarial_deltas(adapter: Any, adv_samples: list[Sample], cfg: TrainConfig, step: int,
                        adversary: FreeAdversary | None
                        ) -> Callable[[list[int], list[int], Any, list[Sample], torch.Tensor], torch.Tensor]:
    """``make(adv_index, local, batch, samples, clean) -> delta``: the perturbation of the
    adversarial rows ``adv_index`` (indices into ``adv_samples``) sitting at rows ``local`` of
    ``batch`` (rows ``samples``) with clean merged embeddings ``clean`` [len(adv_index), L, H].
    Exact method: PGD on all of them at once, first; free: a delta from the adversary, whose
    gradient the training backward gives."""
    if cfg.adv_mode == "free":
        if adversary is None:
            raise ValueError("adv_mode=free needs the FreeAdversary that carries delta from step to step")
        all_slots = FreeAdversary.slots(adv_samples)

        def free(adv_index: list[int], local: list[int], batch: Any, samples: list[Sample],
                 clean: torch.Tensor) -> torch.Tensor:
            mask = perturbed_mask(batch, samples)[local]
            return adversary.delta(clean, mask, [adv_samples[j] for j in adv_index], [all_slots[j] for j in adv_index])
        return free
    sub = adapter.encode(adv_samples, with_answers=True)
    exact = pgd_delta(adapter, sub, adv_samples, adapter.embed(sub), cfg, derive_seed("train-pgd", cfg.seed, step))

    def padded(adv_index: list[int], local: list[int], batch: Any, samples: list[Sample],
               clean: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(clean.shape, dtype=exact.dtype, device=clean.device)  # right padding: positions line up
        width = min(clean.shape[1], exact.shape[1])
        out[:, :width] = exact[adv_index, :width]
        return out
    return padded


def step_loss(adapter: Any, anchors: Sequence[Sample], cfg: TrainConfig, pools: Any, epoch: int,
              step: int, reference: Callable[[], ContextManager] | None = None,
              adversary: FreeAdversary | None = None, share: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch of anchors and its parts (for the log). ``reference``: a context in
    which ``adapter`` is the model before fine-tuning (needed when ``cfg.preserve_weight`` > 0).
    ``adversary``: carries the perturbation across steps under ``adv_mode=free`` (call its
    ``ascend`` after the backward).

    Anchors, their views and their adversarial views run together, in buckets of similar length
    (``mitigate.forward``): the adversarial rows are copies of the attacked anchors whose merged
    input embeddings are swapped for ``E.detach() + M * delta`` on the way into the language model.
    A frozen vision tower encodes each distinct image once in the step (``mitigate.vision_cache``);
    rows that share the chat header and image compute it once (``mitigate.shared_prefix``; ``share``
    False computes every row whole, the same numbers)."""
    with encode_each_image_once(adapter.model):
        return _step_loss(adapter, anchors, cfg, pools, epoch, step, reference, adversary, share)


def _step_loss(adapter: Any, anchors: Sequence[Sample], cfg: TrainConfig, pools: Any, epoch: int, step: int,
               reference: Callable[[], ContextManager] | None, adversary: FreeAdversary | None, share: bool
               ) -> tuple[torch.Tensor, dict[str, float]]:
    with_consistency, with_adv = RECIPES[cfg.recipe].consistency, RECIPES[cfg.recipe].adversarial
    sequences, anchor_rows, pairs = build_sequences(anchors, cfg, pools, epoch)
    attacked = [anchor_rows[i] for i, s in enumerate(anchors) if s.family in (IMAGE_HEAVY, TEXT_HEAVY)] \
        if with_adv else []
    n = len(sequences)
    rows = sequences + [sequences[r] for r in attacked]
    make_delta = _adversarial_deltas(adapter, rows[n:], cfg, step, adversary) if attacked else None
    states = bucketed_states(adapter, rows, n, cfg.shift_logits, cfg.consistency == "mse", make_delta, share)
    loss = ce = states.ce(range(n))
    parts = {"ce": ce.item()}
    cons_terms: list[torch.Tensor] = []
    if with_consistency and pairs:
        view, anchor = states.paired(pairs, hidden=cfg.consistency == "mse")
        cons_terms.append(consistency(view, anchor, cfg.consistency, cfg.temperature) * len(pairs))
    n_views = len(pairs)
    if attacked:
        adv_ce = states.ce(range(n, len(rows)))
        loss = loss + cfg.adv_weight * adv_ce
        parts["adv_ce"] = adv_ce.item()
        # how far the perturbation pushed the answer loss above the clean one
        parts["pgd_margin"] = adv_ce.item() - states.ce(attacked).item()
        if with_consistency and cfg.consistency != "mse":
            # Adversarial views join the consistency term against their clean anchors.
            v_pos, a_pos = states.paired([(n + j, r) for j, r in enumerate(attacked)])
            cons_terms.append(consistency(v_pos, a_pos, cfg.consistency, cfg.temperature) * len(attacked))
            n_views += len(attacked)
    if cons_terms:
        cons = torch.stack(cons_terms).sum() / n_views  # mean over all views
        loss = loss + cfg.consistency_weight * cons
        parts["consistency"] = cons.item()
    if cfg.preserve_weight > 0:
        if reference is None:
            raise ValueError("preserve_weight > 0 needs the model before fine-tuning (reference)")
        clean = [sequences[r] for r in anchor_rows]
        with torch.no_grad(), reference():
            before = answer_states(adapter, adapter.encode(clean, with_answers=True), cfg.shift_logits)
        student, ref = states.paired([(r, j) for j, r in enumerate(anchor_rows)], other=before)
        keep = preservation(student, ref, cfg.temperature)
        loss = loss + cfg.preserve_weight * keep
        parts["preserve"] = keep.item()
    parts["loss"] = loss.item()
    return loss, parts


# ------------------------------------------------------------------------------- the loop

def sharded_accelerator() -> Any:
    """An ``accelerate.Accelerator`` when the launch shards the model (``accelerate launch`` with
    an FSDP or DeepSpeed config sets these variables), else None (plain data parallel)."""
    import os

    if not any(os.environ.get(k, "").lower() in ("1", "true")
               for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")):
        return None
    from accelerate import Accelerator

    return Accelerator()


def _all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    if world <= 1:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def lr_factor(step: int, warmup: int, total: int) -> float:
    """The learning rate of step ``step`` (0-based) as a fraction of the peak: a linear warm-up
    reaching the peak at step ``warmup - 1``, then a cosine counted from the end of the warm-up,
    from the peak at step ``warmup`` to zero at step ``total`` (so the last step still learns)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))


def train(adapter: Any, samples: Sequence[Sample], out_dir: str | Path, cfg: TrainConfig | None = None,
          progress: Callable[[int, int, dict], None] | None = None, resume: bool = False,
          logger: Any = None, selector: Any | None = None) -> Path:
    """Fine-tune ``adapter.model`` on ``samples``; writes OUT/model, OUT/train_log.jsonl and,
    with ``checkpoint_every``, OUT/checkpoint/ (``resume=True`` continues from it). ``logger``
    (``modint.mitigate.logging_backends``) receives each logged step on rank 0.
    ``selector`` (a ``select.CheckpointSelector``): scores the weights at every checkpoint and
    after the last step; the best ones are saved (one process only)."""
    cfg = cfg or TrainConfig()
    cfg.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from modint.diagnose.rundir import RunLock
    from modint.distributed import distributed_state

    rank, world, _ = distributed_state()
    if selector is not None and world > 1:
        raise ValueError("choosing a checkpoint on val runs in one process: launch without accelerate")
    with RunLock(out, "" if rank == 0 else f"rank{rank}"):  # one writer per output directory
        return _train_locked(adapter, samples, out, cfg, progress, resume, rank, world, logger, selector)


def _train_locked(adapter: Any, samples: Sequence[Sample], out: Path, cfg: TrainConfig,
                  progress: Callable[[int, int, dict], None] | None, resume: bool, rank: int, world: int,
                  logger: Any, selector: Any) -> Path:
    families_trained = RECIPES[cfg.recipe].families
    samples = [s for s in samples if s.family in families_trained]
    quotas = {f: q for f, q in cfg.quotas.items() if f in families_trained}
    sampler = QuotaBatchSampler([s.family for s in samples], quotas, cfg.seed, rank, world)
    per_epoch = len(sampler)
    if per_epoch == 0:
        raise ValueError(f"too few samples for one batch with quotas {quotas} on {world} process(es)")
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    pools = default_pools(list(samples), part="train")  # never the eval part diagnosis uses
    acc = sharded_accelerator()
    if acc is not None and cfg.preserve_weight > 0:  # refused before the copy is made
        raise ValueError("preserve_weight under FSDP/DeepSpeed is not supported yet (the reference copy "
                         "would not be sharded): use plain data parallel or preserve_weight=0")
    if acc is not None and cfg.trainable == "lora":
        raise ValueError("trainable=lora under FSDP/DeepSpeed is not supported yet: use plain data parallel "
                         "(accelerate launch --multi_gpu) for LoRA")
    adapter.model.train()
    params = prepare_trainable(adapter, cfg)
    reference = reference_model(adapter, cfg)  # after peft wraps the model, before any step
    if (no_sharing := prefix_sharing_blocker(adapter)) is not None:
        log.info("every row of a step computed whole (no shared prefixes): %s", no_sharing)
    adversary = FreeAdversary(cfg, derive_seed("train-free", cfg.seed, rank)) if cfg.adv_mode == "free" else None
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=cfg.adam_eps)
    warm = max(1, int(cfg.warmup_ratio * total))
    # The schedule counts our steps (one per global batch): it stays outside accelerate's
    # prepare, which would step it once per process.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warm, total))
    prepared = adapter.model
    if acc is not None:
        prepared, opt = acc.prepare(adapter.model, opt)
        adapter.model = getattr(prepared, "module", prepared)  # DeepSpeed: an engine around the model
        params = [p for p in adapter.model.parameters() if p.requires_grad]
    start = 0
    ckpt = out / "checkpoint"
    log_path = out / "train_log.jsonl"
    if resume and acc is not None and (ckpt / "sharded" / "step.json").exists():
        acc.load_state(str(ckpt / "sharded"))
        sched.load_state_dict(torch.load(ckpt / "sharded" / "scheduler.pt", weights_only=True))
        start = json.loads((ckpt / "sharded" / "step.json").read_text())["step"]
    elif resume and acc is None and (ckpt / "state.pt").exists():
        state = torch.load(ckpt / "state.pt", weights_only=True)  # tensors and plain values only
        names = {n for n, p in adapter.model.named_parameters() if p.requires_grad}
        adapter.model.load_state_dict({k: v for k, v in state["params"].items() if k in names}, strict=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if adversary is not None and "free_adversary" in state:
            adversary.load_state_dict(state["free_adversary"])
        start = state["step"]
        log.info("resumed at step %d", start)
        if rank == 0 and log_path.exists():  # drop what the interrupted run logged after its checkpoint
            kept = [l for l in log_path.read_text().splitlines() if _logged_step(l) <= start]
            tmp = log_path.with_name(log_path.name + ".tmp")  # a kill while rewriting must not lose the log
            tmp.write_text("".join(l + "\n" for l in kept))
            tmp.replace(log_path)
    elif rank == 0 and log_path.exists():
        log_path.unlink()  # a fresh run: a stale log would mix two runs
    started = time.time()
    step = 0
    epoch = 0
    while step < total:
        sampler.set_epoch(epoch)
        for indices in sampler:
            if step >= total:
                break
            if step < start:  # fast-forward through the batches a resumed run has done
                step += 1
                continue
            anchors = [samples[i] for i in indices]
            loss, parts = step_loss(adapter, anchors, cfg, pools, epoch, step, reference, adversary)
            opt.zero_grad(set_to_none=True)
            if acc is None:
                loss.backward()
                _all_reduce_grads(params, world)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            else:
                acc.backward(loss)
                grad_norm = acc.clip_grad_norm_(params, cfg.grad_clip)
            if adversary is not None:  # delta's gradient came from the same backward
                adversary.ascend()
            opt.step()
            sched.step()
            step += 1
            entry = {"step": step, "epoch": epoch, "lr": sched.get_last_lr()[0], **parts,
                     "grad_norm": float(grad_norm) if grad_norm is not None else None,
                     "seconds": round(time.time() - started, 2)}
            if rank == 0 and (step % cfg.log_every == 0 or step == total):
                with log_path.open("a") as f:
                    f.write(json.dumps(entry) + "\n")
                if logger is not None:
                    logger.log_step(step, entry)
            if progress:
                progress(step, total, parts)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
                if acc is not None:  # collective: every rank writes its shard
                    _save_sharded_checkpoint(acc, sched, step, ckpt, rank)
                elif rank == 0:
                    _save_checkpoint(adapter, opt, sched, step, ckpt, adversary)
                if selector is not None:
                    selector.consider(adapter, step)
        epoch += 1
    adapter.model.eval()
    if selector is not None:
        selector.consider(adapter, step)
        selector.restore(adapter)
    model_dir = out / "model"
    full_state = acc.get_state_dict(prepared) if acc is not None else None  # collective: gathers the shards
    if rank == 0:
        save_model(adapter, model_dir, state_dict=full_state)
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))
        (out / "pools.json").write_text(json.dumps(pools.describe(), indent=1))
    return model_dir


def _logged_step(line: str) -> float:
    """The step of a train_log line; a blank or torn one (a kill mid-write) counts as after any."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def _save_checkpoint(adapter: Any, opt, sched, step: int, ckpt: Path, adversary: FreeAdversary | None = None) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    trainable = {n: p.detach().clone() for n, p in adapter.model.named_parameters() if p.requires_grad}
    tmp = ckpt / "state.pt.tmp"
    state = {"params": trainable, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step}
    if adversary is not None:  # the carried perturbation: a resumed free run goes on from it
        state["free_adversary"] = adversary.state_dict()
    torch.save(state, tmp)
    tmp.replace(ckpt / "state.pt")  # never a half-written checkpoint


def _save_sharded_checkpoint(acc: Any, sched, step: int, ckpt: Path, rank: int) -> None:
    folder = ckpt / "sharded"
    if rank == 0:  # an interrupted save must not pass for a complete one
        (folder / "step.json").unlink(missing_ok=True)
    acc.wait_for_everyone()
    acc.save_state(str(folder))
    if rank == 0:
        torch.save(sched.state_dict(), folder / "scheduler.pt")
        (folder / "step.json").write_text(json.dumps({"step": step}))  # last: marks the checkpoint complete


def save_model(adapter: Any, model_dir: Path, merge_lora: bool = True, state_dict: dict | None = None) -> None:
    """Standard Hugging Face layout; a LoRA model is merged (loads with plain transformers)
    and its adapter is kept beside it in ``lora/``. ``state_dict``: the gathered weights of a
    sharded model."""
    model = adapter.model
    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(model_dir / "lora")
        if merge_lora:
            model = model.merge_and_unload()
            adapter.model = model
    model.save_pretrained(model_dir, **({"state_dict": state_dict} if state_dict is not None else {}))
    adapter.processor.save_pretrained(model_dir)
