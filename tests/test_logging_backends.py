"""modint train --report-to: step scalars and the final diagnosis in TensorBoard / wandb."""

import json

import pytest

from modint.mitigate.logging_backends import (diagnosis_scalars, last_logged_step, make_logger, parse_report_to,
                                                  step_scalars)

SUMMARY = {"conditions": [
    {"family": "vqa", "condition": "clean", "accuracy": 0.75, "delta": None, "flip_rate": None,
     "followed_distractor_rate": None},
    {"family": "image_heavy", "condition": "misleading_text", "accuracy": 0.25, "delta": -0.5, "flip_rate": 0.5,
     "followed_distractor_rate": 0.4},
]}


def test_scalars_keep_numbers_and_drop_bookkeeping():
    entry = {"step": 3, "epoch": 0, "lr": 1e-3, "ce": 1.5, "adv_ce": 2.0, "pgd_margin": 0.5, "grad_norm": 4.0,
             "loss": 2.5, "seconds": 9.1, "flag": True, "bad": float("nan")}
    assert step_scalars(entry) == {"train/lr": 1e-3, "train/ce": 1.5, "train/adv_ce": 2.0, "train/pgd_margin": 0.5,
                                   "train/grad_norm": 4.0, "train/loss": 2.5}
    assert diagnosis_scalars(SUMMARY) == {
        "diagnosis/vqa/clean/accuracy": 0.75, "diagnosis/image_heavy/misleading_text/accuracy": 0.25,
        "diagnosis/image_heavy/misleading_text/delta": -0.5, "diagnosis/image_heavy/misleading_text/flip_rate": 0.5,
        "diagnosis/image_heavy/misleading_text/followed_distractor_rate": 0.4}


def test_report_to_names_as_the_trainer_names_them():
    assert parse_report_to("none") == [] and parse_report_to(None) == []
    assert parse_report_to("tensorboard") == ["tensorboard"]
    assert parse_report_to("all") == ["tensorboard", "wandb"]
    with pytest.raises(ValueError, match="unknown --report-to comet"):
        parse_report_to("comet")
    assert make_logger("none", "unused") is None


def _events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_training_steps_and_diagnosis_read_back_from_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboard")
    from modint.data.mini import load_mini
    from modint.mitigate.train import TrainConfig, train
    from modint.models import load_adapter

    samples = load_mini("train", limit=24, sizes={"train": 40})
    logger = make_logger("tensorboard", tmp_path)
    cfg = TrainConfig(recipe="aug_kl_pgd", max_steps=2, lr=1e-3, pgd_steps=1,
                      quotas={"image_heavy": 1, "text_heavy": 1, "vqa": 1})
    train(load_adapter("tiny-random-llava"), samples, tmp_path, cfg, logger=logger)
    assert last_logged_step(tmp_path) == 2
    logger.log_diagnosis(SUMMARY, step=2)
    logger.close()
    events = _events(tmp_path / "tensorboard")
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    for name in ("ce", "adv_ce", "consistency", "loss", "lr", "grad_norm", "pgd_margin"):
        assert [step for step, _ in events[f"train/{name}"]] == [1, 2], name
        for (step, value), entry in zip(events[f"train/{name}"], log):
            assert value == pytest.approx(entry[name], rel=1e-6), name  # event files hold float32
    for entry in log:  # the margin is the adversarial CE's excess over the clean CE of the same anchors
        assert entry["pgd_margin"] <= entry["adv_ce"] and entry["grad_norm"] > 0
    assert events["diagnosis/image_heavy/misleading_text/delta"] == [(2, -0.5)]
    assert events["diagnosis/vqa/clean/accuracy"] == [(2, 0.75)]


def test_wandb_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = make_logger("wandb", tmp_path, config={"lr": 1e-3})
    logger.log_step(1, {"step": 1, "loss": 2.0})
    logger.log_diagnosis(SUMMARY, step=1)
    logger.close()
    assert any((tmp_path / "wandb").glob("offline-run-*"))


def test_train_cli_refuses_an_unknown_report_to(tmp_path):
    from typer.testing import CliRunner

    from modint.cli import app

    r = CliRunner().invoke(app, ["train", "--report-to", "comet", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown --report-to comet" in r.stderr, r.stderr
