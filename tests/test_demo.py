"""The embedded demo model: it ships, plain transformers loads it, and the recipe runs."""

import pytest

from modint.models.loading import DEMO_DIR

needs_demo = pytest.mark.skipif(not (DEMO_DIR / "config.json").exists(), reason="demo weights not in the package")


@needs_demo
def test_shipped_weights_load_with_plain_transformers_and_answer():
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from modint.data.mini import load_mini
    from modint.data.sample import load_image
    from modint.models.adapter import VLMAdapter
    from modint.models.prompts import parse_answer

    size = sum(p.stat().st_size for p in DEMO_DIR.iterdir())
    assert size < 40e6
    model = AutoModelForImageTextToText.from_pretrained(DEMO_DIR).float().eval()
    processor = AutoProcessor.from_pretrained(DEMO_DIR)
    samples = [s.replace(image=load_image(s)) for s in load_mini("test", limit=12) if s.family == "image_heavy"]
    right = 0
    for s in samples:
        prompt = VLMAdapter(model, processor).prompt(s)
        inputs = processor(text=[prompt], images=[s.image], return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        text = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        right += parse_answer(text, s.options) == s.answer
    assert right >= 3  # of 4 clean image-heavy samples


@needs_demo
def test_demo_is_the_default_model():
    from modint.cli import DEFAULT_MODEL
    from modint.models.loading import load_adapter

    assert DEFAULT_MODEL == "demo"
    adapter = load_adapter("demo")
    assert adapter.model.dtype.is_floating_point and str(adapter.model.dtype) == "torch.float32"  # cast at load


@pytest.mark.slow
def test_recipe_runs_at_ci_size(tmp_path):
    from modint.models.loading import load_adapter
    from modint.data.mini import load_mini
    from modint.data.sample import load_image
    from modint.zoo.demo import DemoConfig, train_demo

    import dataclasses
    import json

    cfg = DemoConfig(train_per_family=30, batch_size=6, vision_batch=6, text_hidden=64, text_layers=2,
                     vision_hidden=64, vision_layers=2, vocab_size=600, checkpoints=True).scaled(0.002)
    out = train_demo(tmp_path / "demo", cfg)
    assert (out / "model.safetensors").exists() and (out / "training.json").exists()
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["mixture", "naming", "pointer", "vision"]
    # Resuming after the pointer stage runs the mixture only.
    resumed = train_demo(tmp_path / "resumed", dataclasses.replace(cfg, resume_from=str(out / "stages" / "pointer")))
    history = json.loads((resumed / "training.json").read_text())["history"]
    assert {h["stage"] for h in history} == {"mixture"}
    adapter = load_adapter(str(out))
    samples = [s.replace(image=load_image(s)) for s in load_mini("test", limit=3)]
    scored = adapter.score(samples)
    assert all(abs(r.probs.sum() - 1) < 1e-6 for r in scored)
