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


def test_letter_tokens_cover_every_spelling(tiny_llava_adapter):
    # Llama-2's SentencePiece kind: "▁A" (after a space), "A" (after a newline), the byte piece;
    # standalone encodings of "A" and " A" both give "▁A" there, so they would miss the bare "A".
    ids = tiny_llava_adapter.letter_token_ids("A")
    tok = tiny_llava_adapter.tokenizer
    assert tok.encode("A", add_special_tokens=False) == tok.encode(" A", add_special_tokens=False)
    assert set(tok.convert_ids_to_tokens(ids)) == {"▁A", "A", "<0x41>"}


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


def _without_letter_c(processor):
    """The processor with a word-level tokenizer over the same vocabulary (same ids), except that
    every token spelling C is renamed: no token is left for option letter C."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    old = processor.tokenizer
    vocab = {(f"<renamed-{i}>" if old.decode([i]).strip() == "C" else token): i for token, i in old.get_vocab().items()}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", pad_token="<pad>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    assert tokenizer.convert_tokens_to_ids("<image>") == old.convert_tokens_to_ids("<image>")
    processor.tokenizer = tokenizer
    return processor


def test_a_model_without_a_letter_token_is_refused_before_any_record(tmp_path, mixed_samples):
    from modint.diagnose.engine import DiagnoseConfig, run_diagnosis
    from modint.models.adapter import LetterScoringError, VLMAdapter
    from modint.models.tiny import build_tiny

    model, processor = build_tiny("llava")
    adapter = VLMAdapter(model, _without_letter_c(processor), name="no-c-model")
    assert adapter.letter_token_ids("D")  # the other letters are there
    with pytest.raises(LetterScoringError, match="model no-c-model cannot be letter-scored: .* option letter 'C'"):
        run_diagnosis(adapter, mixed_samples, tmp_path / "run", DiagnoseConfig(conditions=["clean"]))
    assert not (tmp_path / "run" / "records.jsonl").exists()
    # two-option samples need no C, and generate-and-parse needs no letter tokens at all
    two = [s.replace(options=s.options[:2], answer=0) for s in mixed_samples]
    assert run_diagnosis(adapter, two, tmp_path / "two", DiagnoseConfig(conditions=["clean"]))["conditions"]
    summary = run_diagnosis(adapter, mixed_samples, tmp_path / "gen", DiagnoseConfig(conditions=["clean"],
                                                                                    scoring="generate"))
    # (clean applies to the image-heavy and VQA samples)
    assert sum(c["n"] for c in summary["conditions"]) == 2 and all(c["errors"] == 0 for c in summary["conditions"])


def test_cli_diagnose_exits_with_one_line_when_letters_cannot_be_scored(tmp_path):
    import os
    import subprocess
    import sys

    from modint.models.tiny import build_tiny

    model, processor = build_tiny("llava")
    model.save_pretrained(tmp_path / "m")
    _without_letter_c(processor).save_pretrained(tmp_path / "m")
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    r = subprocess.run([sys.executable, "-m", "modint.cli", "diagnose", "--model", str(tmp_path / "m"), "--benchmark",
                        "mini", "--limit", "6", "--conditions", "clean", "--out", str(tmp_path / "run"), "--quiet"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.startswith("modint:")]
    assert len(lines) == 1 and str(tmp_path / "m") in lines[0] and "'C'" in lines[0]
    assert "--scoring generate" in lines[0]
    assert not (tmp_path / "run" / "records.jsonl").exists()
    r = subprocess.run([sys.executable, "-m", "modint.cli", "train", "--model", str(tmp_path / "m"), "--limit", "4",
                        "--max-steps", "1", "--out", str(tmp_path / "train")], env=env, capture_output=True, text=True)
    lines = [line for line in r.stderr.splitlines() if line.startswith("modint:")]
    assert r.returncode == 2 and len(lines) == 1 and "'C'" in lines[0] and "--no-diagnose" in lines[0]
    assert not (tmp_path / "train" / "model").exists()
