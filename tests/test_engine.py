"""The diagnosis engine: the run-directory contract, determinism, resume after a kill, bad input,
and a 2-process data-parallel run that equals a single-process one."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from modint.data.mini import load_mini
from modint.data.sample import Sample
from modint.diagnose.engine import DiagnoseConfig, run_diagnosis
from modint.diagnose.rundir import read_records

CONDITION_KEYS = {"family", "condition", "n", "accuracy", "accuracy_ci95", "delta", "delta_ci95", "flip_rate",
                  "harmful_flip_rate", "beneficial_flip_rate", "mcnemar_p", "js_mean", "gold_prob_shift",
                  "followed_distractor_rate", "errors"}
RECORD_KEYS = {"id", "family", "condition", "gold", "pred", "correct", "probs", "error"}
MODINT = [sys.executable, "-m", "modint.cli"]


def _figures(summary):
    return [{k: c[k] for k in sorted(CONDITION_KEYS)} for c in summary["conditions"]]


def test_run_directory_contract(tmp_path, tiny_llava_adapter):
    import modint  # the engine, then the report: the whole run directory

    samples = load_mini("test", limit=12)
    summary = modint.run_diagnosis(tiny_llava_adapter, samples, tmp_path, DiagnoseConfig(batch_size=8, n_boot=200),
                                   run_info={"model": "tiny-random-llava", "benchmark": "mini", "split": "test"})
    records = read_records(tmp_path / "records.jsonl")
    # 4 samples per family: image-heavy 3 conditions, text-heavy 5, VQA 1.
    assert len(records) == 4 * 3 + 4 * 5 + 4 * 1
    assert all(RECORD_KEYS <= set(r) for r in records)
    assert len({(r["id"], r["condition"]) for r in records}) == len(records)
    for r in records:
        assert r["error"] is None and abs(sum(r["probs"]) - 1) < 1e-4 and r["correct"] == (r["pred"] == r["gold"])
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["model"] == "tiny-random-llava" and on_disk["benchmark"] == "mini"
    assert on_disk["conditions"] == summary["conditions"]
    assert all(CONDITION_KEYS <= set(c) for c in on_disk["conditions"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for key in ("model", "processor", "benchmark", "conditions", "scoring", "versions", "command", "timing"):
        assert key in manifest
    assert manifest["benchmark"]["samples"] == 12 and manifest["model"]["dtype"] == "float32"
    html = (tmp_path / "report.html").read_text()
    assert "<html" in html and "misleading_text" in html and "http://" not in html and "https://" not in html


def test_bad_samples_become_error_records(tmp_path, tiny_llava_adapter):
    good = load_mini("test", limit=3)
    bad = [
        Sample("no-file", "image_heavy", "Which?", ("a", "b"), 0, tmp_path / "missing.png"),
        Sample("one-option", "vqa", "Which?", ("a",), 0, None),
        Sample("answer-range", "text_heavy", "Which?", ("a", "b"), 5, None),
        good[0],  # duplicate id
    ]
    (tmp_path / "broken.png").write_bytes(b"not a png")
    bad.append(Sample("broken", "vqa", "Which?", ("a", "b"), 1, tmp_path / "broken.png"))
    out = tmp_path / "run"
    summary = run_diagnosis(tiny_llava_adapter, good + bad, out, DiagnoseConfig(n_boot=50))
    records = read_records(out / "records.jsonl")
    errors = {r["id"]: r["error"] for r in records if r["error"]}
    assert "missing.png" in errors["no-file"] and "no-file" in errors["no-file"]
    assert "at least 2 options" in errors["one-option"]
    assert "out of range" in errors["answer-range"]
    assert "duplicate id" in errors[f"{good[0].id}#dup1"]
    assert "unreadable image" in errors["broken"]
    assert len({(r["id"], r["condition"]) for r in records}) == len(records)
    assert sum(c["errors"] for c in summary["conditions"]) == sum(1 for r in records if r["error"])
    assert sum(1 for r in records if not r["error"]) == 3 + 5 + 1  # the good samples all ran
    with pytest.raises(Exception, match="missing.png"):
        run_diagnosis(tiny_llava_adapter, bad[:1], tmp_path / "strict", DiagnoseConfig(strict=True))


def _cli(out, *extra, limit=30):
    return MODINT + ["diagnose", "--model", "tiny-random-llava", "--limit", str(limit), "--out", str(out),
                     "--batch-size", "2", "--quiet", *extra]


@pytest.mark.slow
def test_same_seed_is_byte_identical_and_resume_after_sigkill(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    full, again, killed = tmp_path / "full", tmp_path / "again", tmp_path / "killed"
    subprocess.run(_cli(full), check=True, env=env, capture_output=True)
    subprocess.run(_cli(again), check=True, env=env, capture_output=True)
    assert (full / "records.jsonl").read_bytes() == (again / "records.jsonl").read_bytes()

    proc = subprocess.Popen(_cli(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = killed / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not path.exists() or len(path.read_text().splitlines()) < 20):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(read_records(path))
    assert 0 < partial < 30 * 3  # killed partway
    subprocess.run(_cli(killed), check=True, env=env, capture_output=True)
    records = read_records(path)
    keys = [(r["id"], r["condition"]) for r in records]
    assert len(keys) == len(set(keys)) == len(read_records(full / "records.jsonl"))
    a = json.loads((full / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    assert _figures(a) == _figures(b)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    # On a machine without GPUs accelerate runs the processes on CPU with gloo.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "single", tmp_path / "double"
    subprocess.run(_cli(single, limit=18), check=True, env=env, capture_output=True)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "modint.cli"]
    result = subprocess.run(launcher + _cli(double, limit=18)[len(MODINT):], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not list(double.glob("records.rank*.jsonl"))  # merged into one file
    a = json.loads((single / "summary.json").read_text())
    b = json.loads((double / "summary.json").read_text())
    assert _figures(a) == _figures(b)
    ra = sorted(read_records(single / "records.jsonl"), key=lambda r: (r["id"], r["condition"]))
    rb = sorted(read_records(double / "records.jsonl"), key=lambda r: (r["id"], r["condition"]))
    assert ra == rb
    assert json.loads((double / "manifest.json").read_text())["processes"] == 2


def test_an_image_is_decoded_once_for_all_text_conditions(tmp_path, tiny_llava_adapter):
    from PIL import Image

    calls = []

    def loader():
        calls.append(1)
        return Image.new("RGB", (40, 40), (200, 30, 30))

    sample = Sample("one", "image_heavy", "Which colour?", ("red", "blue"), 0, loader, meta={})
    run_diagnosis(tiny_llava_adapter, [sample], tmp_path, DiagnoseConfig(n_boot=10, switch_source="photos"))
    assert len(read_records(tmp_path / "records.jsonl")) == 3  # clean, unrelated_text, misleading_text
    assert len(calls) == 1


def test_adversarial_conditions_in_a_diagnosis(tmp_path, tiny_llava_adapter):
    samples = load_mini("test", limit=12)  # with a text-heavy sample the tiny model gets right
    config = DiagnoseConfig(conditions=["clean", "noise_image", "pgd_pixel@0", "pgd_pixel@16", "pgd_embed@0"],
                            batch_size=8, n_boot=50, attack={"steps": 2, "step_rule": "sign", "restarts": 1},
                            save_adversarial=True)
    summary = run_diagnosis(tiny_llava_adapter, samples, tmp_path, config)
    records = read_records(tmp_path / "records.jsonl")
    by_key = {(r["id"], r["condition"]): r for r in records}
    text = [s for s in samples if s.family == "text_heavy"]
    assert {c for (_, c) in by_key if c.startswith("pgd")} == {"pgd_pixel@0", "pgd_pixel@16", "pgd_embed@0"}
    assert not any(c.startswith("pgd") for (i, c) in by_key if i.startswith("test-vqa"))
    for s in text:  # eps 0 is the reference, exactly where it matters: the prediction
        ref, zero = by_key[(s.id, "noise_image")], by_key[(s.id, "pgd_pixel@0")]
        assert zero["pred"] == ref["pred"] and zero["perturbation"] == 0
        assert max(abs(a - b) for a, b in zip(zero["probs"], ref["probs"])) < 1e-5
        big = by_key[(s.id, "pgd_pixel@16")]
        assert 0 < big["perturbation"] <= 16 and (tmp_path / big["adversarial_image"]).exists()
    curve = next(c for c in summary["robustness"] if c["family"] == "text_heavy" and c["space"] == "pixel")
    assert [p["eps"] for p in curve["points"]] == [0, 16] and curve["points"][0]["attack_success_rate"] == 0
    names = [c["condition"] for c in summary["conditions"] if c["family"] == "text_heavy"]
    assert names == ["noise_image", "pgd_pixel@0", "pgd_pixel@16", "pgd_embed@0"]
