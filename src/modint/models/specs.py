"""Per-family differences, as data. A checkpoint is recognised by its config's ``model_type``."""

from __future__ import annotations

from dataclasses import dataclass

from modint.models.prompts import SYSTEM_PROMPT


@dataclass(frozen=True)
class FamilySpec:
    model_type: str
    display_name: str
    hub_examples: tuple[str, ...] = ()
    image_token: str = "<image>"
    system_prompt: str | None = SYSTEM_PROMPT


SPECS: dict[str, FamilySpec] = {
    "llava": FamilySpec("llava", "LLaVA-1.5", ("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-1.5-13b-hf")),
    "llava_next": FamilySpec("llava_next", "LLaVA-NeXT (1.6)", ("llava-hf/llava-v1.6-mistral-7b-hf",
                                                              "llava-hf/llava-v1.6-vicuna-7b-hf")),
}


def spec_for(model_type: str) -> FamilySpec:
    try:
        return SPECS[model_type]
    except KeyError:
        raise KeyError(f"unsupported model family {model_type!r}; supported: {', '.join(sorted(SPECS))}") from None
