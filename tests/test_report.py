"""Reports: figures from records (flip matrices, probability-shift histograms), escaping and no
network in report.html, paper tables, run comparison with McNemar, the CLI, and the page itself in
headless Chromium."""

import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modint.data.mini import load_mini
from modint.data.sample import Sample
from modint.diagnose import rundir
from modint.diagnose.metrics import summarize
from modint.perturb import REFERENCE_CONDITION
from modint.report.compare import compare_runs, comparison_table, render_comparison
from modint.report.browser import browser_data
from modint.report.html import flip_matrices, gold_prob_shifts, histogram_counts, render_report, write_report
from modint.report.tables import render_table

from conftest import make_image

MODINT = [sys.executable, "-m", "modint.cli"]
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
ARTIFACTS = Path(__file__).parent / "artifacts"


def rec(id, condition, gold, pred, family="image_heavy", probs=None, error=None, distractor=None):
    return {"id": id, "family": family, "condition": condition, "gold": gold, "pred": pred,
            "correct": error is None and pred == gold, "probs": probs, "error": error, "distractor": distractor,
            "task": None}


def make_run(path: Path, records, manifest=None, n_boot=20) -> Path:
    """A run directory from records: summary by the library's own metrics."""
    path.mkdir(parents=True, exist_ok=True)
    with rundir.RecordWriter(path / rundir.RECORDS) as w:
        w.write_many(records)
    summary = {"model": "synthetic", "benchmark": "mini", "split": "test", "seed": 0, "scoring": "letters",
               **summarize(records, REFERENCE_CONDITION, n_boot=n_boot)}
    rundir.write_json(path / rundir.SUMMARY, summary)
    if manifest is not None:
        rundir.write_json(path / rundir.MANIFEST, manifest)
    return path


def run_cli(*args):
    # PYTHONPATH passes through so that a checkout run with PYTHONPATH=src tests its own CLI.
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}}
    return subprocess.run(MODINT + [str(a) for a in args], capture_output=True, text=True, env=env)


