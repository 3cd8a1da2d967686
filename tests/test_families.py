"""Every supported family, on its tiny random model: scoring equals a direct forward, text-only
inputs work, the image-token mask is exact, gradients reach pixels and input embeddings, mixed
batches equal one sample at a time, and a saved tiny model loads back through the generic path.
The Flan-T5 (encoder-decoder) variants of BLIP-2 and InstructBLIP run every check too (tiny names
blip-2-t5 and instructblip-t5; their checkpoints' model_type is blip-2 / instructblip)."""

import numpy as np
import pytest
import torch

from modint.data.sample import OPTION_LETTERS
from modint.models.adapter import VLMAdapter
from modint.models.loading import load_adapter
from modint.models.tiny import TINY_BUILDERS, build_tiny, save_tiny

FAMILIES = sorted(TINY_BUILDERS)
T5_FAMILIES = ["blip-2-t5", "instructblip-t5"]


def model_type(family: str) -> str:
    """The model_type of a tiny family's checkpoint (the Flan-T5 variants share their family's)."""
    return family.removesuffix("-t5")

# Image tokens for a 50x40 (w x h) image, from each family's geometry (32 px tiles of 8 px patches):
# LLaVA: one 4x4 grid. LLaVA-NeXT: the base tile (16) + the best pinpoint is 32x64 (h x w), a 4 x 8
# feature grid; unpadding to the 50:40 aspect keeps columns 1..6 (4 x 6 = 24) + a newline per row (4).
# Qwen2-VL / 2.5-VL: resized to 28 x 56 (multiples of 28 within 28*28..56*56 pixels), 2 x 4 patches of
# 14 px merged 2x2 = 2 tokens.
# Idefics3 / SmolVLM: resized to longest edge 64 (64 x 51, rounded up to 64 x 64 in 32 px tiles):
# 2 x 2 tiles + the global view, each 4x4 patches shuffled by 2 = 4 tokens: 5 x 4 = 20.
# BLIP-2 / InstructBLIP: the Q-Former's 4 query tokens, whatever the image.
# PaliGemma: a fixed 32x32 resize, 4x4 patches = 16 tokens.
# Qwen3-VL: 16 px patches merged 2x2 (32 px per token): resized to 32 x 64 (multiples of 32 within
# 32*32..64*64 pixels), 2 x 4 patches = 2 tokens.
# LLaVA-OneVision: SigLIP, no CLS ("full"): the base tile (16) + the best pinpoint is 64x64 (2x2 tiles,
# an 8 x 8 feature grid); unpadding to the 50:40 aspect keeps rows 1..6 (6 x 8 = 48) + a newline per
# row (6); under anyres_max_9, so not pooled: 16 + 48 + 6 = 70.
# Gemma 3: a fixed 32x32 resize, 4x4 patches average-pooled 2x2 = 4 soft tokens (mm_tokens_per_image).
EXPECTED_IMAGE_TOKENS = {"paligemma": 16, "blip-2": 4, "instructblip": 4, "idefics3": 20, "smolvlm": 20, "llava": 16, "llava_next": 16 + 4 * 6 + 4, "qwen2_vl": 2, "qwen2_5_vl": 2,
                         "qwen3_vl": 2, "llava_onevision": 16 + 6 * 8 + 6, "gemma3": 4}


# Each tiny family's tokenizer is of its real model's kind (see modint.models.tokenizer).
TOKENIZER_KIND = {"llava": "llama2", "llava_next": "llama2", "instructblip": "llama2",  # Vicuna: SentencePiece BPE
                  "paligemma": "gemma", "gemma3": "gemma",  # Gemma SentencePiece BPE, no prefix space
                  "qwen2_vl": "qwen2", "qwen2_5_vl": "qwen2", "qwen3_vl": "qwen2",  # byte-level BPE
                  "llava_onevision": "qwen2", "blip-2": "gpt2",  # OPT: GPT-2's byte-level BPE
                  "idefics3": "llama3", "smolvlm": "smollm", "blip-2-t5": "t5", "instructblip-t5": "t5"}
