"""`--device-map`: a model dispatched by accelerate over devices (here: part of it offloaded to
disk, as for a model larger than memory) scores exactly like a plain load, keeps pixel gradients
for attacks, and runs through the CLI; `auto` on a one-device machine loads as usual."""

import json
import subprocess
import sys

import numpy as np
import pytest

from modint.attacks import PGDConfig
from modint.attacks.vlm import attack
from modint.models.loading import load_adapter
from modint.data.sample import Sample
from modint.models.tiny import save_tiny

from conftest import make_image


OFFLOADED = json.dumps({"model.vision_tower": "cpu", "model.multi_modal_projector": "cpu",
                        "model.language_model": "disk", "lm_head": "cpu"})


def test_an_offloaded_model_scores_and_attacks_like_a_plain_load(tmp_path, mixed_samples):
    path = save_tiny("llava", tmp_path / "m")
    plain = load_adapter(str(path), dtype="float32")
    mapped = load_adapter(str(path), dtype="float32", device_map=OFFLOADED)
    assert mapped.model.hf_device_map["model.language_model"] == "disk"
    for a, b in zip(plain.score(mixed_samples), mapped.score(mixed_samples)):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
    text_heavy = [Sample("t", "text_heavy", "What is 2 + 2?", ("4", "5", "6"), 0, make_image(3, (48, 48)))]
    moved = attack(mapped, text_heavy, "pixel", PGDConfig(eps=8, steps=2))
    assert all(0 < o.perturbation <= 8 for o in moved)  # the gradient reached the pixels through the offload hooks


@pytest.mark.slow
@pytest.mark.parametrize("device_map", ["auto", OFFLOADED])
def test_cli_diagnose_with_a_device_map(tmp_path, device_map):
    path = save_tiny("llava", tmp_path / "m")
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "modint.cli", "diagnose", "--model", str(path), "--device-map",
                             device_map, "--limit", "6", "--out", str(tmp_path / "run"), "--quiet"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert all(c["errors"] == 0 for c in summary["conditions"]) and sum(c["n"] for c in summary["conditions"]) > 0


@pytest.mark.parametrize("device_map, message", [("everywhere", "use auto, balanced"), ("{oops", "not valid JSON"),
                                                 ("[]", "must be a non-empty object")])
def test_a_bad_device_map_is_one_clear_line(tmp_path, device_map, message):
    path = save_tiny("llava", tmp_path / "m")
    result = subprocess.run([sys.executable, "-m", "modint.cli", "diagnose", "--model", str(path), "--device-map",
                             device_map, "--limit", "2", "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
