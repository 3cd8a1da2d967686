"""modint score (predictions made elsewhere) and modint export (lmms-eval, VLMEvalKit files)."""

import csv
import hashlib
import json
import zlib
from pathlib import Path

import pytest

from modint.data.registry import load_benchmark
from modint.diagnose.engine import DiagnoseConfig, run_diagnosis
from modint.export import export_run
from modint.models.prompts import parse_answer
from modint.predictions.readers import PredictionError, read_predictions
from modint.predictions.score import score_predictions
from modint.predictions.readers import read_all

LIMIT = 9
CONDITIONS = ["clean", "misleading_text", "noise_image", "no_image"]


class ScriptedAdapter:
    """Answers like a model that generates text: a letter, an option's text, the distractor a
    misleading text names, or nothing parseable, as a fixed function of the input."""

    name = "scripted"

    def generate(self, samples, max_new_tokens=10, repetition_penalty=1.2):
        texts = []
        for s in samples:
            if s.meta.get("distractor") is not None:
                texts.append(f"It is {s.options[s.meta['distractor']]}")
                continue
            h = zlib.crc32(f"{s.id}|{s.context}|{s.image is None}".encode())
            kind = h % 4
            texts.append([f"{s.letters[s.answer]}", "I am not sure", f"Answer: {s.letters[h % len(s.options)]}",
                          s.options[(s.answer + 1) % len(s.options)]][kind])
        return texts

    def parse(self, text, sample):
        return parse_answer(text, sample.options)


@pytest.fixture(scope="module")
def generate_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    samples = load_benchmark("mini", split="test", limit=LIMIT)
    config = DiagnoseConfig(conditions=CONDITIONS, scoring="generate", n_boot=200)
    run_diagnosis(ScriptedAdapter(), samples, out, config,
                  run_info={"model": "scripted", "benchmark": "mini", "split": "test", "limit": LIMIT})
    return out, samples


def _records(run: Path):
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def _figures(summary):
    return summary["conditions"], summary["families"]


def _score(tmp_path, samples, specs, **kw):
    preds = read_all([str(s) for s in specs], **kw)
    result = score_predictions(preds, samples, tmp_path / "scored", n_boot=200,
                               run_info={"model": "scripted", "benchmark": "mini", "split": "test", "limit": LIMIT})
    return result


def _by_condition(run):
    out = {}
    for r in _records(run):
        out.setdefault(r["condition"], []).append(r)
    return out


def test_the_scripted_run_has_unparsed_answers_and_followed_distractors(generate_run):
    summary = json.loads((generate_run[0] / "summary.json").read_text())
    assert sum(row["unparsed"] for row in summary["conditions"]) > 0
    misleading = next(r for r in summary["conditions"] if r["condition"] == "misleading_text")
    assert misleading["followed_distractor_rate"] == 1.0


def test_generic_jsonl_scores_like_generate_mode(generate_run, tmp_path):
    run, samples = generate_run
    lines = [json.dumps({"id": r["id"], "condition": r["condition"], "prediction": r["response"]})
             for r in _records(run)]
    (tmp_path / "preds.jsonl").write_text("\n".join(lines) + "\n")
    result = _score(tmp_path, samples, [tmp_path / "preds.jsonl"])
    assert _figures(result.summary) == _figures(json.loads((run / "summary.json").read_text()))
    assert {(r["id"], r["condition"], r["pred"]) for r in _records(tmp_path / "scored")} == \
           {(r["id"], r["condition"], r["pred"]) for r in _records(run)}
    assert result.unknown == [] and result.missing == {}


