"""Misleading facts written by a model (--facts-model): shape, cache, only where data has none."""

import json
import subprocess
import sys

import pytest

from modint.data.facts_lm import add_generated_facts, adapter_writer, misleading_from
from modint.data.sample import Sample


def _samples():
    return [Sample("a", "image_heavy", "What is shown?", ("cat", "dog", "owl"), 0, None),
            Sample("b", "image_heavy", "What is shown?", ("dog", "fox"), 1, None, meta={"facts": {"dog": "given"}}),
            Sample("c", "text_heavy", "2 + 2?", ("4", "5"), 0, None)]


def test_generated_facts_are_cached_and_only_fill_gaps(tmp_path):
    calls = []

    def write(options):
        calls.append(list(options))
        return [f"{o.capitalize()}s are animals. They live outdoors. Extra sentence." for o in options]

    cache = tmp_path / "facts.json"
    out = add_generated_facts(_samples(), write, cache)
    assert calls == [["cat", "dog", "owl"]]  # sample b has facts, c is not image-heavy
    assert out[0].meta["facts"]["owl"] == "The picture seems to describe an owl. Owls are animals. They live outdoors."
    assert out[1].meta["facts"] == {"dog": "given"} and "facts" not in out[2].meta
    assert json.loads(cache.read_text())["cat"] == misleading_from("cat", "Cats are animals. They live outdoors.")
    again = add_generated_facts(_samples(), write, cache)
    assert len(calls) == 1 and again[0].meta == out[0].meta  # all from the cache


def test_a_tiny_model_writes_facts(tmp_path, tiny_llava_adapter):
    out = add_generated_facts(_samples()[:1], adapter_writer(tiny_llava_adapter, max_new_tokens=8), tmp_path / "f.json")
    facts = out[0].meta["facts"]
    assert set(facts) == {"cat", "dog", "owl"}
    assert all(text.startswith("The picture seems to describe") for text in facts.values())


@pytest.mark.slow
def test_diagnose_with_a_facts_model(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    data = tmp_path / "data.jsonl"
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 0, 0)).save(tmp_path / "red.png")
    data.write_text(json.dumps({"id": "r1", "family": "image_heavy", "question": "Which colour?",
                                "options": ["red", "blue", "green"], "answer": 0, "image": "red.png"}) + "\n")
    r = subprocess.run([sys.executable, "-m", "modint.cli", "diagnose", "--benchmark", str(data), "--conditions",
                        "clean,misleading_text", "--facts-model", "tiny-random-llava", "--out", str(tmp_path / "run"),
                        "--quiet"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    cache = next(tmp_path.glob(".modint-facts.*.json"))
    assert set(json.loads(cache.read_text())) == {"red", "blue", "green"}