def data_block(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="modint-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


# --- figures -------------------------------------------------------------------------------


def flip_records():
    """Ids under clean (the reference) and misleading_text, gold 0. a, b: right -> right;
    c: right -> wrong; d: wrong -> right; e: wrong -> wrong (the answer changes 1 -> 2);
    f: an error under the condition and g: no record under it (both unpaired)."""
    ref = {"a": 0, "b": 0, "c": 0, "d": 1, "e": 1, "f": 0, "g": 0}
    cond = {"a": 0, "b": 0, "c": 3, "d": 0, "e": 2}
    records = [rec(i, "clean", 0, p) for i, p in ref.items()]
    records += [rec(i, "misleading_text", 0, p) for i, p in cond.items()]
    records.append(rec("f", "misleading_text", 0, None, error="model failed"))
    return records


def test_flip_matrix_counts():
    m = flip_matrices(flip_records(), REFERENCE_CONDITION)
    assert list(m) == [("image_heavy", "misleading_text")]  # no matrix for the reference itself
    assert m[("image_heavy", "misleading_text")] == {"both_correct": 2, "harmful": 1, "beneficial": 1,
                                                     "both_wrong": 1, "changed": 3, "n": 5}


def test_flip_matrix_in_html_matches_summary(tmp_path):
    records = flip_records()
    run = make_run(tmp_path / "run", records)
    html = write_report(run).read_text()
    card = re.search(r'<div class="card flip-card"[^>]*data-condition="misleading_text".*?</div></div>', html, re.S)
    cells = re.findall(r'<td class="(?:same|harm|bene)">(\d+)</td>', card.group(0))
    assert cells == ["2", "1", "1", "1"]  # [[both right, harmful], [beneficial, both wrong]]
    summary = json.loads((run / "summary.json").read_text())
    row = next(r for r in summary["conditions"] if r["condition"] == "misleading_text")
    assert row["harmful_flip_rate"] == 1 / 5 and row["beneficial_flip_rate"] == 1 / 5


def test_gold_probability_shift_histogram():
    # gold 0: shift = p_cond[0] - p_ref[0]
    pairs = {"a": (0.5, 0.9), "b": (0.5, 0.5), "c": (0.3, 0.05), "d": (1.0, 0.0), "e": (0.0, 1.0), "f": (0.6, 0.35)}
    records = []
    for i, (p, q) in pairs.items():
        records.append(rec(i, "clean", 0, 0, probs=[p, 1 - p]))
        records.append(rec(i, "unrelated_text", 0, 0, probs=[q, 1 - q]))
    records.append(rec("x", "clean", 0, 0, probs=None))  # no probabilities: left out
    records.append(rec("x", "unrelated_text", 0, 0, probs=[0.5, 0.5]))
    shifts = gold_prob_shifts(records, REFERENCE_CONDITION)[("image_heavy", "unrelated_text")]
    assert shifts == pytest.approx([0.4, 0.0, -0.25, -1.0, 1.0, -0.25])
    counts = histogram_counts(shifts)  # 20 bins of 0.1 over [-1, 1]
    assert len(counts) == 20 and sum(counts) == 6
    expected = [0] * 20
    expected[0] = 1   # -1.0
    expected[7] = 2   # -0.25 twice: [-0.3, -0.2)
    expected[10] = 1  # 0.0: [0, 0.1)
    expected[14] = 1  # 0.4: [0.4, 0.5)
    expected[19] = 1  # 1.0: the last bin is closed
    assert counts == expected
    assert histogram_counts([-3, 3], bins=4) == [1, 0, 0, 1]  # clipped into the end bins


def test_headline_names_the_most_negative_delta(tmp_path):
    records = []
    for i in range(10):
        records.append(rec(f"s{i}", "clean", 0, 0))
        records.append(rec(f"s{i}", "unrelated_text", 0, 0 if i < 8 else 1))  # -20 points
        records.append(rec(f"s{i}", "misleading_text", 0, 0 if i < 4 else 1))  # -60 points
    html = write_report(make_run(tmp_path / "run", records)).read_text()
    headline = re.search(r'id="headline-text">(.*?)</p>', html, re.S).group(1)
    assert "misleading_text" in headline and "60.0 points" in headline and "95% CI" in headline
    assert "unrelated_text" not in headline


# --- escaping, no network ------------------------------------------------------------------------


def malicious_samples():
    return [Sample("evil-1", "image_heavy", f"What is {SCRIPT} shown? See http://example.com",
                   (IMG, "square", "star", "cross"), 1, make_image(3)),
            Sample("evil-2", "text_heavy", f"{IMG} {SCRIPT} 2 + 2?", ("4", "5"), 0, None)]


def test_dataset_text_is_escaped_and_nothing_is_fetched(tmp_path):
    samples = malicious_samples()
    bad_condition = IMG  # a record whose condition name itself is hostile
    records = [rec("evil-1", "clean", 1, 1, probs=[0.1, 0.6, 0.2, 0.1]),
               rec("evil-1", "misleading_text", 1, 0, probs=[0.7, 0.1, 0.1, 0.1], distractor=0),
               rec("evil-1", bad_condition, 1, 0, probs=[0.7, 0.1, 0.1, 0.1]),
               rec("evil-2", "noise_image", 0, 0, family="text_heavy", probs=[0.9, 0.1]),
               rec("evil-2", "black_image", 0, 1, family="text_heavy", probs=[0.2, 0.8],
                   error=f"boom {SCRIPT} https://example.org")]
    run = make_run(tmp_path / "run", records, manifest={"config": {"seed": 0, "switch_source": "photos"},
                                                        "command": "modint diagnose --model https://x.example"})
    html = write_report(run, samples=samples).read_text()
    assert "http://" not in html and "https://" not in html
    assert "<script>alert" not in html and "<img src=x" not in html and "onerror=alert(1)>" not in html
    # exactly the page's own two script elements: the JSON block and the browser script
    assert len(re.findall(r"<script\b", html)) == 2
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in html  # the hostile condition name, as text
    data = data_block(html)
    texts = " ".join(data["texts"])
    assert SCRIPT in texts and IMG in texts and "http://example.com" in texts  # intact once parsed
    assert data["options"]["evil-1"][0] == IMG
    assert any(r["e"] and SCRIPT in r["e"] for r in data["rows"])
    assert all(t.startswith("data:image/") for t in data["thumbs"]) and data["thumbs"]
    # the Content-Security-Policy forbids any fetch and inline handlers
    assert "default-src 'none'; img-src data:" in html


def test_engine_report_has_thumbnails_and_texts(tmp_path):
    samples = load_mini("test", limit=6)
    records = [rec(s.id, c, s.answer, s.answer, family=s.family, probs=[0.25] * 4)
               for s in samples for c in (["clean"] if s.family != "text_heavy" else ["noise_image", "black_image",
                                                                                    "no_image"])]
    run = make_run(tmp_path / "run", records, manifest={"config": {"seed": 0, "switch_source": "mixed"}})
    data = data_block(write_report(run, samples=samples).read_text())
    rows = {(r["id"], r["c"]): r for r in data["rows"]}
    txt = [s for s in samples if s.family == "text_heavy"]
    # the two black canvases are one thumbnail; no_image has none
    assert rows[(txt[0].id, "black_image")]["im"] == rows[(txt[1].id, "black_image")]["im"] >= 0
    assert rows[(txt[0].id, "no_image")]["im"] == -1 and rows[(txt[0].id, "no_image")]["note"] == "no image"
    assert rows[(txt[0].id, "noise_image")]["im"] != rows[(txt[1].id, "noise_image")]["im"]
    assert txt[0].question in data["texts"][rows[(txt[0].id, "noise_image")]["t"]]
    # thumbnails are at most 96 px
    import base64

    from PIL import Image

    for uri in data["thumbs"]:
        im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert max(im.size) <= 96


def test_thumbnail_cap_is_said(tmp_path):
    samples = load_mini("test", limit=6)
    records = [rec(s.id, "clean" if s.family != "text_heavy" else "noise_image", s.answer, s.answer,
                   family=s.family) for s in samples]
    data = browser_data(records, REFERENCE_CONDITION, samples, max_thumbs=2)
    assert len(data["thumbs"]) == 2
    assert "capped at 2" in data["note"] and sum(r.get("note") == "thumbnail cap reached" for r in data["rows"]) == 4
    assert all(r["t"] >= 0 for r in data["rows"])  # texts are never capped


def test_report_without_samples_and_robustness(tmp_path):
    records = flip_records()
    run = make_run(tmp_path / "run", records)
    summary = json.loads((run / "summary.json").read_text())
    summary["robustness"] = [{"family": "text_heavy", "space": "pixel", "eps_unit": "1/255", "points": [
        {"eps": 0, "accuracy": 0.9, "attack_success_rate": 0.0, "n": 10, "n_reference_correct": 9},
        {"eps": 4, "accuracy": 0.5, "attack_success_rate": 0.45, "n": 10, "n_reference_correct": 9}]}]
    html = render_report(summary, None, records)
    assert 'id="robustness"' in html and "attack success rate" in html and "<polyline" in html
    assert "were not available" in html
    assert data_block(html)["thumbs"] == [] and "xmlns" not in html


# --- tables ----------------------------------------------------------------------------------


SUMMARY = {"conditions": [
    {"family": "image_heavy", "condition": "clean", "is_reference": True, "n": 10, "accuracy": 0.8,
     "accuracy_ci95": [0.49, 0.943], "delta": None, "delta_ci95": [None, None], "flip_rate": None,
     "followed_distractor_rate": None},
    {"family": "image_heavy", "condition": "misleading_text", "is_reference": False, "n": 10, "accuracy": 0.5,
     "accuracy_ci95": [0.237, 0.763], "delta": -0.3, "delta_ci95": [-0.6, -0.05], "flip_rate": 0.4,
     "followed_distractor_rate": 0.25},
    {"family": "text_heavy", "condition": "noise_image", "is_reference": True, "n": 4, "accuracy": 1.0,
     "accuracy_ci95": [0.51, 1.0], "delta": None, "delta_ci95": [None, None], "flip_rate": None,
     "followed_distractor_rate": None}]}


def test_markdown_table():
    lines = render_table(SUMMARY, "md").splitlines()
    assert lines[0] == ("| family | condition | n | accuracy % [95% CI] | delta pts [95% CI] | flips % | "
                        "followed % |")
    assert lines[2] == "| image_heavy | clean | 10 | 80.0 [49.0, 94.3] | ref. | – | – |"
    assert lines[3] == "| image_heavy | misleading_text | 10 | 50.0 [23.7, 76.3] | -30.0 [-60.0, -5.0] | 40.0 | 25.0 |"
    assert len(lines) == 5


def test_csv_table():
    rows = list(csv.DictReader(io.StringIO(render_table(SUMMARY, "csv"))))
    assert len(rows) == 3
    assert rows[1] == {"family": "image_heavy", "condition": "misleading_text", "reference": "0", "n": "10",
                       "accuracy": "50.0", "accuracy_ci_low": "23.7", "accuracy_ci_high": "76.3", "delta": "-30.0",
                       "delta_ci_low": "-60.0", "delta_ci_high": "-5.0", "flip_rate": "40.0",
                       "followed_distractor_rate": "25.0"}
    assert rows[0]["delta"] == "" and rows[0]["reference"] == "1"


def test_latex_table():
    tex = render_table(SUMMARY, "tex")
    assert tex.startswith("\\begin{tabular}{llrrrrr}\n\\toprule\n") and tex.rstrip().endswith("\\end{tabular}")
    row = r"image\_heavy & misleading\_text & 10 & 50.0 [23.7, 76.3] & $-30.0$ [$-60.0$, $-5.0$] & 40.0 & 25.0 \\"
    assert row in tex
    assert r"accuracy \% [95\% CI]" in tex
    assert tex.count("\\midrule") == 2  # after the header, between the families


def task_records():
    """Image-heavy, tasks shape (a, b) and digit (c): clean a, b, c right; misleading a wrong."""
    records = [rec(i, c, 0, 1 if (i, c) == ("a", "misleading_text") else 0) for i in "abc"
               for c in ("clean", "misleading_text")]
    return [{**r, "task": "digit" if r["id"] == "c" else "shape"} for r in records]


def test_tables_by_task():
    summary = {"conditions": summarize(task_records(), REFERENCE_CONDITION, n_boot=20)["conditions"]}
    lines = render_table(summary, "md", by_task=True).splitlines()
    assert lines[0] == ("| family | condition | task | n | accuracy % [95% CI] | delta pts [95% CI] | flips % | "
                        "followed % |")
    assert lines[1] == "|---|---|---|---:|---:|---:|---:|---:|"
    assert [l.split(" | ")[1:4] for l in lines[2:]] == [["clean", "digit", "1"], ["clean", "shape", "2"],
                                                        ["misleading_text", "digit", "1"],
                                                        ["misleading_text", "shape", "2"]]
    assert lines[5].startswith("| image_heavy | misleading_text | shape | 2 | 50.0 [9.5, 90.5] | -50.0 [")
    assert lines[5].endswith(" | 50.0 | – |")  # a flipped, no distractor recorded
    rows = list(csv.DictReader(io.StringIO(render_table(summary, "csv", by_task=True))))
    assert [(r["condition"], r["task"], r["accuracy"], r["delta"]) for r in rows] == [
        ("clean", "digit", "100.0", ""), ("clean", "shape", "100.0", ""), ("misleading_text", "digit", "100.0", "+0.0"),
        ("misleading_text", "shape", "50.0", "-50.0")]
    with pytest.raises(ValueError, match="md or csv"):
        render_table(summary, "tex", by_task=True)


def test_report_html_has_the_task_table(tmp_path):
    run = make_run(tmp_path / "run", task_records())
    html = write_report(run).read_text()
    table = re.search(r'<table class="data" id="task-table">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<tr class=\"[a-z]*\">(.*?)</tr>", table, re.S)
    assert len(rows) == 4
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[3])
    assert cells[:6] == ["image_heavy", "misleading_text", "shape", "2", "2", "50.0"] and cells[7] == "-50.0"
    plain = write_report(make_run(tmp_path / "plain", flip_records())).read_text()
    assert 'id="task-table"' not in plain and "No record names a task." in plain


def test_cli_report_by_task(tmp_path):
    run = make_run(tmp_path / "run", task_records())
    md = run_cli("report", run, "--format", "md", "--by-task")
    assert md.returncode == 0 and md.stdout.startswith("| family | condition | task |"), md.stderr
    assert "| image_heavy | misleading_text | shape | 2 | 50.0" in md.stdout
    for args, message in [(["--format", "tex"], "use --format md or csv"), ([], "use --format md or csv")]:
        result = run_cli("report", run, "--by-task", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    result = run_cli("report", make_run(tmp_path / "plain", flip_records()), "--format", "md", "--by-task")
    assert result.returncode == 2 and "no per-task figures" in result.stderr


# --- compare ---------------------------------------------------------------------------------


def two_runs(tmp_path):
    ids = [f"s{i}" for i in range(10)]
    a = [rec(i, "clean", 0, 0) for i in ids] + [rec(i, "misleading_text", 0, 0) for i in ids]
    b = [rec(i, "clean", 0, 0) for i in ids] + [rec(i, "misleading_text", 0, 1 if k < 6 else 0)
                                                for k, i in enumerate(ids)]
    return make_run(tmp_path / "A", a), make_run(tmp_path / "B", b)


def test_compare_mcnemar(tmp_path):
    run_a, run_b = two_runs(tmp_path)
    cmp = compare_runs([run_a, run_b])
    (overall,) = cmp.overall
    assert (overall.n, overall.b, overall.c) == (20, 6, 0)
    assert overall.p == pytest.approx(2 * 0.5 ** 6) == pytest.approx(0.03125) and overall.significant
    per = cmp.per_key[0]
    assert per[("image_heavy", "misleading_text")].p == pytest.approx(0.03125)
    assert per[("image_heavy", "clean")].p == 1.0 and not per[("image_heavy", "clean")].significant
    assert cmp.accuracy(("image_heavy", "misleading_text"), 0) == 1.0
    assert cmp.accuracy(("image_heavy", "misleading_text"), 1) == 0.4
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(comparison_table(cmp))
    text = console.export_text()
    assert "p=0.0312 *" in text and "-60.0" in text
    html = render_comparison(cmp)
    assert "http://" not in html and "https://" not in html and "<polygon" in html
    overall_row = re.search(r'<tr class="total" id="overall">(.*?)</tr>', html, re.S).group(1)
    assert 'class="neg sig"' in overall_row and "p = 0.0312 *" in overall_row


def test_compare_cli(tmp_path):
    run_a, run_b = two_runs(tmp_path)
    result = run_cli("compare", run_a, run_b, "--out", tmp_path / "cmp.html")
    assert result.returncode == 0, result.stderr
    assert "p=0.0312 *" in result.stdout
    assert (tmp_path / "cmp.html").read_text().count('fill-opacity="0.14"') == 2  # one radar polygon per run


def attacked_runs(tmp_path, n=8, broken=({1: 4, 4: 6}, {1: 0, 4: 1})):
    """Two runs ("base", "mitigated") of the same n text-heavy samples under a pixel sweep at eps
    0, 1 and 4: at each eps the first broken[run][eps] samples answer wrong, the others right."""
    from modint.diagnose.metrics import robustness_curves

    ids = [f"t{i}" for i in range(n)]
    runs = []
    for name, wrong in zip(("base", "mitigated"), broken):
        records = [rec(i, "noise_image", 0, 0, family="text_heavy") for i in ids]
        for eps in (0, 1, 4):
            for k, i in enumerate(ids):
                r = rec(i, f"pgd_pixel@{eps}", 0, 1 if k < wrong.get(eps, 0) else 0, family="text_heavy")
                records.append({**r, "attack_space": "pixel", "eps": float(eps)})
        path = make_run(tmp_path / name, records)
        summary = json.loads((path / rundir.SUMMARY).read_text())
        summary["robustness"] = robustness_curves(records, REFERENCE_CONDITION)
        rundir.write_json(path / rundir.SUMMARY, summary)
        runs.append(path)
    return runs


def test_holm_adjusted_p_values_by_hand():
    from modint.report.compare import holm_adjust

    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> non-decreasing 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.04, 0.045]) == pytest.approx([0.08, 0.08])  # 0.045 x 1 lifted to 0.08
    assert holm_adjust([0.5, 0.6, 0.001]) == pytest.approx([1.0, 1.0, 0.003])  # capped at 1
    assert holm_adjust([0.2]) == [0.2] and holm_adjust([]) == []


