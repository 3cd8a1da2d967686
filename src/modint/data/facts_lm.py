"""Misleading facts written by a language model (`--facts-model`), cached beside the data.

For image-heavy samples whose data carries no ``facts``: for each wrong option the misleading
text is "The picture seems to describe {option}." plus two sentences the model writes about the
option (the paper's texts have that shape). Generation is greedy, so a cache entry is the same
text the model would write again; the cache (JSON, option -> text, per model) means each option is
generated once, ever, for a dataset.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from modint.data.facts import concept_phrase
from modint.data.sample import IMAGE_HEAVY, Sample

PROMPT = "Write two short, true sentences about {option}. Do not mention pictures."


def _clean(text: str) -> str:
    text = " ".join(text.split())
    sentences = re.findall(r"[^.!?]+[.!?]", text)
    return " ".join(s.strip() for s in sentences[:2]) or text.strip()


def misleading_from(option: str, written: str) -> str:
    first = f"The picture seems to describe {concept_phrase(option)}."
    return f"{first} {written}".strip()


def cache_path_for(benchmark: str, model: str, fallback_dir: Path) -> Path:
    """Beside the data when the benchmark is a path, else in ``fallback_dir``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"
    first = benchmark.split(",")[0].split("?")[0]
    base = Path(first)
    folder = (base if base.is_dir() else base.parent) if base.exists() else fallback_dir
    return folder / f".modint-facts.{slug}.json"


def add_generated_facts(samples: Sequence[Sample], write: Callable[[list[str]], list[str]], cache: Path,
                        batch_size: int = 8) -> list[Sample]:
    """Image-heavy samples without facts get ``meta["facts"]`` for every option, written by
    ``write(options) -> texts`` (only for options the cache lacks). Other samples are unchanged."""
    store: dict[str, str] = json.loads(cache.read_text()) if cache.exists() else {}
    wanted = sorted({str(o) for s in samples if s.family == IMAGE_HEAVY and not (s.meta or {}).get("facts")
                     for o in s.options} - set(store))
    for start in range(0, len(wanted), batch_size):
        chunk = wanted[start:start + batch_size]
        for option, text in zip(chunk, write(chunk)):
            store[option] = misleading_from(option, _clean(text))
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(store, indent=1, ensure_ascii=False))
        tmp.replace(cache)  # progress survives an interruption
    out = []
    for s in samples:
        if s.family == IMAGE_HEAVY and not (s.meta or {}).get("facts"):
            s = s.replace(meta={**(s.meta or {}), "facts": {str(o): store[str(o)] for o in s.options}})
        out.append(s)
    return out


def adapter_writer(adapter: Any, max_new_tokens: int = 48) -> Callable[[list[str]], list[str]]:
    """``write`` for add_generated_facts from a modint adapter: text-only greedy generation."""
    def write(options: list[str]) -> list[str]:
        return adapter.generate_text([PROMPT.format(option=o) for o in options], max_new_tokens=max_new_tokens)
    return write
