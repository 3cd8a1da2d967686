"""Device discipline, checked on a CPU: inside ``foreign_default_device()`` a tensor that modint
makes without naming a device lands on ``meta`` while the model stays on the CPU, so any op that
mixes the two raises, as it would on a GPU (see ``modint.testing``). Diagnosis with both attack
conditions and a training run of the default recipe, per family."""

import pytest
import torch

from modint.attacks import PGDConfig, pgd
from modint.data.mini import load_mini
from modint.diagnose.engine import DiagnoseConfig, run_diagnosis
from modint.diagnose.rundir import read_records
from modint.mitigate.train import TrainConfig, train
from modint.models.adapter import VLMAdapter
from modint.models.tiny import build_tiny
from modint.testing import foreign_default_device

FAMILIES = ["llava", "qwen2_vl", "instructblip", "idefics3"]


def _adapter(family):
    model, processor = build_tiny(family, seed=0)
    return VLMAdapter(model.float().eval(), processor)


def test_the_check_moves_only_modint_tensors_made_without_a_device():
    code = "def bare():\n    return torch.zeros(2)\ndef placed():\n    return torch.zeros(2, device='cpu')\n"
    module = {"__name__": "modint.somewhere", "torch": torch}
    exec(code, module)
    with foreign_default_device():
        assert module["bare"]().device.type == "meta"
        assert module["placed"]().device.type == "cpu"
        assert torch.zeros(2).device.type == "cpu"  # made outside modint (here: a test)
        with pytest.raises(RuntimeError, match="expected device"):
            module["bare"]() + torch.ones(2)  # what a GPU run would meet


def test_pgd_makes_its_tensors_where_its_inputs_live():
    model_side = torch.tensor([1.0, -2.0, 3.0])
    with foreign_default_device():
        best = pgd(lambda delta: (delta * model_side).sum(-1), (1, 3), torch.ones(1), torch.ones(1, 3),
                   PGDConfig(eps=1, steps=1, restarts=2))
    assert best.device.type == "cpu"
    torch.testing.assert_close(best, torch.tensor([[1.0, -1.0, 1.0]]))


@pytest.mark.parametrize("family", FAMILIES)
def test_diagnosis_with_both_attacks_keeps_to_the_model_device(family, tmp_path):
    adapter = _adapter(family)
    samples = load_mini("test", limit=3)
    config = DiagnoseConfig(conditions=["clean", "noise_image", "pgd_pixel@4", "pgd_embed@0.1"], batch_size=8,
                            n_boot=20, strict=True, attack={"steps": 2, "step_rule": "sign", "restarts": 2})
    with foreign_default_device():
        run_diagnosis(adapter, samples, tmp_path, config)
    records = read_records(tmp_path / "records.jsonl")
    assert {r["condition"] for r in records} >= {"pgd_pixel@4", "pgd_embed@0.1"}
    assert all(r["error"] is None for r in records)


@pytest.mark.parametrize("family", FAMILIES)
def test_training_the_default_recipe_keeps_to_the_model_device(family, tmp_path):
    adapter = _adapter(family)
    samples = load_mini("train", limit=12, sizes={"train": 20})
    cfg = TrainConfig(recipe="aug_kl_pgd", max_steps=2, lr=1e-3, quotas={"image_heavy": 1, "text_heavy": 1, "vqa": 1})
    with foreign_default_device():
        train(adapter, samples, tmp_path, cfg)
    assert (tmp_path / "model" / "config.json").exists()