def _per_eps_rows(curve):
    return [(t.eps, t.paired.n, t.paired.acc_first, t.paired.acc_this, t.paired.b, t.paired.c) for t in curve["per_eps"][0]]


def test_compare_tests_robustness_per_eps_with_holm_and_never_pools_eps(tmp_path):
    from modint.report.compare import per_eps_table, robustness_verdict

    base, mitigated = attacked_runs(tmp_path)
    cmp = compare_runs([base, mitigated])
    (curve,) = cmp.robustness
    assert (curve["family"], curve["space"], curve["eps"]) == ("text_heavy", "pixel", [0.0, 1.0, 4.0])
    assert curve["accuracy"] == [[1.0, 0.5, 0.25], [1.0, 1.0, 0.875]]
    assert _per_eps_rows(curve) == [(0.0, 8, 1.0, 1.0, 0, 0), (1.0, 8, 0.5, 1.0, 0, 4), (4.0, 8, 0.25, 0.875, 0, 5)]
    zero, one, four = (t.paired for t in curve["per_eps"][0])
    assert one.p == pytest.approx(2 * 0.5 ** 4) and four.p == pytest.approx(2 * 0.5 ** 5)
    # Holm over the two eps > 0: 0.0625 x 2 = 0.125, then max(0.125, 0.125 x 1); eps 0 (no attack) is no member.
    assert one.p_holm == pytest.approx(0.125) and four.p_holm == pytest.approx(0.125) and zero.p_holm is None
    assert not one.significant and not four.significant
    # Pooling the 16 attacked (id, eps) pairs would have claimed b=0, c=9, p = 2 x 0.5^9 = 0.004: significant.
    line = robustness_verdict(curve, cmp.labels, 1)
    assert "mitigated and base are not significantly different in robustness at any eps > 0" in line, line
    assert "smallest Holm p 0.125, at eps 4" in line and "Holm over 2 eps" in line
    assert "37.5% -> 93.8%" in line  # the paired accuracies averaged over eps 1 and 4
    # The main table's attack rows carry the same tests; the "all" row leaves the attacks out.
    assert cmp.per_key[0][("text_heavy", "pgd_pixel@4")] is four
    (overall,) = cmp.overall
    assert (overall.n, overall.b, overall.c) == (8, 0, 0)
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(comparison_table(cmp))
    console.print(per_eps_table(cmp))
    text = console.export_text()
    assert "+62.5 p=0.0625 Holm=0.125" in text and "shared records, no attacks" in text
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if "mitigated vs base │" in line]
    assert rows == [["text_heavy", "pixel", "mitigated vs base", "0", "8", "100.0", "100.0", "0", "0", "1", "–"],
                    ["text_heavy", "pixel", "mitigated vs base", "1", "8", "50.0", "100.0", "0", "4", "0.125", "0.125"],
                    ["text_heavy", "pixel", "mitigated vs base", "4", "8", "25.0", "87.5", "0", "5", "0.0625", "0.125"]]
    html = render_comparison(cmp)
    assert 'id="robustness"' in html and html.count("<polyline") == 2 and 'id="per-eps"' in html
    assert "<td>0.0625</td><td>0.125</td>" in html
    result = run_cli("compare", base, mitigated)
    assert result.returncode == 0 and "not significantly different" in result.stdout, result.stderr
    assert "Holm" in result.stdout
    assert 'id="robustness"' not in render_comparison(compare_runs(two_runs(tmp_path / "plain")))


