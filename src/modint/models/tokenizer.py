"""Offline tokenizers: a byte-level BPE trained locally with `tokenizers`, so that tiny test
models and the demo model need nothing from a hub."""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]

# Pieces of the chat templates modint writes for its own models (tiny ones and the demo). Newlines
# are written as {{ '\n' }} because transformers renders templates with trim_blocks.
NL = "{{ '\\n' }}"
# A message's content may be a string or a list of typed parts: make it a list of parts.
MESSAGE_PARTS = ("{% if message['content'] is string %}{% set parts = [{'type': 'text', 'text': message['content']}] %}"
                 "{% else %}{% set parts = message['content'] %}{% endif %}")


def render_parts(image_markup: str) -> str:
    """Jinja that writes a message's parts: ``image_markup`` for an image, the text for text."""
    return ("{% for p in parts %}{% if p['type'] == 'image' %}" + image_markup +
            "{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}")


def llava_chat_template(with_system: bool = True) -> str:
    """LLaVA-1.5's conversation format: "SYSTEM\nUSER: <image>\nTEXT\nASSISTANT:"."""
    system = ("{% if message['role'] == 'system' %}{% for p in parts %}{{ p['text'] }}{% endfor %}" + NL + "{% el"
              if with_system else "{% ")
    return ("{% for message in messages %}" + MESSAGE_PARTS + system +
            "if message['role'] == 'user' %}USER: " + render_parts("<image>" + NL) + NL +
            "{% elif message['role'] == 'assistant' %}ASSISTANT: {% for p in parts %}{{ p['text'] }}{% endfor %}</s>" + NL +
            "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


LLAVA_CHAT_TEMPLATE = llava_chat_template()

_BASE_CORPUS = (
    "USER: ASSISTANT: Question: Option: A: B: C: D: E: The answer is A B C D E. "
    "What shape colour color digit number how many which is larger smaller left right above below "
    "circle square triangle star diamond cross heart hexagon red green blue yellow orange purple "
    "black white gray brown pink zero one two three four five six seven eight nine ten "
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 + - = ? the a an of in is picture "
    "You are an expert at question answering. Given the question and the context image of the "
    "question, please output the answer. Please provide a concise option, no explanation and "
    "further question."
)


def train_bpe_tokenizer(texts: Iterable[str] = (), vocab_size: int = 1024,
                        chat_template: str = LLAVA_CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (every string encodes) trained on ``texts`` plus a base corpus."""
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [_BASE_CORPUS] * 4 + list(texts)
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    fast.chat_template = chat_template
    return fast


# ----- tokenizers of the kinds real families use ---------------------------------------------------
# Each is trained here on the base corpus and wrapped in the family's own tokenizer class (or the
# pipeline its tokenizer.json describes), so letters tokenise as they do in the real model:
# "▁A" and "A" (SentencePiece), "ĠA" and "A" (byte-level BPE).

BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]  # SentencePiece byte fallback pieces
# Llama 3's pre-tokenizer pattern (tokenizer.json of meta-llama/Meta-Llama-3-8B).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_KIND_CORPUS = _BASE_CORPUS + (
    " SYSTEM: USER: ASSISTANT: User: Assistant: System: system user assistant model Answer: answer"
    "\nQuestion:\nWhat is shown?\nOption:\nA: circle\nB: square\nC: star\nD: cross\nE: heart\nAnswer: B"
)


def _training_lines(texts: Iterable[str]) -> list[str]:
    """The corpus as lines: no merge learns to cross a newline, as none does in the real vocabularies."""
    return [line for text in [_KIND_CORPUS] * 4 + list(texts) for line in text.split("\n") if line]


def _train_bpe_pieces(pre_tokenizer, specials: list[str], vocab_size: int, texts: Iterable[str],
                      alphabet: list[str] = ()) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a BPE trained with ``pre_tokenizer``; ``specials`` take the first ids."""
    import json

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=list(alphabet),
                                  show_progress=False)
    tok.train_from_iterator(_training_lines(texts), trainer=trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return tok.get_vocab(), [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def llama2_tokenizer(texts: Iterable[str] = (), vocab_size: int = 700, chat_template: str | None = None):
    """Llama-2 / Vicuna's kind: SentencePiece BPE with byte fallback, Metaspace ("▁") prepended to
    the first word, BOS added (<unk>, <s>, </s>, then the 256 byte pieces, as in Llama-2)."""
    from transformers import LlamaTokenizer

    vocab, merges = _train_bpe_pieces(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
                                      ["<unk>", "<s>", "</s>", *BYTE_TOKENS], vocab_size, texts, alphabet=["▁"])
    tok = LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False, legacy=False)
    tok.chat_template = chat_template
    return tok


def gemma_tokenizer(texts: Iterable[str] = (), vocab_size: int = 700, chat_template: str | None = None,
                    extra_special: Iterable[str] = (), **named_special: str):
    """Gemma's kind (PaliGemma, Gemma 3): SentencePiece BPE with byte fallback, spaces written as
    "▁" with no prefix added, newline a piece of its own, BOS added. ``named_special`` (Gemma 3's
    boi_token, ...) become named special tokens the processor reads."""
    from transformers import GemmaTokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>", *BYTE_TOKENS]
    vocab, merges = _train_bpe_pieces(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never"), specials,
                                      vocab_size, texts, alphabet=["▁", "\n"])
    tok = GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, **named_special)
    tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>", *extra_special]})
    tok.chat_template = chat_template
    return tok


def _byte_level_pieces(pre_tokenizer, specials: list[str], vocab_size: int, texts: Iterable[str]):
    return _train_bpe_pieces(pre_tokenizer, specials, vocab_size, texts, alphabet=pre_tokenizers.ByteLevel.alphabet())


def qwen2_tokenizer(texts: Iterable[str] = (), vocab_size: int = 700, chat_template: str | None = None,
                    extra_special: Iterable[str] = ()):
    """Qwen2 / 2.5 / 3's kind: byte-level BPE behind Qwen's split pattern, NFC, no BOS;
    <|endoftext|> pads, <|im_end|> ends a turn (the Instruct models' eos)."""
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
    from tokenizers import Regex

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    vocab, merges = _byte_level_pieces(pre, specials, vocab_size, texts)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", *extra_special]})
    tok.chat_template = chat_template
    return tok


def opt_tokenizer(texts: Iterable[str] = (), vocab_size: int = 700):
    """OPT's kind (BLIP-2): GPT-2's byte-level BPE; </s> opens every sequence (OPT's BOS) and
    ends it; BLIP-2's processor adds <image>."""
    from transformers import GPT2Tokenizer

    vocab, merges = _byte_level_pieces(pre_tokenizers.ByteLevel(add_prefix_space=False),
                                       ["<s>", "<pad>", "</s>", "<unk>"], vocab_size, texts)
    tok = GPT2Tokenizer(vocab=vocab, merges=merges, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                        unk_token="<unk>", add_bos_token=True)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return tok


def llama3_tokenizer(texts: Iterable[str] = (), vocab_size: int = 700, chat_template: str | None = None):
    """Llama 3's kind (Idefics3): byte-level BPE behind Llama 3's split pattern (tiktoken-style),
    <|begin_of_text|> added before every sequence."""
    from tokenizers import Regex, processors

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>"]
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    vocab, merges = _byte_level_pieces(pre, specials, vocab_size, texts)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    backend.pre_tokenizer = pre
    backend.decoder = decoders.ByteLevel()
    bos = vocab["<|begin_of_text|>"]
    backend.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos)])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                                  pad_token="<|reserved_special_token_0|>")
    tok.add_special_tokens({"additional_special_tokens": specials[3:]})
    tok.chat_template = chat_template
    return tok


