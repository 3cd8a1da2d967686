"""Mitigation: every consistency loss against a hand computation, the stop-gradient, answer
alignment, modality-quota batches, the training step's parts and gradient flow, the adversarial
mask, resume == uninterrupted, a 2-process CPU run, and `modint train` end to end."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modint.data.mini import load_mini
from modint.data.sample import load_image
from modint.mitigate.objectives import (answer_ce, answer_positions, consistency, paired_answer_states,
                                       preservation)
from modint.mitigate.sampler import QuotaBatchSampler
from modint.mitigate.train import TrainConfig, build_sequences, step_loss, train

MODINT = [sys.executable, "-m", "modint.cli"]


def _softmax(x):
    e = np.exp(np.asarray(x, dtype=float) - np.max(x))
    return e / e.sum()


def _kl(q, p):
    return float(sum(a * math.log(a / b) for a, b in zip(q, p)))


VIEW = [[2.0, 0.0, -1.0]]
ANCHOR = [[0.5, 0.5, 0.0]]


def test_kl_js_skl_by_hand():
    q, p = _softmax(VIEW[0]), _softmax(ANCHOR[0])
    m = (q + p) / 2
    v, a = torch.tensor(VIEW), torch.tensor(ANCHOR)
    assert consistency(v, a, "kl").item() == pytest.approx(_kl(q, p), rel=1e-5)
    assert consistency(v, a, "skl").item() == pytest.approx(_kl(q, p) + _kl(p, q), rel=1e-5)
    assert consistency(v, a, "js").item() == pytest.approx(0.5 * _kl(q, m) + 0.5 * _kl(p, m), rel=1e-5)
    qt, pt = _softmax(np.array(VIEW[0]) / 2), _softmax(np.array(ANCHOR[0]) / 2)
    assert consistency(v, a, "kl", temperature=2).item() == pytest.approx(_kl(qt, pt), rel=1e-5)
    assert consistency(v, a, "mse").item() == pytest.approx(np.mean((np.array(VIEW) - np.array(ANCHOR)) ** 2))
    assert consistency(a, a, "kl").item() == pytest.approx(0, abs=1e-7)
    with pytest.raises(ValueError, match="unknown consistency"):
        consistency(v, a, "wasserstein")


def test_mean_over_rows():
    v = torch.tensor([VIEW[0], ANCHOR[0]])
    a = torch.tensor([ANCHOR[0], ANCHOR[0]])
    q, p = _softmax(VIEW[0]), _softmax(ANCHOR[0])
    assert consistency(v, a, "kl").item() == pytest.approx(_kl(q, p) / 2, rel=1e-5)


@pytest.mark.parametrize("kind", ["kl", "js", "skl", "mse"])
def test_no_gradient_reaches_the_anchor(kind):
    v = torch.tensor(VIEW, requires_grad=True)
    a = torch.tensor(ANCHOR, requires_grad=True)
    consistency(v, a, kind).backward()
    assert a.grad is None and v.grad is not None and v.grad.abs().sum() > 0


def test_preservation_is_kl_from_the_model_before_by_hand():
    student = torch.tensor(VIEW + ANCHOR, requires_grad=True)
    before = torch.tensor(ANCHOR + ANCHOR, requires_grad=True)
    q, p = _softmax(VIEW[0]), _softmax(ANCHOR[0])
    loss = preservation(student, before)
    assert loss.item() == pytest.approx(_kl(p, q) / 2, rel=1e-5)  # KL(before || student), mean over rows
    loss.backward()
    assert before.grad is None and student.grad[0].abs().sum() > 0
    assert student.grad[1].abs().sum() == pytest.approx(0, abs=1e-7)  # equal rows: nothing to pull
    qt, pt = _softmax(np.array(VIEW[0]) / 2), _softmax(np.array(ANCHOR[0]) / 2)
    assert preservation(torch.tensor(VIEW), torch.tensor(ANCHOR), 2).item() == pytest.approx(_kl(pt, qt), rel=1e-5)


def test_answer_alignment_and_ce():
    labels = torch.tensor([[-100, -100, 7, 8], [-100, 5, -100, -100]])
    assert [p.tolist() for p in answer_positions(labels)] == [[1, 2], [0]]
    assert [p.tolist() for p in answer_positions(labels, shift=False)] == [[2, 3], [1]]  # the published bug
    logits = torch.zeros(2, 4, 10)
    logits[0, 1, 7] = logits[0, 2, 8] = logits[1, 0, 5] = 5.0  # right where the shifted logits predict
    good = answer_ce(logits, labels)
    expected = -math.log(math.exp(5) / (math.exp(5) + 9))
    assert good.item() == pytest.approx(expected, rel=1e-5)
    # unshifted, the logit reads the answer token's own position: (0,2) holds the boost for token 8,
    # not 7; (0,3) and (1,1) are flat
    unshifted = (math.log(math.exp(5) + 9) + 2 * math.log(10)) / 3
    assert answer_ce(logits, labels, shift=False).item() == pytest.approx(unshifted, rel=1e-5)


def test_views_with_answers_of_different_length_use_the_common_prefix():
    labels = torch.tensor([[-100, 1, 2, 3], [-100, -100, 4, -100]])
    states = torch.arange(2 * 4 * 2, dtype=torch.float).view(2, 4, 2)
    view, anchor = paired_answer_states(states, labels, [(0, 1)])
    assert view.shape == (1, 2) and torch.equal(view[0], states[0, 0]) and torch.equal(anchor[0], states[1, 1])


# ------------------------------------------------------------------ sampler

def test_quota_batches_are_exact_disjoint_and_reshuffled():
    families = ["image_heavy"] * 10 + ["text_heavy"] * 12 + ["vqa"] * 30
    seen = []
    for rank in range(2):
        sampler = QuotaBatchSampler(families, {"image_heavy": 2, "text_heavy": 2, "vqa": 4}, seed=1, rank=rank,
                                    world_size=2)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 2  # image-heavy runs out first: 10 // 2 ranks // 2
        for b in batches:
            assert [families[i] for i in b] == ["image_heavy"] * 2 + ["text_heavy"] * 2 + ["vqa"] * 4
        seen.append({i for b in batches for i in b})
        sampler.set_epoch(1)
        assert list(sampler) != batches
        sampler.set_epoch(0)
        assert list(sampler) == batches
    assert not seen[0] & seen[1]
    torch_loader = torch.utils.data.DataLoader(list(range(len(families))), batch_sampler=QuotaBatchSampler(families))
    assert all(len(b) == 8 for b in torch_loader)


def test_quota_sampler_drops_missing_families_and_refuses_empty():
    s = QuotaBatchSampler(["vqa"] * 9, {"image_heavy": 2, "vqa": 4})
    assert s.quotas == {"vqa": 4} and len(s) == 2
    with pytest.raises(ValueError, match="no family"):
        QuotaBatchSampler(["vqa"] * 4, {"image_heavy": 2})


# ------------------------------------------------------------------ the training step on a tiny model

@pytest.fixture(scope="module")
def train_samples():
    return load_mini("train", limit=24, sizes={"train": 40})


def _fresh_adapter():
    from modint.models import load_adapter

    return load_adapter("tiny-random-llava")


def test_views_follow_the_family_rules(train_samples):
    from modint.perturb import default_pools

    anchors = [next(s for s in train_samples if s.family == f) for f in ("image_heavy", "text_heavy", "vqa")]
    seqs, rows, pairs = build_sequences(anchors, TrainConfig(recipe="aug"), default_pools(train_samples), 0)
    assert [s.meta["condition"] for s in seqs] == ["clean", "misleading_text", "unrelated_text", "noise_image",
                                                     "switched_image", "black_image", "white_image", "clean"]
    assert rows == [0, 3, 7] and pairs == [(1, 0), (2, 0), (4, 3), (5, 3), (6, 3)]
    seqs_sft, _, pairs_sft = build_sequences(anchors, TrainConfig(recipe="sft"), default_pools(train_samples), 0)
    assert len(seqs_sft) == 3 and pairs_sft == []


def test_extra_switched_views_draw_other_pictures(train_samples):
    from modint.perturb import default_pools

    pools = default_pools(train_samples)
    anchor = next(s for s in train_samples if s.family == "text_heavy")
    one, _, _ = build_sequences([anchor], TrainConfig(recipe="aug"), pools, 0)
    seqs, rows, pairs = build_sequences([anchor], TrainConfig(recipe="aug", switched_views=3), pools, 0)
    # The paper's views first (unchanged), then two more switched views, each paired with the anchor.
    assert [s.meta["condition"] for s in seqs] == ["noise_image", "switched_image", "black_image", "white_image",
                                                     "switched_image", "switched_image"]
    assert seqs[1].meta["switched_from"] == one[1].meta["switched_from"]
    assert len({seqs[i].meta["switched_from"] for i in (1, 4, 5)}) == 3
    assert rows == [0] and pairs == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]
    image_heavy = next(s for s in train_samples if s.family == "image_heavy")
    assert len(build_sequences([image_heavy], TrainConfig(recipe="aug", switched_views=3), pools, 0)[0]) == 3
    with pytest.raises(ValueError, match="switched_views"):
        TrainConfig(switched_views=0).check()


def test_step_loss_parts_and_gradient_flow(train_samples):
    adapter = _fresh_adapter()
    from modint.mitigate.train import prepare_trainable
    from modint.perturb import default_pools

    cfg = TrainConfig(recipe="aug_kl_pgd", pgd_steps=2)
    params = prepare_trainable(adapter, cfg)
    anchors = [s for s in train_samples if s.family != "vqa"][:2] + [s for s in train_samples if s.family == "vqa"][:1]
    loss, parts = step_loss(adapter, anchors, cfg, default_pools(train_samples), 0, 0)
    assert set(parts) == {"ce", "adv_ce", "pgd_margin", "consistency", "loss"}
    assert parts["loss"] == pytest.approx(parts["ce"] + parts["adv_ce"] + 0.01 * parts["consistency"], rel=1e-5)
    loss.backward()
    lm = [p for n, p in adapter.model.named_parameters() if "language_model" in n]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lm)
    assert all(not p.requires_grad for p in adapter.model.model.vision_tower.parameters())
    assert all(p.requires_grad for p in params)


@pytest.mark.parametrize("trainable", ["full", "lora"])
def test_preservation_is_zero_before_training_and_pulls_back_after(train_samples, trainable):
    from modint.mitigate.train import prepare_trainable, reference_model
    from modint.perturb import default_pools

    adapter = _fresh_adapter()
    cfg = TrainConfig(recipe="aug_kl", preserve_weight=0.5, trainable=trainable, lora_r=4, lora_alpha=8)
    params = prepare_trainable(adapter, cfg)
    reference = reference_model(adapter, cfg)
    live = adapter.model
    anchors = [next(s for s in train_samples if s.family == f) for f in ("image_heavy", "text_heavy", "vqa")]
    pools = default_pools(train_samples)
    loss, parts = step_loss(adapter, anchors, cfg, pools, 0, 0, reference)
    assert adapter.model is live  # the reference context hands the model back
    assert parts["preserve"] == pytest.approx(0, abs=1e-5)  # nothing trained yet: student == before
    assert parts["loss"] == pytest.approx(parts["ce"] + 0.01 * parts["consistency"] + 0.5 * parts["preserve"], rel=1e-5)
    with torch.no_grad():  # a step's worth of change to what is trained
        for p in params:
            p.add_(torch.randn_like(p) * 0.05)
    loss, parts = step_loss(adapter, anchors, cfg, pools, 0, 0, reference)
    assert parts["preserve"] > 1e-4  # the reference is the model before, not the live one
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    with pytest.raises(ValueError, match="reference"):
        step_loss(adapter, anchors, cfg, pools, 0, 0, None)


def _adversarial_inputs(adapter, seqs, cfg, step_seed):
    """(batch, clean LM input embeddings, adversarial ones) of ``adversarial_logits``."""
    from modint.mitigate.adversarial import adversarial_logits

    fed = []
    handle = adapter.language_model().register_forward_hook(
        lambda m, a, kw, o: fed.append(kw["inputs_embeds"].detach().clone()), with_kwargs=True)
    try:
        batch, _ = adversarial_logits(adapter, seqs, cfg, step_seed=step_seed)
    finally:
        handle.remove()
    return batch, adapter.embed(batch), fed[-1]  # embed stops before the LM: its hook never sees E


def test_adversarial_view_never_perturbs_the_answer(train_samples):
    from modint.perturb import default_pools

    adapter = _fresh_adapter()
    seqs, rows, _ = build_sequences(train_samples[:2], TrainConfig(recipe="sft"), default_pools(train_samples), 0)
    batch, clean, attacked = _adversarial_inputs(adapter, seqs, TrainConfig(pgd_eps=0.5, pgd_steps=2), 3)
    moved = (attacked - clean).abs().amax(-1) > 0
    assert not moved[batch.labels != -100].any()
    assert moved.any()


def test_image_tokens_of_text_heavy_anchors_get_their_own_pgd_radius(train_samples):
    from modint.attacks.vlm import irrelevant_mask
    from modint.perturb import default_pools

    adapter = _fresh_adapter()
    anchors = [next(s for s in train_samples if s.family == f) for f in ("image_heavy", "text_heavy")]
    seqs, _, _ = build_sequences(anchors, TrainConfig(recipe="sft"), default_pools(train_samples), 0)

    def radii(cfg):  # max |delta| / RMS of the perturbed embeddings, per row
        batch, clean, attacked = _adversarial_inputs(adapter, seqs, cfg, 5)
        mask = irrelevant_mask(batch, seqs) & ~batch.answer_input_mask
        delta = attacked - clean
        rms = torch.stack([clean[i][mask[i]].pow(2).mean().sqrt() for i in range(len(seqs))])
        assert not delta[~mask].any()
        return [round(x, 3) for x in (delta.abs().amax((1, 2)) / rms).tolist()]

    assert radii(TrainConfig(pgd_eps=0.05, pgd_steps=2)) == [0.05, 0.05]
    assert radii(TrainConfig(pgd_eps=0.05, pgd_eps_image=0.4, pgd_steps=2)) == [0.05, 0.4]


def test_resume_gives_the_same_weights(tmp_path, train_samples):
    cfg = dict(recipe="aug_kl_pgd", max_steps=4, lr=1e-3, quotas={"image_heavy": 1, "text_heavy": 1, "vqa": 1})
    straight = _fresh_adapter()
    train(straight, train_samples, tmp_path / "a", TrainConfig(**cfg))
    first = _fresh_adapter()  # runs on past its step-2 checkpoint, as a killed run would have
    train(first, train_samples, tmp_path / "b", TrainConfig(**cfg, checkpoint_every=2))
    # interrupt-equivalent: a new process state, resumed from the step-2 checkpoint
    resumed = _fresh_adapter()
    train(resumed, train_samples, tmp_path / "b", TrainConfig(**{**cfg, "checkpoint_every": 2}), resume=True)
    for (n, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)
    log = [json.loads(l) for l in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4]  # the log holds no step twice


class IdentityAccelerator:
    """What the FSDP / DeepSpeed path asks of accelerate, on one process (accelerate refuses to
    start FSDP or DeepSpeed without GPUs): prepare, backward, clipping, state save/load, gather."""

    def __init__(self):
        self.calls = []

    def prepare(self, model, opt):
        self.calls.append("prepare")
        self.opt = opt
        return model, opt

    def backward(self, loss):
        self.calls.append("backward")
        loss.backward()

    def clip_grad_norm_(self, params, max_norm):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    def wait_for_everyone(self):
        pass

    def save_state(self, folder):
        self.calls.append("save_state")
        Path(folder).mkdir(parents=True, exist_ok=True)
        torch.save({"model": self.model_state(), "opt": self.opt.state_dict()}, Path(folder) / "fake.pt")

    def load_state(self, folder):
        state = torch.load(Path(folder) / "fake.pt", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])

    def model_state(self):
        return {k: v.clone() for k, v in self.model.state_dict().items()}

    def get_state_dict(self, model):
        self.calls.append("get_state_dict")
        return model.state_dict()


def test_the_sharded_path_trains_checkpoints_and_resumes_like_the_plain_one(tmp_path, train_samples, monkeypatch):
    import modint.mitigate.train as train_module

    cfg = dict(recipe="aug_kl_pgd", max_steps=4, lr=1e-3, quotas={"image_heavy": 1, "text_heavy": 1, "vqa": 1})
    plain = _fresh_adapter()
    train(plain, train_samples, tmp_path / "plain", TrainConfig(**cfg))
    made = []

    def fake():
        made.append(IdentityAccelerator())
        return made[-1]

    monkeypatch.setattr(train_module, "sharded_accelerator", fake)
    first = _fresh_adapter()
    monkeypatch.setattr(IdentityAccelerator, "model", first.model, raising=False)
    train(first, train_samples, tmp_path / "sharded", TrainConfig(**cfg, checkpoint_every=2))
    assert made[0].calls.count("backward") == 4 and "save_state" in made[0].calls and "get_state_dict" in made[0].calls
    assert json.loads((tmp_path / "sharded" / "checkpoint" / "sharded" / "step.json").read_text()) == {"step": 2}
    resumed = _fresh_adapter()
    monkeypatch.setattr(IdentityAccelerator, "model", resumed.model, raising=False)
    train(resumed, train_samples, tmp_path / "sharded", TrainConfig(**cfg, checkpoint_every=2), resume=True)
    assert made[1].calls.count("backward") == 2  # steps 3 and 4 only
    for (n, p), (_, q) in zip(plain.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)
    with pytest.raises(ValueError, match="lora under FSDP/DeepSpeed"):
        train(_fresh_adapter(), train_samples, tmp_path / "lora", TrainConfig(**{**cfg, "trainable": "lora"}))


def test_sharded_accelerator_only_for_fsdp_or_deepspeed_launches(monkeypatch):
    from modint.mitigate.train import sharded_accelerator

    for var in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(var, raising=False)
    assert sharded_accelerator() is None
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    assert sharded_accelerator() is None


@pytest.mark.slow
def test_two_process_cpu_training_and_cli(tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "-m", "modint.cli", "train", "--max-steps", "2", "--limit", "48", "--set", "pgd_steps=1",
           "--no-diagnose", "--out", str(tmp_path)]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = [json.loads(l) for l in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2]
    assert (tmp_path / "model" / "config.json").exists()


@pytest.mark.slow
def test_train_cli_diagnoses_with_the_diagnose_default_seed_whatever_the_training_seed(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    r = subprocess.run(MODINT + ["train", "--model", "tiny-random-llava", "--max-steps", "1", "--limit", "16",
                                 "--seed", "3", "--eval-limit", "3", "--set", "pgd_steps=1", "--out", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "train_config.json").read_text())["seed"] == 3
    for folder, split in (("diagnosis-val", "val"), ("diagnosis", "test")):  # val first, then test once
        manifest = json.loads((tmp_path / folder / "manifest.json").read_text())
        assert manifest["config"]["seed"] == 0  # pairs with `modint diagnose` of the model before
        assert manifest["benchmark"]["split"] == split
    assert r.stdout.index("Diagnosis (val)") < r.stdout.index("Diagnosis (test)")


def test_train_cli_mistakes_exit_2(tmp_path):
    from typer.testing import CliRunner

    from modint.cli import app

    for args, message in [(["--recipe", "magic"], "unknown recipe"), (["--set", "lrr=1"], "unknown training setting"),
                          (["--trainable", "half"], "unknown trainable")]:
        r = CliRunner().invoke(app, ["train", "--out", str(tmp_path)] + args)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and message in lines[0], r.stderr


def test_ablate_trains_diagnoses_at_the_eval_seed_and_reuses_finished_recipes(tmp_path):
    from modint.mitigate.ablate import ablate

    cfg = TrainConfig(max_steps=1, seed=3, pgd_steps=1, quotas={"image_heavy": 1, "text_heavy": 1, "vqa": 1})
    table = ablate(_fresh_adapter, tmp_path, cfg, ["sft"], train_limit=16, eval_limit=3)
    lines = table.splitlines()
    assert [l.split(" | ")[0] for l in lines[2:]] == ["| none (base model)", "| sft"]
    assert (tmp_path / "ablation.md").read_text() == table
    assert json.loads((tmp_path / "sft" / "train_config.json").read_text())["seed"] == 3
    for run in ("base", "sft/diagnosis"):  # both at eval_seed 0, so they pair with each other
        assert json.loads((tmp_path / run / "manifest.json").read_text())["config"]["seed"] == 0
    finished = (tmp_path / "sft" / "diagnosis" / "summary.json").stat().st_mtime_ns

    def must_not_load():
        raise AssertionError("a finished recipe was trained again")

    assert ablate(must_not_load, tmp_path, cfg, ["sft"], train_limit=16, eval_limit=3) == table
    assert (tmp_path / "sft" / "diagnosis" / "summary.json").stat().st_mtime_ns == finished


def test_ablation_table_by_hand():
    from modint.mitigate.ablate import ablation_table

    summaries = {"base": {"conditions": [{"family": "image_heavy", "condition": "clean", "accuracy": 0.9},
                                         {"family": "image_heavy", "condition": "misleading_text", "accuracy": 0.25}]},
                 "aug": {"conditions": [{"family": "vqa", "condition": "clean", "accuracy": 0.755}]}}
    lines = ablation_table(summaries).splitlines()
    assert lines[0].startswith("| recipe | IH clean | IH unrelated_text | IH misleading_text | TH noise_image")
    assert lines[2] == "| base | 90.0 | – | 25.0 | – | – | – | – | – | – |"
    assert lines[3] == "| aug | – | – | – | – | – | – | – | – | 75.5 |"


def test_lora_trains_the_language_model_only_and_saves_a_plain_merged_model(tmp_path, train_samples):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from modint.models.adapter import VLMAdapter

    adapter = _fresh_adapter()
    before = {n: p.detach().clone() for n, p in adapter.model.named_parameters()}
    model_dir = train(adapter, train_samples, tmp_path, TrainConfig(
        recipe="aug_kl_pgd", max_steps=2, lr=1e-2, trainable="lora", lora_r=4, lora_alpha=8,
        quotas={"image_heavy": 1, "text_heavy": 1, "vqa": 1}))
    lora_config = json.loads((model_dir / "lora" / "adapter_config.json").read_text())
    assert "language_model" in str(lora_config["target_modules"])
    from safetensors.torch import load_file

    lora_weights = load_file(model_dir / "lora" / "adapter_model.safetensors")
    assert lora_weights and all("language_model" in k for k in lora_weights)  # never the vision tower
    # The saved model is merged: plain transformers loads it, and it differs from the start
    # exactly in the language model's attention projections.
    merged = AutoModelForImageTextToText.from_pretrained(model_dir).float().eval()
    changed = {n for n, p in merged.named_parameters() if n in before and not torch.equal(p, before[n])}
    assert changed and all("language_model" in n and n.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj")
                           for n in changed), sorted(changed)
    reloaded = VLMAdapter(merged, AutoProcessor.from_pretrained(model_dir))
    samples = [s.replace(image=load_image(s)) for s in train_samples[:3]]
    for a, b in zip(adapter.score(samples), reloaded.score(samples)):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)


def test_check_mitigation_recipe_exits_1_when_a_target_is_missed(tmp_path, capsys):
    import importlib.util

    from modint.diagnose import rundir

    path = Path(__file__).resolve().parents[1] / "scripts" / "check_mitigation.py"
    spec = importlib.util.spec_from_file_location("check_mitigation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(name, right):
        """10 samples per cell, the first k right: IH clean, misleading; TH noise, switched; VQA clean."""
        cells = [("image_heavy", "clean"), ("image_heavy", "misleading_text"), ("text_heavy", "noise_image"),
                 ("text_heavy", "switched_image"), ("vqa", "clean")]
        records = [{"id": f"{f}-{i}", "family": f, "condition": c, "gold": 0, "pred": 0 if i < k else 1,
                    "correct": i < k, "probs": None, "error": None} for (f, c), k in zip(cells, right) for i in range(10)]
        with rundir.RecordWriter((tmp_path / name).joinpath(rundir.RECORDS)) as w:
            w.write_many(records)
        return str(tmp_path / name)

    for name in ("base", "good", "bad"):
        (tmp_path / name).mkdir()
    base = run("base", [9, 3, 8, 4, 5])  # gaps 60 and 40 points
    good = run("good", [9, 8, 8, 6, 5])  # gaps 10 (-83%) and 20 (-50%), references unchanged
    bad = run("bad", [9, 8, 8, 7, 4])  # VQA -10
    assert module.main([base, good]) == 0
    assert "all targets met" in capsys.readouterr().out
    assert module.main([base, good, bad]) == 1  # VQA mean change -5 points
    assert "targets missed: vqa clean" in capsys.readouterr().out
    assert module.main([base]) == 2


def test_mean_sd_by_hand():
    from modint.diagnose.aggregate import format_mean_sd, mean_sd

    mean, sd = mean_sd([1, 2, 3, 4])
    assert mean == 2.5 and sd == pytest.approx(math.sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3))  # n - 1
    assert mean_sd([None, 0.5]) == (0.5, None) and mean_sd([None]) == (None, None) and mean_sd([]) == (None, None)
    assert format_mean_sd(0.85, 0.05) == "85.0 ± 5.0" and format_mean_sd(-0.25, 0.05, signed=True) == "-25.0 ± 5.0"
    assert format_mean_sd(0.9, None) == "90.0" and format_mean_sd(None, None) == "–"


def _fake_summary(cells):
    """summary.json content: (family, condition, accuracy, delta) per row; the first of a family is its reference."""
    seen = set()
    rows = []
    for family, condition, acc, delta in cells:
        rows.append({"family": family, "condition": condition, "is_reference": family not in seen, "n": 10,
                     "accuracy": acc, "delta": delta})
        seen.add(family)
    return {"conditions": rows}


def test_ablate_over_seeds_reports_mean_and_sd_per_recipe(tmp_path):
    """Finished runs on disk (no training): seeds 0, 1, 2 of aug, by hand."""
    from modint.mitigate.ablate import ablate

    def write(path, cells):
        path.mkdir(parents=True)
        (path / "summary.json").write_text(json.dumps(_fake_summary(cells)))

    write(tmp_path / "base", [("image_heavy", "clean", 0.9, None), ("image_heavy", "misleading_text", 0.2, -0.7),
                              ("vqa", "clean", 0.6, None)])
    runs = {0: (0.80, 0.50, 0.6), 1: (0.90, 0.70, 0.7), 2: (0.85, 0.60, None)}
    for seed, (clean, mis, vqa) in runs.items():
        cells = [("image_heavy", "clean", clean, None), ("image_heavy", "misleading_text", mis, mis - clean)]
        write(tmp_path / "aug" / f"seed-{seed}" / "diagnosis", cells + ([("vqa", "clean", vqa, None)] if vqa else []))

    def must_not_load():
        raise AssertionError("finished runs are never trained again")

    table = ablate(must_not_load, tmp_path, TrainConfig(), ["aug"], train_limit=3, eval_limit=3, seeds=[0, 1, 2])
    lines = table.splitlines()
    # clean .80/.90/.85: mean .85, sd sqrt((.05^2 + .05^2 + 0) / 2) = .05; misleading .5/.7/.6: .6 ± .1;
    # VQA .6/.7 (seed 2 has no row): .65 ± sqrt(.005) = .0707
    assert lines[2] == "| none (base model) | 90.0 | – | 20.0 | – | – | – | – | – | 60.0 |"
    assert lines[3] == "| aug (seeds 0, 1, 2) | 85.0 ± 5.0 | – | 60.0 ± 10.0 | – | – | – | – | – | 65.0 ± 7.1 |"
    figures = json.loads((tmp_path / "ablation.json").read_text())
    assert figures["seeds"] == [0, 1, 2] and figures["eval_split"] == "test"
    aug = figures["recipes"][1]
    assert aug["runs"] == ["aug/seed-0/diagnosis", "aug/seed-1/diagnosis", "aug/seed-2/diagnosis"]
    mis = next(r for r in aug["conditions"] if r["condition"] == "misleading_text")
    assert mis["accuracy_by_run"] == [0.5, 0.7, 0.6] and mis["n_runs"] == 3
    assert mis["delta_mean"] == pytest.approx(-0.25) and mis["delta_sd"] == pytest.approx(0.05)  # -.3, -.2, -.25
    vqa = next(r for r in aug["conditions"] if r["family"] == "vqa")
    assert vqa["n_runs"] == 2 and vqa["accuracy_sd"] == pytest.approx(math.sqrt(0.005))


def test_ablate_cli_refuses_bad_seeds_and_splits(tmp_path):
    from typer.testing import CliRunner

    from modint.cli import app

    for args, message in [(["--seeds", "0,x"], "comma-separated integers"), (["--seeds", "1,1"], "distinct"),
                          (["--eval-split", "dev"], "no split 'dev'")]:
        r = CliRunner().invoke(app, ["ablate", "--model", "tiny-random-llava", "--out", str(tmp_path)] + args)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and message in lines[0], r.stderr