def test_compare_names_the_eps_where_a_run_is_more_or_less_robust(tmp_path):
    from modint.report.compare import robustness_verdict

    base, mitigated = attacked_runs(tmp_path, n=20, broken=({1: 8, 4: 12}, {1: 0, 4: 1}))
    cmp = compare_runs([base, mitigated])
    (curve,) = cmp.robustness
    assert _per_eps_rows(curve)[1:] == [(1.0, 20, 0.6, 1.0, 0, 8), (4.0, 20, 0.4, 0.95, 0, 11)]
    one, four = (t.paired for t in curve["per_eps"][0][1:])
    # p: 2 x 0.5^8 = 0.0078125 and 2 x 0.5^11 = 0.0009765625; Holm: the smaller x 2, the larger x 1.
    assert four.p_holm == pytest.approx(0.001953125) and one.p_holm == pytest.approx(0.0078125)
    line = robustness_verdict(curve, cmp.labels, 1)
    assert "mitigated is more robust than base at eps 1, 4 (Holm p 0.00781, 0.00195)" in line, line
    assert "50.0% -> 97.5%" in line
    assert "base is less robust than mitigated at eps 1, 4" in robustness_verdict(
        compare_runs([mitigated, base]).robustness[0], ["mitigated", "base"], 1)
    # More robust at one eps, less at another: both named. 2 x 0.5^10 each, Holm x 2.
    base, mixed = attacked_runs(tmp_path / "mixed", n=20, broken=({1: 10}, {4: 10}))
    line = robustness_verdict(compare_runs([base, mixed]).robustness[0], ["base", "mixed"], 1)
    assert ("mixed against base: more robust at eps 1 (Holm p 0.00391) and less robust at eps 4 (Holm p 0.00391)"
            in line), line
    same = compare_runs([base, base])
    assert "are not significantly different in robustness at any eps > 0 (smallest Holm p 1);" in robustness_verdict(
        same.robustness[0], ["a", "b"], 1)


