"""A stand-in processor for families whose own processor class cannot be built on a machine
without torchvision (Qwen2-VL / Qwen2.5-VL: the processor insists on a video processor).

It is what those processors do for images: the family's PIL image processor makes the pixel
patches and the grid of each image, and every image placeholder in the text is expanded to the
number of tokens that image becomes (grid_t * grid_h * grid_w / merge_size**2).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


class ExpandingProcessor:
    def __init__(self, image_processor: Any, tokenizer: Any, image_token: str = "<|image_pad|>",
                 chat_template: str | None = None):
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.image_token = image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)

    @property
    def merge_size(self) -> int:
        return int(getattr(self.image_processor, "merge_size", 2))

    def apply_chat_template(self, messages: list[dict], **kwargs: Any) -> str:
        return self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, **kwargs)

    def __call__(self, text: Sequence[str] | str, images: Sequence[Any] | None = None, padding: bool | str = True,
                 return_tensors: str = "pt", **kwargs: Any) -> dict[str, torch.Tensor]:
        texts = [text] if isinstance(text, str) else list(text)
        out: dict[str, torch.Tensor] = {}
        counts: list[int] = []
        if images:
            pixels = self.image_processor(images=list(images), return_tensors="pt")
            out.update({k: v for k, v in pixels.items()})
            counts = [int(n) for n in (pixels["image_grid_thw"].prod(-1) // self.merge_size ** 2)]
        expanded, k = [], 0
        for t in texts:
            parts = t.split(self.image_token)
            pieces = [parts[0]]
            for part in parts[1:]:
                if k >= len(counts):
                    raise ValueError(f"more {self.image_token} placeholders than images ({len(counts)})")
                pieces.append(self.image_token * counts[k] + part)
                k += 1
            expanded.append("".join(pieces))
        if k != len(counts):
            raise ValueError(f"{len(counts)} images for {k} {self.image_token} placeholders")
        enc = self.tokenizer(expanded, padding=padding, return_tensors=return_tensors, add_special_tokens=False)
        out.update(enc)
        out["mm_token_type_ids"] = (enc["input_ids"] == self.image_token_id).long()  # 1 = image token
        return out

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def save_pretrained(self, path: Any) -> None:
        self.tokenizer.save_pretrained(path)
        self.image_processor.save_pretrained(path)
        if self.chat_template:
            from pathlib import Path

            (Path(path) / "chat_template.jinja").write_text(self.chat_template)

    @classmethod
    def from_pretrained(cls, path: Any, image_processor_class: Any, image_token: str = "<|image_pad|>") -> "ExpandingProcessor":
        from pathlib import Path

        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        template_file = Path(path) / "chat_template.jinja"
        template = template_file.read_text() if template_file.exists() else getattr(tokenizer, "chat_template", None)
        return cls(image_processor_class.from_pretrained(path), tokenizer, image_token, template)


def qwen_stand_in(source: str, config) -> ExpandingProcessor:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return ExpandingProcessor.from_pretrained(source, Qwen2VLImageProcessorPil, "<|image_pad|>")


def smolvlm_stand_in(source: str, config):
    """SmolVLM's processor needs torchvision (video); Idefics3's builds the very same image
    prompt string (tiles with row/col tags, then the global image), so it serves for images."""
    from pathlib import Path

    from transformers import AutoTokenizer, Idefics3Processor
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(source)
    vision = config.vision_config
    seq_len = int((vision.image_size // vision.patch_size) ** 2 / config.scale_factor ** 2)
    template_file = Path(source) / "chat_template.jinja"
    template = template_file.read_text() if template_file.exists() else getattr(tokenizer, "chat_template", None)
    return Idefics3Processor(image_processor=SmolVLMImageProcessorPil.from_pretrained(source), tokenizer=tokenizer,
                             image_seq_len=seq_len, chat_template=template)
