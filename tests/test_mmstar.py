"""MMStar's multimodal gain (MG = S_v - S_wv) and leakage (ML = max(0, S_wv - S_t)), by hand."""

import json

import pytest

from modint.diagnose.mmstar import add_leakage, multimodal_gain, multimodal_leakage
from modint.perturb import REFERENCE_CONDITION


def rec(id, condition, correct, family="vqa", task=None, error=None):
    return {"id": id, "family": family, "condition": condition, "gold": 0, "pred": 0 if correct else 1,
            "correct": correct, "probs": None, "error": error, "task": task}


LVLM = [
    # vqa / count: with the image 3 of 4 right, without it 1 of 4; v5 has no scored no_image record
    rec("v1", "clean", True, task="count"), rec("v1", "no_image", True, task="count"),
    rec("v2", "clean", True, task="count"), rec("v2", "no_image", False, task="count"),
    rec("v3", "clean", True, task="count"), rec("v3", "no_image", False, task="count"),
    rec("v4", "clean", False, task="count"), rec("v4", "no_image", False, task="count"),
    rec("v5", "clean", True, task="count"), rec("v5", "no_image", False, task="count", error="model failed"),
    # vqa / colour: wrong with the image, right without it
    rec("v6", "clean", False, task="colour"), rec("v6", "no_image", True, task="colour"),
    # text-heavy: the reference is noise_image
    rec("t1", "noise_image", True, "text_heavy"), rec("t1", "no_image", True, "text_heavy"),
    rec("t2", "noise_image", False, "text_heavy"), rec("t2", "no_image", True, "text_heavy"),
    rec("t3", "noise_image", True, "text_heavy"), rec("t3", "no_image", False, "text_heavy"),
    rec("t3", "black_image", False, "text_heavy"),
]
TEXT_MODEL = [rec(i, "no_image", False, task=t) for i, t in
              [("v1", "count"), ("v2", "count"), ("v3", "count"), ("v4", "count"), ("v6", "colour")]] + \
             [rec(i, "no_image", True, "text_heavy") for i in ("t1", "t2", "t3")]


def row(rows, family, task):
    return next(r for r in rows if r["family"] == family and r["task"] == task)


def test_multimodal_gain_by_hand():
    rows = multimodal_gain(LVLM, REFERENCE_CONDITION)
    assert [(r["family"], r["task"]) for r in rows] == [("text_heavy", None), ("vqa", None), ("vqa", "colour"),
                                                        ("vqa", "count")]
    count = row(rows, "vqa", "count")
    assert (count["n"], count["accuracy_with_image"], count["accuracy_without_image"]) == (4, 0.75, 0.25)
    assert count["multimodal_gain"] == pytest.approx(0.5)
    assert row(rows, "vqa", "colour")["multimodal_gain"] == pytest.approx(-1.0)
    family = row(rows, "vqa", None)  # v1-v4 and v6: 3/5 with the image, 2/5 without
    assert family["n"] == 5 and family["multimodal_gain"] == pytest.approx(0.6 - 0.4)
    text = row(rows, "text_heavy", None)  # 2/3 under noise_image, 2/3 without an image
    assert text["with_image"] == "noise_image" and text["multimodal_gain"] == pytest.approx(0.0)


def test_multimodal_leakage_by_hand_and_clamped_at_zero():
    rows = multimodal_leakage(LVLM, TEXT_MODEL)
    vqa = row(rows, "vqa", None)  # the LVLM without the image: 2/5; the text model: 0/5
    assert (vqa["n"], vqa["accuracy_without_image"], vqa["text_model_accuracy"]) == (5, 0.4, 0.0)
    assert vqa["multimodal_leakage"] == pytest.approx(0.4)
    assert row(rows, "vqa", "count")["multimodal_leakage"] == pytest.approx(0.25)
    text = row(rows, "text_heavy", None)  # 2/3 against 3/3: negative, so no leakage
    assert text["text_model_accuracy"] == 1.0 and text["multimodal_leakage"] == 0.0


def test_no_gain_without_no_image_records():
    assert multimodal_gain([r for r in LVLM if r["condition"] != "no_image"], REFERENCE_CONDITION) == []
    assert multimodal_leakage(LVLM, []) == []


def _run_dir(path, records):
    from modint.diagnose import rundir
    from modint.diagnose.metrics import summarize

    path.mkdir()
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = {"model": "m", "benchmark": "b", "split": "test", "seed": 0, "scoring": "generate",
               **summarize(records, REFERENCE_CONDITION, n_boot=50)}
    summary["multimodal_gain"] = multimodal_gain(records, REFERENCE_CONDITION)
    rundir.write_json(path / "summary.json", summary)
    return path


def test_gain_and_leakage_in_summary_markdown_and_html(tmp_path):
    from modint.report.html import write_report
    from modint.report.tables import run_report

    run = _run_dir(tmp_path / "lvlm", LVLM)
    text = _run_dir(tmp_path / "llm", TEXT_MODEL)
    summary = add_leakage(run, text, text_model="vicuna")
    assert json.loads((run / "summary.json").read_text())["multimodal_leakage"] == summary["multimodal_leakage"]
    table, _, _ = run_report(run, "md")
    assert "(text model: vicuna)" in table
    assert "| vqa | all | 5 | 60.0 (clean) | 40.0 | +20.0 | 0.0 | +40.0 |" in table
    assert "| vqa | count | 4 | 75.0 (clean) | 25.0 | +50.0 | 0.0 | +25.0 |" in table
    assert "| text_heavy | all | 3 | 66.7 (noise_image) | 66.7 | +0.0 | 100.0 | +0.0 |" in table
    html = write_report(run).read_text()
    assert 'id="gain"' in html and "<td>+50.0</td>" in html and "vicuna" in html


def test_leakage_needs_shared_no_image_samples(tmp_path):
    run = _run_dir(tmp_path / "lvlm", LVLM)
    other = _run_dir(tmp_path / "llm", [rec("x9", "no_image", True)])
    with pytest.raises(ValueError, match="share no sample scored under no_image"):
        add_leakage(run, other)
