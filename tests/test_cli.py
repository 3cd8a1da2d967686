"""The command line: help, user mistakes as one line on stderr with exit code 2, listings."""

import os
import subprocess
import sys

import pytest

MODINT = [sys.executable, "-m", "modint.cli"]


def run(*args):
    return subprocess.run(MODINT + list(args), capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",  # the checkout's code when it is on the path
                               **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}})


@pytest.mark.parametrize("args, message", [
    (["diagnose", "--conditions", "clean,blurry", "--out", "x"], "unknown condition 'blurry'"),
    (["diagnose", "--benchmark", "nope", "--out", "x"], "unknown benchmark 'nope'"),
    (["diagnose", "--model", "/no/such/dir", "--out", "x"], "no such directory"),
    (["diagnose", "--scoring", "vibes", "--out", "x"], "unknown scoring"),
    (["diagnose", "--split", "dev", "--out", "x"], "no split 'dev'"),
    (["diagnose", "--conditions", "pgd_pixel@lots", "--out", "x"], "is not a number"),
    (["diagnose", "--pgd-step-rule", "adam", "--out", "x"], "unknown step rule"),
    (["attack", "--space", "audio", "--out", "x"], "unknown attack space 'audio'"),
    (["attack", "--pixel-eps", "1,two", "--out", "x"], "--pixel-eps must be comma-separated numbers"),
    (["attack", "--embed-text", "header", "--out", "x"], "unknown --embed-text 'header'"),
])
def test_user_mistakes_exit_2_with_one_line(args, message, tmp_path):
    # --out is claimed before the mistake is found: never in the checkout
    result = run(*[str(tmp_path / a) if a == "x" else a for a in args])
    assert result.returncode == 2
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_help_and_listings():
    help_text = run("diagnose", "--help").stdout
    for flag in ("--model", "--benchmark", "--split", "--conditions", "--limit", "--batch-size", "--seed", "--out",
                 "--device", "--dtype", "--scoring", "--strict"):
        assert flag in help_text
    listed = run("data", "conditions").stdout
    assert "misleading_text" in listed and "injected_instruction" in listed
    assert "[opt-in; out of distribution]" in " ".join(listed.split())
    assert "mini" in run("data", "list").stdout
    assert "llava" in run("models").stdout


def test_preview_writes_pngs(tmp_path):
    result = run("data", "preview", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("*.png"))) == 3


@pytest.mark.slow
def test_attack_writes_robustness_curves(tmp_path):
    import json

    result = run("attack", "--space", "pixel", "--pixel-eps", "0,8", "--steps", "2", "--limit", "3",
                 "--save-images", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    (curve,) = summary["robustness"]
    assert (curve["family"], curve["space"], curve["eps_unit"]) == ("text_heavy", "pixel", "1/255")
    assert [p["eps"] for p in curve["points"]] == [0, 8] and all(p["n"] == 3 for p in curve["points"])
    assert len(list((tmp_path / "adversarial").glob("*.png"))) == 6
    assert "attack success" in result.stdout
    config = json.loads((tmp_path / "manifest.json").read_text())["config"]
    assert (config["batch_unit"], config["embed_text"]) == ("samples", "after_image")  # --batch-size counts samples


def test_usage_errors_turn_bad_names_into_one_line_and_exit_2(capsys):
    import typer

    from modint.cli.common import usage_errors
    from modint.predictions.readers import PredictionError

    for raised, also in [(KeyError("unknown benchmark 'nope'"), ()), (ValueError("no split 'dev'"), ()),
                         (PredictionError("bad.tsv: no prediction column"), (PredictionError,))]:
        with pytest.raises(typer.Exit) as exit_info, usage_errors(*also):
            raise raised
        assert exit_info.value.exit_code == 2
        assert capsys.readouterr().err == f"modint: error: {raised.args[0]}\n"  # a KeyError's quotes dropped
    with pytest.raises(OSError), usage_errors():
        raise OSError("disk full")
