"""Stand-in processors for families whose own processor class cannot be built on a machine
without torchvision (Qwen2-VL / Qwen2.5-VL / Qwen3-VL, LLaVA-OneVision: the processor insists on
a video processor).

For Qwen, ``ExpandingProcessor`` does what those processors do for images: the family's PIL image
processor makes the pixel patches and the grid of each image, and every image placeholder in the
text is expanded to the number of tokens that image becomes (grid_t * grid_h * grid_w / merge_size**2).
For LLaVA-OneVision, its own processor class serves once the video processor is taken out.
"""

from __future__ import annotations

import functools
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


def image_only_onevision_processor(**kwargs):
    """LLaVA-OneVision's own processor without its video processor (which needs torchvision): the
    same placeholder expansion (base tile + unpadded anyres grid + a newline per row, pooled to
    at most ``anyres_max_N`` tiles), so image prompts match the real processor token for token."""
    return _image_only_onevision_class()(**kwargs)


@functools.cache
def _image_only_onevision_class():
    from transformers import LlavaOnevisionProcessor

    class LlavaOnevisionImageOnlyProcessor(LlavaOnevisionProcessor):
        # ProcessorMixin takes its sub-processors from this signature: no video_processor here.
        def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=None,
                     vision_feature_select_strategy=None, chat_template=None, image_token="<image>",
                     video_token="<video>", vision_aspect_ratio="anyres_max_9", **kwargs):
            super().__init__(image_processor, tokenizer, None, num_image_tokens=num_image_tokens,
                             vision_feature_select_strategy=vision_feature_select_strategy, chat_template=chat_template,
                             image_token=image_token, video_token=video_token, vision_aspect_ratio=vision_aspect_ratio)

    # Saved under the family's own class name: AutoProcessor then loads the real processor where
    # torchvision is installed and fails where it is not (and loading falls back to this stand-in),
    # instead of quietly returning the bare tokenizer for an unknown processor class.
    LlavaOnevisionImageOnlyProcessor.__name__ = LlavaOnevisionImageOnlyProcessor.__qualname__ = "LlavaOnevisionProcessor"
    return LlavaOnevisionImageOnlyProcessor


def llava_onevision_stand_in(source: str, config):
    """The image-only LLaVA-OneVision processor, its settings read from the model config (tokens
    per tile = (image_size / patch_size)**2, the feature strategy, the anyres_max limit)."""
    from pathlib import Path

    from transformers import AutoTokenizer
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil)

    tokenizer = AutoTokenizer.from_pretrained(source)
    vision = config.vision_config
    template_file = Path(source) / "chat_template.jinja"
    template = template_file.read_text() if template_file.exists() else getattr(tokenizer, "chat_template", None)
    return image_only_onevision_processor(
        image_processor=LlavaOnevisionImageProcessorPil.from_pretrained(source), tokenizer=tokenizer,
        num_image_tokens=(vision.image_size // vision.patch_size) ** 2,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        vision_aspect_ratio=config.vision_aspect_ratio, chat_template=template)
