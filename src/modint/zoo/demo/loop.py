"""The demo recipe's training loop: the vision warm-up, then the stages on the language model."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from modint.data import facts
from modint.data.mini import Scene, load_mini, make_sample, render
from modint.data.sample import IMAGE_HEAVY, TEXT_HEAVY, VQA, Sample
from modint.seeding import derive_seed
from modint.zoo.demo.config import DEMO_CHAT_TEMPLATE, DemoConfig
from modint.zoo.demo.data import (batches, binding_make, concept_scene, drill_examples, mixture_make, naming_make,
                                  pointer_curriculum, with_attention_targets)
from modint.zoo.demo.labels import DIGITS, GLOBAL_HEADS, NAMED_COLOURS, patch_heads, scene_labels
from modint.zoo.demo.losses import (attention_loss, concept_loss, head_loss, letter_attention_loss,
                                    pointer_attention_loss, projector_patch_loss)
from modint.zoo.demo.model import build_demo, corpus_for_tokenizer, encode_examples

log = logging.getLogger(__name__)


def warmup_scene(pool: list[Sample], rng: np.random.Generator, cfg: DemoConfig) -> Scene:
    """A scene for one example of the vision warm-up: a fresh VQA training scene, a single concept or a pool picture."""
    if cfg.vision_vqa_rate > 0 and rng.random() < cfg.vision_vqa_rate:  # (no draw when off: same stream)
        return make_sample(VQA, "train", int(rng.integers(cfg.mixture_pool or cfg.train_per_family))).image.args[0]
    if rng.random() < 0.25:
        concept = str(rng.choice(list(facts.SHAPES) + list(NAMED_COLOURS) + DIGITS))
        return concept_scene(concept, rng)
    return pool[int(rng.integers(len(pool)))].image.args[0]  # the Scene behind a mini image


def warm_up_vision(model, processor, pool: list[Sample], cfg: DemoConfig,
                   progress: Callable[[str, int, int, float], None] | None = None) -> list[dict]:
    tower = model.model.vision_tower
    grid = cfg.image_size // cfg.patch_size
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(cfg.vision_hidden, n) for k, n in patch_heads(cfg).items()})
    heads.update({k: torch.nn.Linear(cfg.vision_hidden, a * b) for k, (a, b) in GLOBAL_HEADS.items()})
    params = list(tower.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.vision_lr, weight_decay=cfg.weight_decay)
    steps = cfg.vision_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.1, 1 - s / max(1, steps)))
    history, running = [], None
    for step in range(steps):
        rng = np.random.default_rng(derive_seed("demo", cfg.seed, "vision", step))
        scenes = [warmup_scene(pool, rng, cfg) for _ in range(cfg.vision_batch)]
        pixels = processor.image_processor([render(s) for s in scenes], return_tensors="pt")["pixel_values"]
        feats = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[model.config.vision_feature_layer][:, 1:]
        loss, accuracy = head_loss(feats, heads, [scene_labels(s, grid) for s in scenes])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if progress:
            progress("vision", step + 1, steps, running)
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log.info("vision %d/%d loss %.4f accuracy %s", step + 1, steps, running,
                     {k: round(v, 3) for k, v in accuracy.items()})
            history.append({"stage": "vision", "step": step + 1, "loss": round(running, 5)})
    return history


def _stages(names: str) -> set[str]:
    return {n.strip() for n in names.split(",") if n.strip()}


def train_demo(out_dir: str | Path, cfg: DemoConfig | None = None,
               progress: Callable[[str, int, int, float], None] | None = None) -> Path:
    """Train the demo model and write it (fp16 safetensors, tokenizer, processor) to ``out_dir``."""
    from modint.models.tokenizer import train_bpe_tokenizer

    cfg = cfg or DemoConfig()
    torch.set_num_threads(cfg.threads)
    started = time.time()
    train = load_mini("train", sizes={"train": cfg.train_per_family})
    by_family = {f: [s for s in train if s.family == f] for f in (IMAGE_HEAVY, TEXT_HEAVY, VQA)}
    if cfg.resume_from:  # continue a run from a stage checkpoint (OUT/stages/<stage>), its tokenizer too
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        model = LlavaForConditionalGeneration.from_pretrained(cfg.resume_from, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(cfg.resume_from)
    else:
        tokenizer = train_bpe_tokenizer(corpus_for_tokenizer(train, np.random.default_rng(cfg.seed)),
                                        vocab_size=cfg.vocab_size, chat_template=DEMO_CHAT_TEMPLATE)
        model, processor = build_demo(cfg, tokenizer)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    log.info("demo model: %.2fM parameters", n_params / 1e6)
    stages = [("naming", naming_make, cfg.naming_steps, cfg.lr),
              ("pointer", pointer_curriculum(cfg.pointer_steps), cfg.pointer_steps, cfg.lr),
              ("mixture", mixture_make, cfg.mixture_steps, cfg.mixture_lr),
              ("binding", binding_make, cfg.binding_steps, cfg.binding_lr)]
    pool = [s for s in train if s.image is not None]
    done = ["vision", *(name for name, *_ in stages)]
    done = done[:done.index(Path(cfg.resume_from).name) + 1] if cfg.resume_from else []
    stages = [st for st in stages if st[0] not in done and st[2] > 0]  # 0 steps: a stage switched off
    history = [] if "vision" in done else warm_up_vision(model, processor, pool, cfg, progress)
    if cfg.checkpoints and "vision" not in done:
        model.save_pretrained(Path(out_dir) / "stages" / "vision")
        processor.save_pretrained(Path(out_dir) / "stages" / "vision")
    tower_params = {id(p) for p in model.model.vision_tower.parameters()}
    patch_stages = _stages(cfg.patch_stages) if cfg.patch_weight > 0 else set()
    attention_stages = _stages(cfg.attention_stages) if cfg.attention_weight > 0 else set()
    pointer_stages = _stages(cfg.pointer_attention_stages) if cfg.pointer_attention_weight > 0 else set()
    drill_stages = _stages(cfg.drill_stages) if cfg.drill_examples > 0 else set()
    heads = None  # training-only per-patch heads on the projector's output, dropped at the end
    if patch_stages & {name for name, *_ in stages}:
        torch.manual_seed(derive_seed("demo", cfg.seed, "patch-heads"))
        heads = torch.nn.ModuleDict({k: torch.nn.Linear(cfg.text_hidden, n) for k, n in patch_heads(cfg).items()})
    for stage, make, steps, lr in stages:
        binding = stage == "binding"
        # The warmed-up tower keeps learning, but slower than the projector and the LM.
        factor = cfg.binding_vision_lr_factor if binding else cfg.vision_lr_factor
        groups = [{"params": [p for p in model.parameters() if id(p) in tower_params], "lr": lr * factor},
                  {"params": [p for p in model.parameters() if id(p) not in tower_params], "lr": lr}]
        supervise_patches = stage in patch_stages
        if supervise_patches:
            groups.append({"params": list(heads.parameters()), "lr": lr * 10})
        opt = torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
        warm = min(cfg.warmup, max(1, steps // 10))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * (0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps))))
                                                      * 0.9 + 0.1))
        running = None
        fresh = cfg.mixture_pool if stage in ("mixture", "binding") else 0
        share = cfg.binding_vqa_share if binding else None
        supervise_attention, supervise_pointer = stage in attention_stages, stage in pointer_stages
        attn_implementation = model.config._attn_implementation
        if supervise_attention or supervise_pointer:  # attention weights: eager implementation only
            model.set_attn_implementation("eager")
        if supervise_attention:
            make = with_attention_targets(make, cfg.image_size // cfg.patch_size)
        for step, batch in enumerate(batches(by_family, make, cfg, stage, steps, fresh, share)):
            if stage in drill_stages:
                batch = batch + drill_examples(cfg, stage, step)
            inputs = encode_examples(processor, batch)
            positions, concepts = inputs.pop("answer_positions"), inputs.pop("concept_targets")
            options, letters = inputs.pop("point_positions"), inputs.pop("letter_links")
            out = model(**inputs, output_hidden_states=cfg.concept_weight > 0,
                        output_attentions=supervise_attention or supervise_pointer)
            loss = out.loss
            if cfg.concept_weight > 0:
                layer = cfg.concept_layer or max(1, cfg.text_layers // 2)
                loss = loss + cfg.concept_weight * concept_loss(model, out.hidden_states, positions, concepts, layer)
            if supervise_patches:
                loss = loss + cfg.patch_weight * projector_patch_loss(model, processor, heads, cfg, stage, step)
            if supervise_attention:
                attention = attention_loss(out.attentions, inputs, positions, batch, model.config.image_token_id,
                                            cfg.attention_layer, cfg.attention_head)
                if attention is not None:
                    loss = loss + cfg.attention_weight * attention
            if supervise_pointer:
                pointing = pointer_attention_loss(out.attentions, positions, options, cfg.pointer_attention_layer,
                                                   cfg.pointer_attention_head)
                if pointing is not None:
                    loss = loss + cfg.pointer_attention_weight * pointing
                carrying = letter_attention_loss(out.attentions, letters, cfg.letter_attention_layer,
                                                  cfg.letter_attention_head)
                if carrying is not None:
                    loss = loss + cfg.pointer_attention_weight * carrying
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if progress:
                progress(stage, step + 1, steps, running)
            if (step + 1) % 50 == 0 or step + 1 == steps:
                log.info("%s %d/%d loss %.4f (%.0fs)", stage, step + 1, steps, running, time.time() - started)
                history.append({"stage": stage, "step": step + 1, "loss": round(running, 5)})
            if cfg.checkpoints and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
                model.save_pretrained(Path(out_dir) / "stages" / f"{stage}-{step + 1}")
                processor.save_pretrained(Path(out_dir) / "stages" / f"{stage}-{step + 1}")
        if supervise_attention or supervise_pointer:
            model.set_attn_implementation(attn_implementation)
        if cfg.checkpoints:
            model.save_pretrained(Path(out_dir) / "stages" / stage)
            processor.save_pretrained(Path(out_dir) / "stages" / stage)
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out)  # fp16 on disk; loaders cast to fp32 on CPU
    processor.save_pretrained(out)
    import json

    (out / "training.json").write_text(json.dumps({"config": asdict(cfg), "parameters": n_params,
                                                   "seconds": round(time.time() - started, 1),
                                                   "history": history}, indent=1))
    return out
