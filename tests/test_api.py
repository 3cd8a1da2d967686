"""The public API: modint.load_adapter, load_benchmark, run_diagnosis, train, attack."""

import inspect

import pytest

import modint

API = ("attack", "load_adapter", "load_benchmark", "run_diagnosis", "train")


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
