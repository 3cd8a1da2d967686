"""Failures that cannot hide: a condition whose records are all errors, or more errors than
--max-error-rate, makes `modint diagnose` / `modint attack` exit 1 with one line; the records
stay and a re-run resumes without redoing them."""

import json
import subprocess
import sys

import pytest

from modint.diagnose.failures import DEFAULT_MAX_ERROR_RATE, run_failure


def _rec(condition, error=None, family="text_heavy", sid="s"):
    return {"id": sid, "family": family, "condition": condition, "error": error}


def test_a_fully_failed_condition_is_named_first_whatever_the_rate():
    records = [_rec("clean", family="image_heavy"), _rec("clean", "boom", family="image_heavy"),
               _rec("pgd_embed@0.1", "RuntimeError: Tensor on device cpu\nis not on the expected device meta!")]
    message = run_failure(records, max_error_rate=1.0)
    assert message == ("every record of condition pgd_embed@0.1 (text_heavy) is an error (1 of 1); first: "
                       "RuntimeError: Tensor on device cpu is not on the expected device meta!")


def test_the_rate_is_judged_per_condition_against_the_threshold():
    healthy = [_rec("noise_image", sid=str(i)) for i in range(20)]
    one_in_ten = [_rec("black_image", "bad image" if i == 0 else None, sid=str(i)) for i in range(10)]
    assert run_failure(healthy + one_in_ten, max_error_rate=0.1) is None  # 10% is not above 10%
    assert run_failure(healthy + one_in_ten, max_error_rate=0.09) == (
        "1 of 10 records of condition black_image (text_heavy) are errors (10.0%, above the maximum error rate "
        "9.0%); first: bad image")
    assert run_failure(healthy) is None and DEFAULT_MAX_ERROR_RATE == 0.05
    with pytest.raises(ValueError, match="between 0 and 1"):
        run_failure(healthy, max_error_rate=1.5)


def _bench(tmp_path, text_heavy, image_heavy_good, image_heavy_bad):
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "red.png")
    rows = [{"id": f"t{i}", "family": "text_heavy", "question": f"What is {i} + 1?", "options": [str(i + 1), "0"],
             "answer": 0} for i in range(text_heavy)]
    rows += [{"id": f"g{i}", "family": "image_heavy", "question": "What colour is shown?", "options": ["red", "blue"],
              "answer": 0, "image": "red.png"} for i in range(image_heavy_good)]
    rows += [{"id": f"b{i}", "family": "image_heavy", "question": "What colour is shown?", "options": ["red", "blue"],
              "answer": 0, "image": "missing.png"} for i in range(image_heavy_bad)]
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "modint.cli", *map(str, args), "--model", "tiny-random-llava",
                           "--quiet"], capture_output=True, text=True)


def _one_line(result):
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.slow
def test_diagnose_exits_1_when_every_record_of_a_condition_failed_and_resume_keeps_the_records(tmp_path):
    bench, run = _bench(tmp_path, 2, 0, 2), tmp_path / "run"
    first = _cli("diagnose", "--benchmark", bench, "--conditions", "clean,noise_image", "--out", run)
    assert first.returncode == 1
    line = _one_line(first)
    assert line.startswith("modint: failed: every record of condition clean (image_heavy) is an error (2 of 2)")
    assert "image not found: missing.png" in line
    written = (run / "records.jsonl").read_text()
    assert len(written.splitlines()) == 4 and (run / "summary.json").exists()
    again = _cli("diagnose", "--benchmark", bench, "--conditions", "clean,noise_image", "--out", run)
    assert again.returncode == 1 and (run / "records.jsonl").read_text() == written  # resumed: nothing redone


@pytest.mark.slow
def test_an_error_rate_above_the_threshold_fails_and_a_higher_threshold_accepts_the_same_records(tmp_path):
    bench, run = _bench(tmp_path, 1, 3, 1), tmp_path / "run"
    first = _cli("diagnose", "--benchmark", bench, "--conditions", "clean", "--out", run)
    assert first.returncode == 1
    assert "1 of 4 records of condition clean (image_heavy) are errors (25.0%, above the maximum error rate 5.0%)" \
        in _one_line(first)
    written = (run / "records.jsonl").read_text()
    accepted = _cli("diagnose", "--benchmark", bench, "--conditions", "clean", "--out", run, "--max-error-rate", 0.25)
    assert accepted.returncode == 0, accepted.stderr
    assert (run / "records.jsonl").read_text() == written


@pytest.mark.slow
def test_attack_exits_1_too(tmp_path):
    bench = _bench(tmp_path, 1, 0, 1)
    result = _cli("attack", "--benchmark", bench, "--space", "embed", "--embed-eps", "0", "--steps", "1",
                  "--out", tmp_path / "run")
    assert result.returncode == 1
    assert "every record of condition clean (image_heavy) is an error" in _one_line(result)
