"""One PNG showing a sample under each condition: the image the model sees and the text before it."""

from __future__ import annotations

import textwrap
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from modint.data.sample import Sample, load_image

PANEL = 260
TEXT_HEIGHT = 230


def _panel(name: str, sample: Sample) -> Image.Image:
    panel = Image.new("RGB", (PANEL, PANEL + TEXT_HEIGHT), "white")
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default(size=12)
    draw.text((6, 4), name, fill="black", font=ImageFont.load_default(size=15))
    image = load_image(sample)
    if image is None:
        draw.rectangle((6, 26, PANEL - 6, PANEL - 6), outline=(160, 160, 160))
        draw.text((PANEL // 2, PANEL // 2), "(no image)", fill=(120, 120, 120), font=font, anchor="mm")
    else:
        scale = min((PANEL - 12) / image.width, (PANEL - 32) / image.height)  # small images grow too
        thumb = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        panel.paste(thumb, (6, 26))
        draw.rectangle((5, 25, 6 + thumb.width, 26 + thumb.height), outline=(160, 160, 160))
    options = "  ".join(f"{letter}: {opt}" for letter, opt in zip(sample.letters, sample.options))
    text = " ".join(t for t in (sample.context, sample.question) if t)
    lines = textwrap.wrap(text, 40)[:12] + textwrap.wrap(options, 40)[:3]
    draw.multiline_text((6, PANEL + 4), "\n".join(lines), fill="black", font=font, spacing=3)
    return panel


def render_preview(variants: Sequence[tuple[str, Sample]]) -> Image.Image:
    panels = [_panel(name, s) for name, s in variants]
    out = Image.new("RGB", (PANEL * len(panels), PANEL + TEXT_HEIGHT), "white")
    for i, p in enumerate(panels):
        out.paste(p, (i * PANEL, 0))
    return out
