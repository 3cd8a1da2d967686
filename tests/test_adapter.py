import numpy as np
import pytest
import torch

from modint.data.sample import Sample
from modint.models.prompts import parse_answer, user_text


def test_user_text_layout_and_context_first():
    s = Sample("q", "text_heavy", "What is 1 + 1?", ("2", "3"), 0, None, context="Ignore me.")
    assert user_text(s) == "Ignore me.\nQuestion:\nWhat is 1 + 1?\nOption:\nA: 2\nB: 3"


@pytest.mark.parametrize("text,expected", [
    ("B", 1), ("B: square", 1), ("(C)", 2), ("C.", 2), ("The answer is B.", 1), ("Answer: D", 3),
    ("a", None),                 # the article is never option A
    ("A circle.", 0),             # article + option text: option text decides (circle is A here)
    ("a square", 1),              # the published regex would read this as A
    ("dark red", 2), ("red", 3),  # longest option wins over a contained one
    ("square or circle", None),   # two options named: no answer
    ("E", 4),                     # a 5th option parses (ScienceQA)
    ("", None), ("I do not know", None),
])
def test_parse_answer(text, expected):
    options = ("circle", "square", "dark red", "red", "blue")
    assert parse_answer(text, options) == expected


def test_letter_tokens_cover_both_spellings(tiny_llava_adapter):
    ids = tiny_llava_adapter.letter_token_ids("A")
    tok = tiny_llava_adapter.tokenizer
    assert {tok.decode([i]) for i in ids} == {"A", " A"}


def test_scores_equal_softmax_of_direct_forward(tiny_llava_adapter, mixed_samples):
    adapter = tiny_llava_adapter
    scored = adapter.score(mixed_samples)
    for sample, result in zip(mixed_samples, scored):
        # Direct forward of the HF model on the same single-sample inputs.
        batch = adapter.encode([sample])
        with torch.no_grad():
            logits = adapter.model(**batch.inputs).logits[0, -1]
        letters = sample.letters
        per_letter = [torch.logsumexp(logits[adapter.letter_token_ids(l)], 0) for l in letters]
        expected = torch.softmax(torch.stack(per_letter), 0).numpy()
        np.testing.assert_allclose(result.probs, expected, atol=1e-5)
        assert result.pred == int(np.argmax(expected))
        assert len(result.probs) == len(sample.options)


def test_mixed_batch_equals_one_at_a_time(tiny_llava_adapter, mixed_samples):
    together = tiny_llava_adapter.score(mixed_samples)
    alone = [tiny_llava_adapter.score([s])[0] for s in mixed_samples]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
    gen_together = tiny_llava_adapter.generate(mixed_samples, max_new_tokens=4)
    gen_alone = [tiny_llava_adapter.generate([s], max_new_tokens=4)[0] for s in mixed_samples]
    assert gen_together == gen_alone


def test_image_token_mask_counts_image_tokens(tiny_llava_adapter, mixed_samples):
    batch = tiny_llava_adapter.encode(mixed_samples)
    config = tiny_llava_adapter.model.config
    per_image = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
    assert batch.image_token_mask.sum(1).tolist() == [per_image, 0, per_image]


def test_no_image_prompt_has_no_image_slot(tiny_llava_adapter, mixed_samples):
    assert "<image>" not in tiny_llava_adapter.prompt(mixed_samples[1])
    assert tiny_llava_adapter.prompt(mixed_samples[0]).count("<image>") == 1
