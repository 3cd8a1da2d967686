"""Training settings: the learning-rate schedule by hand, LoRA's default targets per language
model, and target lists that match nothing."""

import math
import re

import pytest
import torch

from modint.mitigate.train import TrainConfig, lr_factor, prepare_trainable
from modint.mitigate.trainable import _lora_target_pattern
from modint.models.adapter import VLMAdapter
from modint.models.tiny import build_tiny


def test_warm_up_then_a_cosine_counted_from_the_end_of_the_warm_up():
    # 10 steps, 4 of warm-up: 1/4 .. 4/4, then cos over the 6 steps from step 4 to step 10
    got = [lr_factor(s, 4, 10) for s in range(10)]
    cosine = [0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(6)]
    assert got == pytest.approx([0.25, 0.5, 0.75, 1.0] + cosine)
    assert got[4] == 1.0 and got[7] == pytest.approx(0.5)  # half-way through the cosine: half the peak
    assert lr_factor(10, 4, 10) == pytest.approx(0.0)


def test_the_optimizer_follows_the_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=2.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, 2, 6))
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    half = 2 ** 0.5 / 2  # cos(pi/4): the cosine runs over steps 2..5 in quarters of pi
    assert seen == pytest.approx([1.0, 2.0, 2.0, 1 + half, 1.0, 1 - half])


def _targeted(family, targets):
    model, _ = build_tiny(family, seed=0)
    pattern = _lora_target_pattern(model, targets)
    return model, [n for n, _ in model.named_modules() if re.fullmatch(pattern, n)]


@pytest.mark.parametrize("family, leaves", [
    ("blip-2", {"q_proj", "k_proj", "v_proj", "out_proj"}),  # OPT
    ("instructblip-t5", {"q", "k", "v", "o"}),  # Flan-T5
    ("llava", {"q_proj", "k_proj", "v_proj", "o_proj"}),  # Llama
    ("idefics3", {"q_proj", "k_proj", "v_proj", "o_proj"}),  # Llama, called text_model
])
def test_lora_defaults_are_the_language_model_attention(family, leaves):
    from modint.models.specs import lora_targets_for

    model, _ = build_tiny(family, seed=0)
    targets = lora_targets_for(model.config)
    assert set(targets) == leaves
    _, hit = _targeted(family, targets)
    assert {n.split(".")[-1] for n in hit} == leaves
    assert not any("vision" in n or "qformer" in n.lower() for n in hit)  # the vision side stays frozen


def test_lora_trains_a_t5_language_model_with_its_default_targets():
    model, processor = build_tiny("blip-2-t5", seed=0)
    adapter = VLMAdapter(model, processor)
    params = prepare_trainable(adapter, TrainConfig(trainable="lora", lora_r=2, lora_alpha=4))
    names = [n for n, p in adapter.model.named_parameters() if p.requires_grad]
    assert params and all("lora_" in n and "language_model" in n for n in names)
    assert any(n.endswith("SelfAttention.o.lora_A.default.weight") for n in names)


def test_targets_that_match_nothing_are_refused_naming_the_layers_there_are():
    model, processor = build_tiny("blip-2-t5", seed=0)
    adapter = VLMAdapter(model, processor)
    with pytest.raises(ValueError, match=r"LoRA targets q_proj, v_proj match no layer of the language model "
                                         r"of .*; its linear layers are: .*\bq\b"):
        prepare_trainable(adapter, TrainConfig(trainable="lora", lora_targets=["q_proj", "v_proj"]))


@pytest.mark.parametrize("targets", ["q_proj", [], ["q_proj", ""]])
def test_a_target_list_must_be_a_list_of_names(targets):
    with pytest.raises(ValueError, match="lora_targets must be a list of layer names"):
        TrainConfig(lora_targets=targets).check()