# kind -> (tokens "A" encodes to, special tokens included; every token that spells "A")
LETTER_TOKENS = {"llama2": (["<s>", "▁A"], {"▁A", "A", "<0x41>"}), "gemma": (["<bos>", "A"], {"▁A", "A", "<0x41>"}),
                 "qwen2": (["A"], {"A", "ĠA"}), "gpt2": (["</s>", "A"], {"A", "ĠA"}),
                 "llama3": (["<|begin_of_text|>", "A"], {"A", "ĠA"}), "smollm": (["A"], {"A", "ĠA"}),
                 "t5": (["▁A", "</s>"], {"▁A", "A"})}


@pytest.fixture(scope="module", params=FAMILIES)
def adapter(request):
    model, processor = build_tiny(request.param, seed=0)
    adapter = VLMAdapter(model.float().eval(), processor)
    adapter.tiny_family = request.param  # which builder made it (the -t5 variants share a model_type)
    return adapter


def tokenizer_kind(tokenizer) -> str:
    """The tokenizer's kind, read from its pipeline (tokenizer.json)."""
    import json

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model, pipeline = spec["model"], json.dumps([spec["normalizer"], spec["pre_tokenizer"]])
    if model["type"] == "Unigram":
        return "t5" if "Metaspace" in pipeline else "unigram"
    if model.get("byte_fallback"):
        return "llama2" if "Metaspace" in pipeline else "gemma" if '"Replace"' in pipeline else "bpe with byte fallback"
    if "ByteLevel" not in pipeline:
        return "other"
    if "Digits" in pipeline:
        return "smollm"
    if "p{N}{1,3}" in pipeline:  # Llama 3 groups up to three digits; Qwen splits every digit
        return "llama3"
    return "qwen2" if "Split" in pipeline else "gpt2"


def _direct_logits(adapter, batch):
    """The HF model's logits on the batch's prompt; encoder-decoder: the first decoder step's,
    from the decoder start token (built here, not taken from the adapter's inputs)."""
    inputs = {k: v for k, v in batch.inputs.items() if not k.startswith("decoder_")}
    if adapter.encoder_decoder:
        start = adapter.model.config.text_config.decoder_start_token_id
        inputs["decoder_input_ids"] = torch.full((len(batch.samples), 1), start, dtype=torch.long)
    with torch.no_grad():
        if "pixel_values" not in inputs and adapter.spec.text_only_via_language_model:
            decoder = {k: v for k, v in inputs.items() if k.startswith("decoder_")}
            return adapter.model.language_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                                **decoder).logits
        return adapter.model(**inputs).logits


def test_scores_equal_a_direct_forward(adapter, mixed_samples):
    if adapter.spec.text_only_via_language_model or adapter.spec.split_mixed_batches:  # run as separate batches
        for s in mixed_samples:
            _check_direct(adapter, [s])
    else:
        _check_direct(adapter, mixed_samples)


def _check_direct(adapter, samples):
    batch = adapter.encode(samples)
    logits = _direct_logits(adapter, batch)
    for i, (s, r) in enumerate(zip(samples, adapter.score(samples))):
        row = logits[i, 0 if adapter.encoder_decoder else batch.answer_index[i]]
        letters = [torch.logsumexp(row[adapter.letter_token_ids(l)], 0) for l in s.letters]
        expected = torch.softmax(torch.stack(letters), 0).numpy()
        np.testing.assert_allclose(r.probs, expected, atol=1e-5)


def test_tokenizer_is_of_the_real_kind(adapter):
    tok = adapter.tokenizer
    kind = TOKENIZER_KIND[adapter.tiny_family]
    assert tokenizer_kind(tok) == kind
    expected = LETTER_TOKENS[kind][0]
    if adapter.tiny_family == "paligemma":  # its processor turns the BOS off and writes <bos> into the prompt
        expected = expected[1:]
    assert tok.convert_ids_to_tokens(tok("A")["input_ids"]) == expected