# --- mitigation targets over seeds -------------------------------------------------------------

TARGET_CELLS = [("image_heavy", "clean"), ("image_heavy", "misleading_text"), ("text_heavy", "noise_image"),
                ("text_heavy", "switched_image"), ("vqa", "clean")]


def target_run(path, right):
    """A run of 10 samples per cell; ``right``: per cell of TARGET_CELLS, the first k samples are right."""
    records = [rec(f"{family}-{i}", condition, 0, 0 if i < k else 1, family=family)
               for (family, condition), k in zip(TARGET_CELLS, right) for i in range(10)]
    return make_run(path, records)


def target_runs(tmp_path):
    # base gaps: misleading 90 - 30 = 60 points, switched 80 - 40 = 40 points
    base = target_run(tmp_path / "base", [9, 3, 8, 4, 5])
    seed0 = target_run(tmp_path / "seed0", [9, 7, 8, 6, 5])  # gaps 20 (-66.7%) and 20 (-50%)
    seed1 = target_run(tmp_path / "seed1", [8, 8, 8, 7, 6])  # gaps 0 (-100%) and 10 (-75%); IH clean -10
    return base, seed0, seed1


def test_mitigation_targets_over_seeds_by_hand(tmp_path):
    from modint.report.targets import mitigation_targets

    result = mitigation_targets(compare_runs(target_runs(tmp_path)))
    cells = {(c["family"], c["condition"]): c for c in result["conditions"]}
    mis = cells[("image_heavy", "misleading_text")]
    assert mis["base"] == 0.3 and mis["runs"] == [0.7, 0.8]
    assert mis["mean"] == pytest.approx(0.75) and mis["sd"] == pytest.approx(0.1 / math.sqrt(2))  # .05 * sqrt(2)
    assert mis["change_mean"] == pytest.approx(0.45)
    # McNemar per seed: s3-s6 (then s3-s7) went from wrong to right, nothing the other way
    assert [(p["b"], p["c"]) for p in mis["paired"]] == [(0, 4), (0, 5)]
    assert [p["mcnemar_p"] for p in mis["paired"]] == pytest.approx([2 / 2 ** 4, 2 / 2 ** 5])
    gaps = {g["condition"]: g for g in result["gaps"]}
    g = gaps["misleading_text"]
    assert g["base_gap"] == pytest.approx(0.6) and g["gaps"] == pytest.approx([0.2, 0.0])
    assert g["reductions"] == pytest.approx([2 / 3, 1.0])
    assert g["reduction_mean"] == pytest.approx(5 / 6) and g["reduction_sd"] == pytest.approx((1 / 3) / math.sqrt(2))
    assert g["reduction_mean"] == pytest.approx(1 - g["gap_mean"] / g["base_gap"])  # the mean gap's reduction
    assert g["target"] == 0.7 and g["passed"]
    sw = gaps["switched_image"]
    assert sw["reductions"] == pytest.approx([0.5, 0.75]) and sw["reduction_mean"] == pytest.approx(0.625)
    assert sw["target"] == 0.4 and sw["passed"]
    refs = {r["family"]: r for r in result["references"]}
    assert refs["image_heavy"]["changes"] == pytest.approx([0.0, -0.1])
    assert refs["image_heavy"]["change_mean"] == pytest.approx(-0.05) and not refs["image_heavy"]["passed"]
    assert refs["text_heavy"]["passed"] and refs["vqa"]["change_mean"] == pytest.approx(0.05) and refs["vqa"]["passed"]
    assert result["passed"] is False and result["missing_targets"] == []


