"""Choosing on val, never on test: the criteria by hand, the selector keeps and restores the best
weights (ties to the later step, resume), `train` hands it every checkpoint, and `modint train`
diagnoses val, then test once."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from modint.data.mini import load_mini
from modint.mitigate.select import CheckpointSelector, val_score
from modint.mitigate.train import TrainConfig, train

MODINT = [sys.executable, "-m", "modint.cli"]
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.environ.get("PYTHONPATH", "")}


def summary(worst, rows):
    return {"families": [{"family": f, "worst_case_accuracy": w} for f, w in worst.items()],
            "conditions": [{"family": "x", "condition": c, "accuracy": a} for c, a in rows.items()]}


def test_criteria_by_hand():
    s = summary({"image_heavy": 0.5, "text_heavy": 0.7, "vqa": None}, {"clean": 0.9, "misleading_text": 0.4,
                                                                       "noise_image": None})
    assert val_score(s, "worst_case") == pytest.approx((0.5 + 0.7 + 0.0) / 3)  # a missing figure counts 0
    assert val_score(s, "mean") == pytest.approx((0.9 + 0.4 + 0.0) / 3)
    with pytest.raises(ValueError, match="unknown selection criterion"):
        val_score(s, "best")
    with pytest.raises(ValueError, match="no rows"):
        val_score({"families": []}, "worst_case")


def _scripted(scores):
    """An evaluate(step) whose val worst case is scores[step], recording the calls and the weight."""
    calls = []

    def evaluate(step):
        calls.append(step)
        return summary({"vqa": scores[step]}, {})

    return evaluate, calls


def test_selector_keeps_the_best_later_on_ties_and_restores_it(tmp_path):
    adapter = SimpleNamespace(model=torch.nn.Linear(2, 1))
    evaluate, calls = _scripted({1: 0.4, 2: 0.6, 3: 0.6, 4: 0.5})
    selector = CheckpointSelector(evaluate, tmp_path / "sel")
    weights = {}
    for step in (1, 2, 3, 4):
        adapter.model.weight.data.fill_(float(step))
        weights[step] = adapter.model.weight.detach().clone()
        selector.consider(adapter, step)
        assert adapter.model.training  # back in the mode it was in
    assert calls == [1, 2, 3, 4] and selector.best["step"] == 3  # 2 and 3 tie: the later
    assert selector.restore(adapter) == 3
    assert torch.equal(adapter.model.weight, weights[3])
    log = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert log["criterion"] == "worst_case" and log["selected_step"] == 3
    assert [(e["step"], e["score"]) for e in log["steps"]] == [(1, 0.4), (2, 0.6), (3, 0.6), (4, 0.5)]
    # Resumed, the history and the best weights come back; a fresh selector starts over.
    again = CheckpointSelector(_scripted({5: 0.1})[0], tmp_path / "sel", resume=True)
    again.consider(adapter, 5)
    adapter.model.weight.data.fill_(9.0)
    assert again.restore(adapter) == 3 and torch.equal(adapter.model.weight, weights[3])
    fresh = CheckpointSelector(_scripted({})[0], tmp_path / "sel")
    assert fresh.history == [] and not (tmp_path / "sel" / "best.pt").exists()


def test_final_weights_stay_when_they_are_the_best(tmp_path):
    adapter = SimpleNamespace(model=torch.nn.Linear(2, 1))
    selector = CheckpointSelector(_scripted({1: 0.2, 2: 0.3})[0], tmp_path)
    selector.consider(adapter, 1)
    adapter.model.weight.data.fill_(7.0)
    selector.consider(adapter, 2)
    assert selector.restore(adapter) == 2 and torch.all(adapter.model.weight == 7.0)


def test_train_scores_every_checkpoint_and_saves_the_chosen_weights(tmp_path):
    from transformers import AutoModelForImageTextToText

    from modint.models import load_adapter

    adapter = load_adapter("tiny-random-llava")
    seen = {}

    def evaluate(step):
        seen[step] = {n: p.detach().clone() for n, p in adapter.model.named_parameters() if p.requires_grad}
        assert not adapter.model.training
        return summary({"vqa": {1: 0.9, 2: 0.1}[step]}, {})

    selector = CheckpointSelector(evaluate, tmp_path / "selection")
    cfg = TrainConfig(recipe="sft", max_steps=2, checkpoint_every=1, lr=1e-2, trainable="projector",
                      quotas={"image_heavy": 1, "text_heavy": 1, "vqa": 1})
    model_dir = train(adapter, load_mini("train", limit=12, sizes={"train": 20}), tmp_path, cfg, selector=selector)
    assert sorted(seen) == [1, 2]
    assert any(not torch.equal(seen[1][n], seen[2][n]) for n in seen[1])  # the second step changed something
    saved = dict(AutoModelForImageTextToText.from_pretrained(model_dir).named_parameters())
    for name, value in seen[1].items():  # step 1 scored best on val: its weights are the saved ones
        assert torch.equal(saved[name], value), name
    assert json.loads((tmp_path / "selection" / "selection.json").read_text())["selected_step"] == 1


@pytest.mark.slow
def test_train_cli_diagnoses_val_then_test_and_can_select_on_val(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run(MODINT + ["train", "--model", "tiny-random-llava", "--max-steps", "2", "--limit", "16",
                                 "--eval-limit", "3", "--set", "pgd_steps=1", "--checkpoint-every", "1",
                                 "--select-on-val", "--select-by", "mean", "--out", str(out)],
                       capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    selection = json.loads((out / "selection" / "selection.json").read_text())
    assert [e["step"] for e in selection["steps"]] == [1, 2] and selection["criterion"] == "mean"
    chosen = selection["selected_step"]
    assert chosen == max(selection["steps"], key=lambda e: (e["score"], e["step"]))["step"]
    for folder, split in (("diagnosis-val", "val"), ("diagnosis", "test")):
        manifest = json.loads((out / folder / "manifest.json").read_text())
        assert manifest["benchmark"]["split"] == split and manifest["config"]["seed"] == 0
        assert json.loads((out / folder / "summary.json").read_text())["split"] == split
    assert (out / "diagnosis-val" / "records.jsonl").read_text() == \
        (out / "selection" / f"step-{chosen:06d}" / "records.jsonl").read_text()
    val_ids = {json.loads(l)["id"] for l in (out / "diagnosis-val" / "records.jsonl").read_text().splitlines()}
    test_ids = {json.loads(l)["id"] for l in (out / "diagnosis" / "records.jsonl").read_text().splitlines()}
    assert all(i.startswith("val-") for i in val_ids) and all(i.startswith("test-") for i in test_ids)
    assert f"Selected on val by mean: step {chosen}" in r.stdout


def test_train_cli_selection_mistakes_exit_2(tmp_path):
    from typer.testing import CliRunner

    from modint.cli import app

    for args, message in [(["--select-on-val"], "--checkpoint-every"),
                          (["--select-on-val", "--checkpoint-every", "1", "--val-split", "none"], "needs a val split"),
                          (["--val-split", "test"], "both 'test'"), (["--select-by", "best"], "unknown --select-by")]:
        r = CliRunner().invoke(app, ["train", "--model", "tiny-random-llava", "--out", str(tmp_path)] + args)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and message in lines[0], r.stderr