def test_letter_tokens_are_every_token_that_spells_the_letter(adapter):
    tok = adapter.tokenizer
    for letter in OPTION_LETTERS[:5]:
        every = [i for i in range(len(tok)) if tok.decode([i]).strip() == letter]  # the whole vocabulary, decoded
        assert adapter.letter_token_ids(letter) == every
    assert set(tok.convert_ids_to_tokens(adapter.letter_token_ids("A"))) == LETTER_TOKENS[
        TOKENIZER_KIND[adapter.tiny_family]][1]


def test_the_answer_after_the_template_is_a_letter_token(adapter, mixed_samples):
    """The token the model writes after its real template's generation prompt (the training label)
    is one of the tokens scoring counts."""
    if adapter.tiny_family == "paligemma":
        pytest.xfail("PaliGemma's processor closes the prompt with a newline after the appended answer; "
                     "training rows need its suffix argument")
    for sample in mixed_samples:
        labels = adapter.encode([sample], with_answers=True).labels[0]
        answer = labels[labels != -100].tolist()
        assert len(answer) == 1 and answer[0] in adapter.letter_token_ids(OPTION_LETTERS[sample.answer])


def test_a_generated_letter_parses(adapter, mixed_samples):
    """Whichever spelling of B the model generates, the decoded answer parses as option B: the
    output head is pushed to that token at the first step and to the end of sequence after it."""
    eos = adapter.tokenizer.eos_token_id
    for sample in mixed_samples[:2]:  # with an image, text only
        for token in adapter.letter_token_ids("B"):
            steps = []

            def force(module, args, output, token=token):
                forced = torch.full_like(output, -1e4)
                forced[..., eos if steps else token] = 1e4
                steps.append(token)
                return forced

            handle = adapter.model.get_output_embeddings().register_forward_hook(force)
            try:
                text = adapter.generate([sample], max_new_tokens=3)[0]
            finally:
                handle.remove()
            assert adapter.parse(text, sample) == 1, (adapter.tokenizer.convert_ids_to_tokens([token]), text)


def test_text_only_sample_has_no_image_tokens(adapter, mixed_samples):
    text_only = mixed_samples[1]
    assert text_only.image is None
    batch = adapter.encode([text_only])
    assert int(batch.image_token_mask.sum()) == 0 and "pixel_values" not in batch.inputs
    assert abs(adapter.score([text_only])[0].probs.sum() - 1) < 1e-6


def test_image_token_mask_is_exact(adapter, mixed_samples):
    batch = adapter.encode([mixed_samples[0]])
    assert mixed_samples[0].image.size == (50, 40)
    assert int(batch.image_token_mask.sum()) == EXPECTED_IMAGE_TOKENS[adapter.spec.model_type]


def test_gradients_reach_pixels_and_embeddings(adapter, mixed_samples):
    sample = mixed_samples[0]
    batch = adapter.encode([sample])
    pixels = batch.inputs["pixel_values"].clone().requires_grad_(True)
    batch.inputs["pixel_values"] = pixels
    adapter.answer_logits(batch)[0, adapter.letter_token_ids("A")[0]].backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0

    batch = adapter.encode([sample])
    embeds = adapter.embed(batch).requires_grad_(True)
    assert embeds.shape[:2] == batch.inputs["input_ids"].shape
    logits = adapter.answer_logits_from_embeds(batch, embeds)
    with torch.no_grad():
        np.testing.assert_allclose(logits.numpy(), adapter.answer_logits(batch).numpy(), atol=1e-5)
    logits[0, adapter.letter_token_ids("A")[0]].backward()
    grad = embeds.grad[0]
    assert grad.abs().sum() > 0
    assert grad[batch.image_token_mask[0]].abs().sum() > 0  # the image positions are reachable too