def test_mitigation_targets_without_a_base_gap_fail(tmp_path):
    from modint.report.targets import mitigation_targets

    base = target_run(tmp_path / "base", [5, 6, 8, 4, 5])  # misleading text above clean: no gap to reduce
    result = mitigation_targets(compare_runs([base, target_run(tmp_path / "run", [5, 6, 8, 8, 5])]))
    gaps = {g["condition"]: g for g in result["gaps"]}
    assert gaps["misleading_text"]["reduction_mean"] is None and gaps["misleading_text"]["passed"] is False
    assert gaps["switched_image"]["reductions"] == pytest.approx([1.0]) and gaps["switched_image"]["passed"]
    assert not result["passed"]


def test_compare_targets_cli(tmp_path):
    base, seed0, seed1 = target_runs(tmp_path)
    result = run_cli("compare", base, seed0, seed1, "--targets", "--json", tmp_path / "t.json")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "75.0 ± 7.1" in text and "+45.0 ± 7.1" in text  # misleading text: mean ± sd, change against base
    assert "83.3% ± 23.6" in text and "67% 100%" in text and "62.5% ± 17.7" in text
    assert "targets missed: image_heavy clean" in text
    assert json.loads((tmp_path / "t.json").read_text())["passed"] is False
    bad = run_cli("compare", base, seed0, "--json", tmp_path / "x.json")
    assert bad.returncode == 2 and "add --targets" in bad.stderr