def test_published_letters_and_vlmevalkit_tsv_score_like_generate_mode(generate_run, tmp_path):
    run, samples = generate_run
    specs = []
    for n, (condition, recs) in enumerate(_by_condition(run).items()):
        if n % 2:  # the paper's {id: letter} JSONL, two pairs on a line for good measure
            path = tmp_path / f"published_{condition}.jsonl"
            pairs = [{r["id"]: r["response"]} for r in recs]
            path.write_text("".join(json.dumps({**a, **b}) + "\n" for a, b in zip(pairs[::2], pairs[1::2] + [{}])))
            specs.append(f"{path}@{condition}")
        else:  # a VLMEvalKit prediction TSV, quoted as its dump() writes it
            path = tmp_path / f"model_mini@{condition}.tsv"
            with open(path, "w", newline="") as f:
                w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL)
                w.writerow(["index", "question", "A", "B", "answer", "prediction"])
                w.writerows([[r["id"], "q", "a", "b", "A", r["response"]] for r in recs])
            specs.append(path)  # the condition comes from the task name in the file name
    result = _score(tmp_path, samples, specs)
    assert _figures(result.summary) == _figures(json.loads((run / "summary.json").read_text()))


def test_exports_read_back_by_score_give_the_same_summary(generate_run, tmp_path):
    run, samples = generate_run
    expected = _figures(json.loads((run / "summary.json").read_text()))
    lmms = export_run(run, "lmms-eval", tmp_path / "lmms")
    vlm = export_run(run, "vlmevalkit", tmp_path / "vlm")
    lmms_samples = [p for p in lmms if "_samples_" in p.name]
    assert _figures(_score(tmp_path / "a", samples, lmms_samples).summary) == expected
    tsvs = [p for p in vlm if p.suffix == ".tsv"]
    assert _figures(_score(tmp_path / "b", samples, tsvs).summary) == expected
    xlsxs = [p for p in vlm if p.suffix == ".xlsx"]
    if xlsxs:
        assert _figures(_score(tmp_path / "c", samples, xlsxs).summary) == expected


def test_lmms_eval_export_has_the_keys_lmms_eval_writes(generate_run, tmp_path):
    """Keys and types as lmms-eval writes them with --log_samples: lmms_eval/evaluator.py builds
    each sample (doc_id, target, resps, filtered_resps, token_counts, doc_hash, metrics) and the
    results dict; lmms_eval/loggers/evaluation_tracker.py (save_results_samples) adds input, drops
    resps equal to filtered_resps, doc and arguments, and writes target as text; its
    save_results_aggregated adds task_hashes and the general config."""
    run, samples = generate_run
    written = export_run(run, "lmms-eval", tmp_path)
    results_file = next(p for p in written if p.name.endswith("_results.json"))
    assert results_file.parent.name == "scripted"
    results = json.loads(results_file.read_text())
    for key in ("results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples",
                "task_hashes", "model_name", "model_name_sanitized", "start_time", "end_time"):
        assert key in results, key
    tasks = set(results["results"])
    assert tasks == {f"mini@{c}" for c in CONDITIONS}
    records = _by_condition(run)
    for task in tasks:
        condition = task.split("@")[1]
        entry = results["results"][task]
        assert entry["alias"] == task
        accuracy = sum(r["correct"] for r in records[condition]) / len(records[condition])
        assert entry["exact_match,none"] == pytest.approx(accuracy)
        assert isinstance(entry["exact_match_stderr,none"], float)
        path = results_file.parent / f"{results_file.name.split('_results')[0]}_samples_{task}.jsonl"
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        assert len(lines) == len(records[condition])
        hashes = "".join(f"sample_{i}" + line["doc_hash"] for i, line in enumerate(lines))
        assert results["task_hashes"][task] == hashlib.sha256(hashes.encode()).hexdigest()
        for line in lines:
            assert set(line) == {"doc_id", "target", "filtered_resps", "token_counts", "doc_hash", "exact_match",
                                 "input"}
            assert isinstance(line["doc_id"], int) and isinstance(line["target"], str)
            assert isinstance(line["filtered_resps"], str) and len(line["doc_hash"]) == 64
            sample = samples[line["doc_id"]]
            assert line["target"] == sample.letters[sample.answer]
            assert line["exact_match"] in (0.0, 1.0)


