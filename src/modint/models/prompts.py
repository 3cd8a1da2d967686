"""The published multiple-choice prompt and robust parsing of generated answers."""

from __future__ import annotations

import re

from modint.data.sample import OPTION_LETTERS, Sample

SYSTEM_PROMPT = (
    "You are an expert at question answering. Given the question and the context image of the "
    "question, please output the answer. Please provide a concise option, no explanation and "
    "further question."
)


def user_text(sample: Sample) -> str:
    """'Question:\\n...\\nOption:\\nA: ...' with any perturbation context placed before it; a
    sample without options is a free-text request (its question as written)."""
    if not sample.options:
        return f"{sample.context}\n{sample.question}" if sample.context else sample.question
    lines = [f"{letter}: {text}" for letter, text in zip(OPTION_LETTERS, sample.options)]
    body = f"Question:\n{sample.question}\nOption:\n" + "\n".join(lines)
    return f"{sample.context}\n{body}" if sample.context else body


def chat_messages(sample: Sample, has_image: bool, system_prompt: str | None = SYSTEM_PROMPT) -> list[dict]:
    """Messages in the Hugging Face chat format; the image slot is omitted for text-only inputs."""
    content: list[dict] = [{"type": "image"}] if has_image else []
    content.append({"type": "text", "text": user_text(sample)})
    messages = [{"role": "user", "content": content}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    return messages


_LEADING_LETTER = re.compile(r"^\s*(?:\(|\*\*)?([A-Z])(?:\)|\*\*)?\s*(?:[:.)\]]|$|\n)")
_ANSWER_IS = re.compile(r"(?:answer|option)\s*(?:is|:)?\s*\(?([A-Z])\b(?!\s+[a-z])")
# An uppercase letter standing alone and not opening a sentence like "A circle": the article.
_STANDALONE = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])(?!\s+[a-z])")


def parse_answer(text: str, options: tuple[str, ...] | list[str]) -> int | None:
    """Map a generated answer to an option index, or None when it names no option.

    Order: a leading option letter ("B", "B:", "(B)"); the text of exactly one option; "answer is
    B"; a standalone capital letter. Lower-case "a" is never a letter, and "A circle" is read as an
    article plus an option text, not as option A.
    """
    n = len(options)
    letters = OPTION_LETTERS[:n]

    def index(letter: str) -> int | None:
        return letters.index(letter) if letter in letters else None

    m = _LEADING_LETTER.match(text)
    if m and index(m.group(1)) is not None:
        return index(m.group(1))
    named = _options_named(text, options)
    if len(named) == 1:
        return named[0]
    for pattern in (_ANSWER_IS, _STANDALONE):
        for m in pattern.finditer(text):
            if index(m.group(1)) is not None:
                return index(m.group(1))
    return None


def _options_named(text: str, options: tuple[str, ...] | list[str]) -> list[int]:
    """Indices of options whose text appears as whole words, ignoring a match that lies inside
    a longer option's match ('red' inside 'dark red')."""
    lowered = text.lower()
    spans = []
    for i, option in enumerate(options):
        needle = str(option).lower().strip()
        if not needle:
            continue
        for m in re.finditer(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", lowered):
            spans.append((m.start(), m.end(), i))
    kept = {i for s, e, i in spans if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)}
    return sorted(kept)