# --- CLI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["report", "{missing}"], "{missing}: not a run directory (no records.jsonl)"),
    (["report", "{run}", "--format", "xls"], "unknown report format 'xls'"),
    (["compare", "{run}", "{missing}"], "{missing}: not a run directory (no records.jsonl)"),
    (["compare", "{run}"], "compare needs at least two run directories"),
])
def test_cli_errors_are_one_line(args, message, tmp_path):
    run = make_run(tmp_path / "run", flip_records())
    names = {"run": str(run), "missing": str(tmp_path / "nowhere")}
    result = run_cli(*[a.format(**names) for a in args])
    assert result.returncode == 2
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and message.format(**names) in lines[0], result.stderr


@pytest.mark.slow
def test_cli_report_formats(tmp_path):
    samples = load_mini("test", limit=3)
    records = [rec(s.id, "clean" if s.family != "text_heavy" else "noise_image", s.answer, s.answer,
                   family=s.family, probs=[0.25] * 4) for s in samples]
    manifest = {"benchmark": {"name": "mini", "split": "test", "limit": 3, "samples": 3},
                "config": {"seed": 0, "switch_source": "mixed"}}
    run = make_run(tmp_path / "run", records, manifest=manifest)
    md = run_cli("report", run, "--format", "md")
    assert md.returncode == 0 and md.stdout.startswith("| family | condition |"), md.stderr
    out = tmp_path / "table.csv"
    assert run_cli("report", run, "--format", "csv", "--out", out).returncode == 0
    assert out.read_text().startswith("family,condition,reference,n,accuracy")
    assert "\\begin{tabular}" in run_cli("report", run, "--format", "tex").stdout
    result = run_cli("report", run)  # html, samples rebuilt from the manifest
    assert result.returncode == 0, result.stderr
    data = data_block((run / "report.html").read_text())
    assert len(data["thumbs"]) == 3 and all(r["t"] >= 0 for r in data["rows"])
    assert samples[0].question in data["texts"][0]


# --- in a browser ----------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
_install_tried: list[str] = []