def smollm_tokenizer(texts: Iterable[str] = (), vocab_size: int = 700, chat_template: str | None = None):
    """SmolVLM's kind (SmolLM2): GPT-2-style byte-level BPE with every digit split off; no BOS added
    (the template writes <|im_start|>), <|im_end|> pads; the processor adds <end_of_utterance>."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False)])
    vocab, merges = _byte_level_pieces(pre, specials, vocab_size, texts)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.chat_template = chat_template
    return tok


def t5_tokenizer(texts: Iterable[str] = (), vocab_size: int = 500):
    """T5's kind (Flan-T5): SentencePiece unigram, words split on whitespace and prefixed with "▁",
    no BOS, </s> closes every sequence; <pad> (id 0) starts the decoder. The trainer chooses the
    pieces; their scores (which it estimates in parallel, so they vary in the last digits from run
    to run) are set here from piece counts, so the same corpus always gives the same tokenizer."""
    import math

    from transformers import T5Tokenizer

    pre = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                   pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre
    specials = ["<pad>", "</s>", "<unk>"]
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>",
                                      show_progress=False)
    lines = _training_lines(texts)
    tok.train_from_iterator(lines, trainer=trainer)
    words = [w for line in lines for w, _ in pre.pre_tokenize_str(line)]
    counts = {p: sum(w.count(p) for w in words) for p in tok.get_vocab() if p not in specials}
    total = sum(counts.values())
    scored = sorted(((p, math.log(max(c, 1) / total)) for p, c in counts.items()), key=lambda ps: (-ps[1], ps[0]))
    return T5Tokenizer(vocab=[(p, 0.0) for p in specials] + scored, extra_ids=100)
