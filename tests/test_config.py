"""Settings from files: training presets as YAML (configs/train/), --set overrides typed by the
dataclass fields, and the demo model's recipe file (configs/demo_model.yaml)."""

from dataclasses import replace
from pathlib import Path

import pytest

from modint.mitigate.config import from_sources, preset_dir, presets
from modint.mitigate.train import RECIPES, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_config_folder_is_the_packaged_presets():
    assert sorted(p.name for p in (ROOT / "configs" / "train").glob("*.yaml")) == \
        sorted(p.name for p in preset_dir().glob("*.yaml")) != []
    assert (ROOT / "configs" / "train").resolve() == preset_dir().resolve()


def test_every_preset_is_its_yaml_file_and_builds():
    import yaml

    files = sorted(preset_dir().glob("*.yaml"))
    assert set(presets()) == {p.stem for p in files}
    for path in files:
        assert presets()[path.stem] == yaml.safe_load(path.read_text())
        cfg = from_sources(path.stem)
        assert cfg != TrainConfig()  # a preset changes something
        for key, value in presets()[path.stem].items():
            assert getattr(cfg, key) == value


def test_train_with_the_demo_config_file_equals_the_default():
    """`modint train --config configs/train/demo.yaml` (any model) builds the demo default's config."""
    from modint.cli.training import _train_config

    default = _train_config("demo", None, [], {}, seed=0)
    assert default == from_sources("demo", options={"seed": 0})
    assert _train_config("demo", ROOT / "configs/train/demo.yaml", [], {}, seed=0) == default
    assert _train_config("some/model", ROOT / "configs/train/demo.yaml", [], {}, seed=0) == default
    assert _train_config("some/model", None, [], {}, seed=0) == TrainConfig()


def test_sources_in_increasing_priority(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 1.0e-4\nmax_steps: 50\nlora_r: 8\n")
    cfg = from_sources("demo", tmp_path / "c.yaml", ["max_steps=60", "lora_r=4"], {"lora_r": 2, "seed": None})
    assert (cfg.lr, cfg.max_steps, cfg.lora_r, cfg.seed) == (1e-4, 60, 2, 0)
    assert cfg.switched_views == 2  # from the preset
    assert cfg.grad_clip == 1.0  # the default


def test_settings_take_their_field_types(tmp_path):
    """YAML reads 1e-3 as a string; --set and config files still mean the number."""
    (tmp_path / "c.yaml").write_text("lr: 3e-4\nmax_steps: '20'\n")
    cfg = from_sources(None, tmp_path / "c.yaml", ["preserve_weight=1", "pgd_eps=5e-2", "pgd_eps_image=null",
                                                   "lora_targets=[q_proj]", "quotas={vqa: '8'}"])
    assert (cfg.lr, cfg.max_steps, cfg.preserve_weight, cfg.pgd_eps) == (3e-4, 20, 1.0, 0.05)
    assert isinstance(cfg.preserve_weight, float) and isinstance(cfg.max_steps, int)
    assert cfg.pgd_eps_image is None and cfg.lora_targets == ["q_proj"] and cfg.quotas == {"vqa": 8}


@pytest.mark.parametrize("overrides, message", [
    (["lr=fast"], "--set: training setting lr: expected a number, got 'fast'"),
    (["max_steps=2.5"], "--set: training setting max_steps: expected an integer, got 2.5"),
    (["shift_logits=1"], "--set: training setting shift_logits: expected true or false, got 1"),
    (["quotas={vqa: many}"], "--set: training setting quotas.vqa: expected an integer, got 'many'"),
    (["lr=1e-4", "lrr=1"], "--set: unknown training setting(s): lrr (known: "),
    (["lr"], "--set expects KEY=VALUE, got 'lr'"),
    (["recipe=magic"], "unknown recipe 'magic'"),
])
def test_bad_settings_name_the_source_and_the_setting(overrides, message):
    with pytest.raises(ValueError) as info:
        from_sources(None, None, overrides)
    assert message in str(info.value)


def test_bad_files_and_presets_are_named(tmp_path):
    (tmp_path / "list.yaml").write_text("- lr\n")
    with pytest.raises(ValueError, match="list.yaml: expected a mapping of settings"):
        from_sources(None, tmp_path / "list.yaml")
    (tmp_path / "typo.yaml").write_text("lr: 1.0e-4\nwarmup: 3\n")
    with pytest.raises(ValueError, match=r"typo.yaml: unknown training setting\(s\): warmup"):
        from_sources(None, tmp_path / "typo.yaml")
    with pytest.raises(ValueError, match="unknown training preset 'huge'; use one of demo"):
        from_sources("huge")


def test_recipes_name_their_terms():
    assert RECIPES["vqa_only"].families == ("vqa",) and not RECIPES["vqa_only"].views
    assert [name for name, r in RECIPES.items() if r.adversarial] == ["aug_kl_pgd"]
    assert [name for name, r in RECIPES.items() if r.views] == ["aug", "aug_kl", "aug_kl_pgd"]
    with pytest.raises(AttributeError):
        RECIPES["sft"].views = True  # frozen


def test_demo_model_yaml_is_the_recipe_defaults():
    from modint.zoo.demo import DemoConfig, load_demo_config

    assert load_demo_config(ROOT / "configs" / "demo_model.yaml") == DemoConfig()
    tuned = load_demo_config(ROOT / "configs" / "demo_model.yaml", ["concept_layer=3", "lr=2e-3", "side_flags=false"])
    assert tuned == replace(DemoConfig(), concept_layer=3, lr=2e-3, side_flags=False)
    with pytest.raises(ValueError, match="--set: demo setting batch_size: expected an integer"):
        load_demo_config(None, ["batch_size=big"])