def _chromium_missing() -> str | None:
    """None when Chromium and its driver are there (installing them once with apt-get when this
    runs as root), else why not."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return None
    if _install_tried:
        return _install_tried[0]
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        reason = ("Chromium is not installed (apt-get install chromium chromium-driver) and this is not root "
                  "with apt-get")
    else:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = [apt, "install", "-y", "-qq", "--no-install-recommends", "chromium", "chromium-driver"]
        try:
            if subprocess.run(install, capture_output=True, env=env, timeout=900).returncode != 0:
                subprocess.run([apt, "update", "-qq"], capture_output=True, env=env, timeout=300)
                subprocess.run(install, capture_output=True, env=env, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _install_tried.append(f"installing Chromium failed: {exc}")
            return _install_tried[0]
        reason = None if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER) else \
            "apt-get install chromium chromium-driver did not provide /usr/bin/chromium and /usr/bin/chromedriver"
    _install_tried.append(reason or "")
    return reason


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    missing = _chromium_missing()
    if missing:
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def _open(driver, path: Path):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.find_element("id", "sample-count").get_attribute("data-count") != "0")
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _visible_rows(driver) -> int:
    return len(driver.find_elements("css selector", "#sample-rows > tr"))


@pytest.mark.slow
def test_report_in_headless_chromium(browser, tmp_path, tiny_llava_adapter):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.support.ui import Select

    from modint.api import run_diagnosis
    from modint.diagnose.engine import DiagnoseConfig

    samples = load_mini("test", limit=6) + malicious_samples()[:1]
    run_diagnosis(tiny_llava_adapter, samples, tmp_path, DiagnoseConfig(n_boot=50),
                  run_info={"model": "tiny-random-llava", "benchmark": "mini", "split": "test"})
    records = rundir.read_records(tmp_path / "records.jsonl")
    html_path = tmp_path / "report.html"
    assert "http://" not in html_path.read_text()

    severe = _open(browser, html_path)
    assert severe == [], severe
    assert _visible_rows(browser) == min(50, len(records))
    # a filter: one condition
    Select(browser.find_element("id", "f-condition")).select_by_value("misleading_text")
    expected = sum(r["condition"] == "misleading_text" for r in records)
    assert expected == 3 and _visible_rows(browser) == expected
    assert browser.find_element("id", "sample-count").get_attribute("data-count") == str(expected)
    # the hostile sample is shown as text, and nothing ran
    seen = [e.text for e in browser.find_elements("css selector", "pre.seen")]
    assert any(SCRIPT in t for t in seen) and any(IMG in t for t in seen)
    assert any(IMG in e.text for e in browser.find_elements("css selector", "table.opts td.t"))
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert
    srcs = browser.execute_script("return Array.from(document.images).map(i => i.getAttribute('src'))")
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    assert browser.execute_script("return document.scripts.length") == 2
    # a checkbox filter composes with the condition filter
    browser.find_element("id", "f-flipped").click()
    flipped = sum(1 for r in records if r["condition"] == "misleading_text" and not r["error"]
                  and r["pred"] != next(x["pred"] for x in records if x["id"] == r["id"] and x["condition"] == "clean"))
    assert _visible_rows(browser) == flipped
    browser.find_element("id", "f-flipped").click()
    Select(browser.find_element("id", "f-condition")).select_by_value("")
    assert _visible_rows(browser) == len(records)
    assert [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"] == []
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(int(height) + 120, 16000))
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(ARTIFACTS / "report.png"))
    browser.set_window_size(1400, 1000)


@pytest.mark.slow
def test_browser_pages_through_many_records(browser, tmp_path):
    n_ids = 4000
    records = []
    for k in range(n_ids):
        i = f"s{k:05d}"
        records.append(rec(i, "clean", 0, 0, probs=[0.7, 0.1, 0.1, 0.1]))
        records.append(rec(i, "unrelated_text", 0, 0 if k % 4 else 1, probs=[0.5, 0.3, 0.1, 0.1]))
        records.append(rec(i, "misleading_text", 0, 0 if k % 5 else 2, probs=[0.3, 0.1, 0.5, 0.1], distractor=2))
    run = make_run(tmp_path / "big", records, n_boot=10)
    html_path = write_report(run)
    severe = _open(browser, html_path)
    assert severe == [], severe
    count = browser.find_element("id", "sample-count")
    assert count.text == f"{len(records)} of {len(records)} records · page 1 of {len(records) // 50}"
    assert _visible_rows(browser) == 50
    browser.find_element("id", "page-next").click()
    assert "page 2 of" in count.text and _visible_rows(browser) == 50
    browser.find_element("id", "f-followed").click()
    assert count.get_attribute("data-count") == str(n_ids // 5) and "page 1 of 16" in count.text
    elapsed = browser.execute_script(
        "const t = performance.now(); const c = document.getElementById('f-followed'); c.click(); c.click();"
        "return performance.now() - t;")
    assert elapsed < 2000  # two re-filters of 12,000 records and two page renders