def test_mixed_batch_equals_one_at_a_time(adapter, mixed_samples):
    together = adapter.score(mixed_samples)
    for s, r in zip(mixed_samples, together):
        np.testing.assert_allclose(r.probs, adapter.score([s])[0].probs, atol=1e-5)


def test_saved_tiny_model_loads_through_the_generic_path(tmp_path, mixed_samples):
    for family in FAMILIES:
        path = save_tiny(family, tmp_path / family)
        loaded = load_adapter(str(path))
        assert loaded.spec.model_type == model_type(family)
        assert loaded.encoder_decoder == (family in T5_FAMILIES), family
        # the reloaded processor must still expand images (a tokenizer-only fallback would not)
        batch = loaded.encode(mixed_samples[:1])
        assert int(batch.image_token_mask.sum()) == EXPECTED_IMAGE_TOKENS[model_type(family)], family
        assert abs(loaded.score(mixed_samples[:1])[0].probs.sum() - 1) < 1e-6
        # the tokenizer and the chat template come back as built: same prompt, tokens and letters
        built = VLMAdapter(*build_tiny(family))
        for sample in mixed_samples[:2]:
            assert loaded.prompt(sample) == built.prompt(sample), family
            assert torch.equal(loaded.encode([sample]).inputs["input_ids"], built.encode([sample]).inputs["input_ids"])
        assert loaded.letter_token_ids("A") == built.letter_token_ids("A"), family


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_cli_zoo_tiny_then_diagnose(family, tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    cli = [sys.executable, "-m", "modint.cli"]
    subprocess.run(cli + ["zoo", "tiny", family, "--out", str(tmp_path / "m")], check=True, env=env, capture_output=True)
    subprocess.run(cli + ["diagnose", "--model", str(tmp_path / "m"), "--benchmark", "mini", "--limit", "8",
                          "--out", str(tmp_path / "run"), "--quiet"], check=True, env=env, capture_output=True)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert sum(c["n"] for c in summary["conditions"]) > 0 and all(c["errors"] == 0 for c in summary["conditions"])


@pytest.mark.parametrize("family", ["llava", "paligemma", "blip-2", "instructblip", "qwen2_vl", "qwen2_5_vl", "qwen3_vl",
                                    "gemma3", *T5_FAMILIES])
def test_differentiable_preprocessing_matches_the_processor(family, mixed_samples):
    model, processor = build_tiny(family, seed=0)
    adapter = VLMAdapter(model.float().eval(), processor)
    image = mixed_samples[0].image.resize((100, 80))  # not square, larger than the model's input
    reference = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    reference = reference if family.startswith("qwen") else reference[0]  # Qwen: [patches, dim] per image
    raw = (torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255).requires_grad_(True)
    pixels = adapter.differentiable_pixels(raw)
    # PIL's filter weights as torch ops: what remains is PIL's rounding of each pass to 8 bits
    # (normalised units: about 2 per 255 grey levels).
    assert pixels.shape == reference.shape
    gap = (pixels.detach() - reference).abs()
    assert float(gap.max()) < 0.03 and float(gap.mean()) < 0.006
    batch = adapter.encode([mixed_samples[0].replace(image=image)])
    batch.inputs["pixel_values"] = adapter.differentiable_pixel_values([raw])
    adapter.answer_logits(batch)[0, adapter.letter_token_ids("B")[0]].backward()
    assert raw.grad is not None and raw.grad.abs().sum() > 0


def test_differentiable_preprocessing_says_what_it_does_not_cover():
    import dataclasses

    model, processor = build_tiny("llava", seed=0)
    adapter = VLMAdapter(model, processor)
    adapter.spec = dataclasses.replace(adapter.spec, model_type="future_vlm")  # a family without one
    with pytest.raises(NotImplementedError, match="future_vlm"):
        adapter.differentiable_pixels(torch.rand(3, 40, 50))


@pytest.mark.parametrize("family", T5_FAMILIES)
def test_encoder_decoder_answers_go_to_the_decoder(family, mixed_samples):
    """Flan-T5 variants: the prompt is the encoder input, the answer is decoded after the start
    token; training labels sit on the decoder side, so answer_ce reads the logits that scoring
    reads and gives a finite loss with gradients (image and text-only rows)."""
    from modint.mitigate.objectives import answer_ce

    model, processor = build_tiny(family, seed=0)
    adapter = VLMAdapter(model.float().eval(), processor)
    assert adapter.encoder_decoder and adapter.spec.model_type == model_type(family)
    start = model.config.text_config.decoder_start_token_id
    for sample in (mixed_samples[0], mixed_samples[1]):  # with an image, text only
        plain = adapter.encode([sample])
        batch = adapter.encode([sample], with_answers=True)
        assert torch.equal(batch.inputs["input_ids"], plain.inputs["input_ids"])  # no answer in the encoder
        assert not batch.answer_input_mask.any()
        gold = adapter.tokenizer.encode(adapter.answer_text(sample), add_special_tokens=False)
        assert gold[0] in adapter.letter_token_ids(OPTION_LETTERS[sample.answer])
        assert batch.inputs["decoder_input_ids"][0].tolist() == [start] + gold
        assert batch.labels[0].tolist() == [-100] + gold
        out = adapter.forward(batch, output_hidden_states=True)
        assert out.hidden_states[-1].shape[:2] == batch.labels.shape  # the decoder's states
        loss = answer_ce(out.logits, batch.labels)
        with torch.no_grad():
            expected = torch.nn.functional.cross_entropy(adapter.answer_logits(plain), torch.tensor(gold[:1]))
        assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item(), rel=1e-5)
        adapter.model.zero_grad()
        loss.backward()
        decoder = [p for n, p in adapter.model.named_parameters() if "language_model.decoder" in n]
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in decoder)
    # a batch of answers is right-padded on the decoder side, labels -100 on the padding
    batch = adapter.encode(mixed_samples[:1] + mixed_samples[2:], with_answers=True)
    assert batch.labels.shape == batch.inputs["decoder_input_ids"].shape
    assert (batch.inputs["decoder_attention_mask"].bool() == (batch.labels != -100) | (torch.arange(
        batch.labels.shape[1]) == 0)).all()
    assert all(isinstance(t, str) for t in adapter.generate(mixed_samples, max_new_tokens=3))


