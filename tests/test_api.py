"""The public API: modint.load_adapter, load_benchmark, run_diagnosis, train, attack."""

import inspect
import json

import pytest

import modint

API = ("attack", "load_adapter", "load_benchmark", "run_diagnosis", "train", "train_and_diagnose")


def test_the_api_is_documented_with_arguments_and_returns():
    assert set(API) <= set(modint.__all__)
    for name in API:
        fn = getattr(modint, name)
        doc = inspect.getdoc(fn)
        assert "Args:" in doc and "Returns:" in doc, name
        for param in inspect.signature(fn).parameters:  # every argument is described
            assert f"{param.lstrip('*')}:" in doc, (name, param)
    with pytest.raises(AttributeError):
        modint.no_such_function


@pytest.mark.parametrize("name, inner", [("load_adapter", "modint.models.loading"),
                                         ("load_benchmark", "modint.data.registry"),
                                         ("run_diagnosis", "modint.diagnose.engine"),
                                         ("train", "modint.mitigate.train"),
                                         ("attack", "modint.attacks.vlm")])
def test_api_functions_take_the_arguments_of_the_function_they_call(name, inner):
    import importlib

    outer = inspect.signature(getattr(modint, name)).parameters
    wrapped = inspect.signature(getattr(importlib.import_module(inner), name)).parameters
    for param in wrapped.values():
        assert param.name in outer, (name, param.name)
        if param.default is not inspect.Parameter.empty and name != "attack":
            assert outer[param.name].default == param.default, (name, param.name)


def test_run_diagnosis_writes_the_report_and_the_engine_does_not(tmp_path, tiny_llava_adapter):
    from modint.diagnose.engine import DiagnoseConfig, run_diagnosis

    samples = modint.load_benchmark("mini", split="test", limit=3)
    config = DiagnoseConfig(conditions=["clean", "noise_image"], n_boot=20)
    summary = modint.run_diagnosis(tiny_llava_adapter, samples, tmp_path / "api", config)
    assert summary["conditions"] and (tmp_path / "api" / "report.html").exists()
    again = run_diagnosis(tiny_llava_adapter, samples, tmp_path / "engine", config)
    assert again == summary and not (tmp_path / "engine" / "report.html").exists()


def test_attack_decodes_the_images_and_attacks(tiny_llava_adapter):
    from modint.attacks import PGDConfig

    samples = [s for s in modint.load_benchmark("mini", split="test", limit=6) if s.family == "image_heavy"][:1]
    outcomes = modint.attack(tiny_llava_adapter, samples, "embed", PGDConfig(eps=0.1, steps=1))
    assert len(outcomes) == 1 and abs(outcomes[0].probs.sum() - 1) < 1e-6
    assert 0 < outcomes[0].perturbation <= 0.1 + 1e-6


def test_train_and_diagnose_diagnoses_the_trained_weights_at_the_eval_seed(tmp_path):
    from modint.mitigate.train import TrainConfig

    adapter = modint.load_adapter("tiny-random-llava")  # trained in place: not the session's shared one
    train_samples = modint.load_benchmark("mini", split="train", limit=12)
    val, test = (modint.load_benchmark("mini", split=split, limit=3) for split in ("val", "test"))
    seen = []
    cfg = TrainConfig(recipe="sft", max_steps=1, seed=3, quotas={"image_heavy": 1, "text_heavy": 1, "vqa": 1})
    model_dir, summaries = modint.train_and_diagnose(
        adapter, train_samples, tmp_path, cfg,
        [("diagnosis-val", val, {"split": "val"}), ("diagnosis", test, {"split": "test"})], eval_seed=5,
        diagnosis_progress=lambda folder, done, total: seen.append((folder, done, total)))
    assert model_dir == tmp_path / "model" and list(summaries) == ["diagnosis-val", "diagnosis"]
    for folder, split in (("diagnosis-val", "val"), ("diagnosis", "test")):
        manifest = json.loads((tmp_path / folder / "manifest.json").read_text())
        assert manifest["config"]["seed"] == 5 and summaries[folder]["split"] == split  # not the training seed 3
        assert (tmp_path / folder / "report.html").exists()
        done, total = max((d, t) for f, d, t in seen if f == folder)
        assert done == total == sum(1 for _ in (tmp_path / folder / "records.jsonl").open())
    assert json.loads((tmp_path / "train_config.json").read_text())["seed"] == 3
