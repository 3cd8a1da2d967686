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