@pytest.mark.slow
@pytest.mark.parametrize("family", T5_FAMILIES)
def test_cli_train_one_step_on_an_encoder_decoder(family, tmp_path):
    import os
    import subprocess
    import sys

    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    cli = [sys.executable, "-m", "modint.cli"]
    subprocess.run(cli + ["zoo", "tiny", family, "--out", str(tmp_path / "m")], check=True, env=env, capture_output=True)
    r = subprocess.run(cli + ["train", "--model", str(tmp_path / "m"), "--max-steps", "1", "--limit", "16",
                              "--no-diagnose", "--set", "pgd_steps=1", "--out", str(tmp_path / "run")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "run" / "model" / "config.json").exists()


def test_tokenizers_of_every_kind_are_reproducible():
    """The same corpus gives the same tokenizer (the unigram trainer's own scores vary run to run)."""
    from modint.models import tokenizer as kinds

    for build in (kinds.llama2_tokenizer, kinds.gemma_tokenizer, kinds.qwen2_tokenizer, kinds.opt_tokenizer,
                  kinds.llama3_tokenizer, kinds.smollm_tokenizer, kinds.t5_tokenizer):
        first, *others = [build().backend_tokenizer.to_str() for _ in range(3)]
        assert all(other == first for other in others), build.__name__