def test_vlmevalkit_export_reads_back_with_pandas_as_vlmevalkit_loads_it(generate_run, tmp_path):
    pd = pytest.importorskip("pandas")  # vlmeval/smp/file.py load(): pd.read_csv(f, sep="\t"), pd.read_excel
    run, samples = generate_run
    written = export_run(run, "vlmevalkit", tmp_path)
    frame = pd.read_csv(next(p for p in written if p.name.endswith("@clean.tsv")), sep="\t")
    assert list(frame.columns[:3]) == ["index", "question", "hint"] and frame.columns[-1] == "prediction"
    assert "image" not in frame.columns
    clean = {r["id"]: r for r in _by_condition(run)["clean"]}
    assert set(frame["index"]) == set(clean)
    for _, row in frame.iterrows():
        sample = next(s for s in samples if s.id == row["index"])
        assert row["answer"] == sample.letters[sample.answer]
        assert row["A"] == sample.options[0]
        assert str(row["prediction"]) == clean[row["index"]]["response"] or pd.isna(row["prediction"])
    if any(p.suffix == ".xlsx" for p in written):
        excel = pd.read_excel(next(p for p in written if p.name.endswith("@clean.xlsx")))
        assert list(excel.columns) == list(frame.columns) and len(excel) == len(frame)


def test_spreadsheet_cells_never_start_a_formula():
    from modint.report.safe import spreadsheet_cell as _spreadsheet_cell  # the one rule every export uses

    assert _spreadsheet_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    for text in ("+1+cmd", "-x", "@SUM(A1)", "\tx", "\rx"):
        assert _spreadsheet_cell(text) == "'" + text
    for value in ("-3", "+2.5", "-1e-3", 7, -0.5, "plain", ""):
        assert _spreadsheet_cell(value) == value


def test_a_file_without_a_condition_is_one_clear_error(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"img-1": "B"}\n')
    with pytest.raises(PredictionError, match=r"answers.jsonl line 1: no condition; name it as .*@CONDITION"):
        read_predictions(str(path))
    assert read_predictions(str(path), default_condition="clean")[0].condition == "clean"
    assert read_predictions(f"{path}@no_image")[0].condition == "no_image"


def test_unknown_ids_and_missing_answers_are_counted(generate_run, tmp_path):
    run, samples = generate_run
    recs = _by_condition(run)["clean"]
    lines = [{"id": r["id"], "prediction": r["response"]} for r in recs[:-1]] + [{"id": "nope", "prediction": "A"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = _score(tmp_path, samples, [f"{tmp_path / 'p.jsonl'}@clean"])
    assert result.unknown == ["p.jsonl line " + str(len(lines))]
    assert result.missing == {"clean": 1}  # clean applies to image-heavy and VQA samples only


@pytest.mark.slow
def test_score_and_export_commands(generate_run, tmp_path):
    import os
    import subprocess
    import sys

    run, _ = generate_run
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "modint.cli"]
    r = subprocess.run(cli + ["export", str(run), "--to", "lmms-eval", str(tmp_path / "lmms")], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    files = sorted(str(p) for p in (tmp_path / "lmms").rglob("*_samples_*.jsonl"))
    r = subprocess.run(cli + ["score", *files, "--benchmark", "mini", "--limit", str(LIMIT), "--model", "scripted",
                              "--out", str(tmp_path / "scored")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "misleading_text" in r.stdout and (tmp_path / "scored" / "report.html").is_file()
    scored = json.loads((tmp_path / "scored" / "summary.json").read_text())
    assert _figures(scored) == _figures(json.loads((run / "summary.json").read_text()))
    r = subprocess.run(cli + ["export", str(run), "--to", "excel", str(tmp_path / "x")], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 2 and r.stderr.strip() == ("modint: error: unknown export format 'excel' "
                                                      "(use lmms-eval, vlmevalkit)"), r.stderr


def test_conditions_with_an_eps_survive_file_names_and_specs(tmp_path):
    from modint.predictions.readers import condition_from_name, split_spec

    assert condition_from_name(Path("20261202_000000_samples_mini@pgd_pixel@8.jsonl")) == "pgd_pixel@8"
    assert condition_from_name(Path("demo_mini@pgd_embed@0.1.tsv")) == "pgd_embed@0.1"
    assert condition_from_name(Path("answers.jsonl")) is None
    file = tmp_path / "answers.jsonl"
    file.write_text('{"a": "B"}\n')
    assert split_spec(f"{file}@pgd_pixel@8") == (file, "pgd_pixel@8")
    assert split_spec(str(file)) == (file, None)
