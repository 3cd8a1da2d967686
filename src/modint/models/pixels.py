"""Image preprocessing as differentiable torch ops (for pixel-space PGD), family by family.

Each function takes one raw image ``[3, H, W]`` in [0, 1] and the family's image processor and
returns what the processor would put in ``pixel_values`` for it. Resizing uses PIL's own
filter weights (the processors resize with PIL), so what remains is PIL's rounding to 8 bits
between its two passes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _bicubic(x: torch.Tensor) -> torch.Tensor:  # PIL's cubic kernel, a = -0.5
    a, x = -0.5, x.abs()
    return torch.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                       torch.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, torch.zeros_like(x)))


def _lanczos(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x.abs() < 3, torch.sinc(x) * torch.sinc(x / 3), torch.zeros_like(x))


def _triangle(x: torch.Tensor) -> torch.Tensor:
    return (1 - x.abs()).clamp_min(0)


# PIL's resampling filters by their Image.Resampling value: (kernel, support)
_PIL_FILTERS = {1: (_lanczos, 3.0), 2: (_triangle, 1.0), 3: (_bicubic, 2.0)}


def _pil_weights(n_in: int, n_out: int, resample: int) -> torch.Tensor:
    """[n_out, n_in] resampling matrix of PIL's ``Image.resize`` along one axis (its
    precompute_coeffs: the kernel widened by the scale when shrinking, rows normalised)."""
    kernel, support = _PIL_FILTERS[resample]
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    centre = (torch.arange(n_out, dtype=torch.float64, device="cpu") + 0.5) * scale  # float64: not on every device
    lo = (centre - support * stretch + 0.5).floor().clamp_min(0)  # PIL truncates a positive value
    hi = (centre + support * stretch + 0.5).floor().clamp_max(n_in)
    j = torch.arange(n_in, dtype=torch.float64, device="cpu")
    w = kernel((j[None] - centre[:, None] + 0.5) / stretch)
    w = torch.where((j[None] >= lo[:, None]) & (j[None] < hi[:, None]), w, torch.zeros_like(w))
    return (w / w.sum(1, keepdim=True)).float()


def resize(x: torch.Tensor, height: int, width: int, resample: int | None = None) -> torch.Tensor:
    """[..., 3, H, W] -> [..., 3, height, width] with PIL's filter ``resample`` (bilinear,
    bicubic or Lanczos, as separable matrices: the same weights and clipping as PIL, without its
    8-bit rounding); other filters: torch's antialiased bicubic. Expects values in [0, 1]."""
    if tuple(x.shape[-2:]) == (height, width):
        return x
    resample = int(resample) if resample is not None else 3
    if resample in _PIL_FILTERS:
        def horizontal(t):
            return (t @ _pil_weights(t.shape[-1], width, resample).to(t.device, t.dtype).T).clamp(0, 1)

        def vertical(t):
            return (_pil_weights(t.shape[-2], height, resample).to(t.device, t.dtype) @ t).clamp(0, 1)

        # Each pass is clipped to the pixel range, as PIL's 8-bit passes are. PIL reduces first:
        # vertically first when only the height shrinks (found by comparing with Pillow 13).
        passes = (vertical, horizontal) if height < x.shape[-2] and width > x.shape[-1] else (horizontal, vertical)
        for step in passes:
            x = step(x)
        return x
    flat = x.reshape(-1, *x.shape[-3:])
    out = F.interpolate(flat, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return out.reshape(*x.shape[:-2], height, width)


def normalize(x: torch.Tensor, ip: Any) -> torch.Tensor:
    if not getattr(ip, "do_normalize", True):
        return x
    mean = torch.tensor(ip.image_mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std = torch.tensor(ip.image_std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - mean) / std


def resize_crop_normalize(x: torch.Tensor, ip: Any) -> torch.Tensor:
    """One image, or one tile, as CLIP / SigLIP / BLIP-style processors prepare it (LLaVA-1.5,
    PaliGemma, BLIP-2, InstructBLIP, Gemma 3, and each anyres tile): resize (the shortest edge to
    ``size["shortest_edge"]`` with the aspect kept, or to height x width), centre-crop, normalise."""
    if getattr(ip, "do_resize", True):
        short = ip.size.get("shortest_edge")
        h, w = x.shape[-2:]
        if short:  # transformers' get_resize_output_image_size, integer rounding included
            new = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
        else:
            new = (ip.size.get("height"), ip.size.get("width"))
        x = resize(x, *new, getattr(ip, "resample", None))
    crop = getattr(ip, "crop_size", None)
    if getattr(ip, "do_center_crop", False) and crop:
        ch, cw = crop.get("height"), crop.get("width")
        top, left = (x.shape[-2] - ch) // 2, (x.shape[-1] - cw) // 2
        x = x[..., top:top + ch, left:left + cw]
    return normalize(x, ip)


def qwen_patches(image: torch.Tensor, ip: Any) -> torch.Tensor:
    """Qwen2-VL / 2.5-VL / 3-VL for one image: resized to the processor's smart size (multiples
    of patch x merge), normalised, flattened into [patches, C * T * p * p] in its patch order."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    p, merge, t = ip.patch_size, ip.merge_size, ip.temporal_patch_size
    height, width = image.shape[-2:]
    new_h, new_w = smart_resize(height, width, factor=p * merge, min_pixels=ip.size.get("shortest_edge"),
                                max_pixels=ip.size.get("longest_edge"))
    x = normalize(resize(image, new_h, new_w, getattr(ip, "resample", None)), ip)
    c, gh, gw = x.shape[0], new_h // p, new_w // p
    patches = x.reshape(c, gh // merge, merge, p, gw // merge, merge, p).permute(1, 4, 2, 5, 0, 3, 6)
    patches = patches.unsqueeze(5).expand(*patches.shape[:5], t, p, p)
    return patches.reshape(gh * gw, c * t * p * p)


def _size_tuple(size: Any) -> tuple[int, int]:
    if size.get("height") and size.get("width"):
        return size.get("height"), size.get("width")
    return size.get("shortest_edge"), size.get("shortest_edge")


def anyres_tiles(image: torch.Tensor, ip: Any) -> torch.Tensor:
    """LLaVA-NeXT / LLaVA-OneVision "anyres" for one image: [tiles, 3, h, w], the whole image
    resized to the base size first, then the tiles of the image fitted (aspect kept, centred,
    zero padding) into the best of the processor's grid resolutions, row by row."""
    import math

    from transformers.image_processing_utils import select_best_resolution

    height, width = image.shape[-2:]
    base = _size_tuple(ip.size)
    crop = getattr(ip, "crop_size", None)
    tile = crop.get("height") if crop and crop.get("height") else base[0]
    target_h, target_w = select_best_resolution((height, width), ip.image_grid_pinpoints)
    if target_w / width < target_h / height:  # transformers' get_patch_output_size
        new_h, new_w = min(math.ceil(height * target_w / width), target_h), target_w
    else:
        new_h, new_w = target_h, min(math.ceil(width * target_h / height), target_w)
    r = getattr(ip, "resample", None)
    fitted = resize(image, new_h, new_w, r)
    top, left = (target_h - new_h) // 2, (target_w - new_w) // 2
    canvas = F.pad(fitted, (left, target_w - new_w - left, top, target_h - new_h - top))
    tiles = [resize(image, *base, r)]
    tiles += [canvas[:, i:i + tile, j:j + tile] for i in range(0, target_h, tile) for j in range(0, target_w, tile)]
    return torch.stack([resize_crop_normalize(t, ip) for t in tiles])


def pad_tiles(per_image: list[torch.Tensor]) -> torch.Tensor:
    """Stack [tiles_i, 3, h, w] images into [B, max tiles, 3, h, w] with zero tiles, as the
    processors pad a batch."""
    most = max(x.shape[0] for x in per_image)
    return torch.stack([F.pad(x, (0, 0, 0, 0, 0, 0, 0, most - x.shape[0])) for x in per_image])


def idefics3_tiles(image: torch.Tensor, ip: Any) -> torch.Tensor:
    """Idefics3 / SmolVLM for one image: [frames, 3, M, M] with M the processor's
    ``max_image_size``: the image resized to ``size["longest_edge"]`` (even sides), then to
    multiples of M, cut into M x M frames row by row, and itself resized to M x M as the last
    frame (an image no larger than M is one frame)."""
    import math

    height, width = image.shape[-2:]
    x = image
    r = getattr(ip, "resample", None)
    if getattr(ip, "do_resize", True) and ip.size.get("longest_edge"):
        longest = ip.size.get("longest_edge")
        if width >= height:
            h, w = int(longest / (width / height)), longest
            h += h % 2
        else:
            h, w = longest, int(longest * (width / height))
            w += w % 2
        x = resize(x, max(h, 1), max(w, 1), r)
    tile = ip.max_image_size["longest_edge"]
    if getattr(ip, "do_image_splitting", True):
        height, width = x.shape[-2:]
        aspect = width / height
        if width >= height:
            w = math.ceil(width / tile) * tile
            h = math.ceil(int(w / aspect) / tile) * tile
        else:
            h = math.ceil(height / tile) * tile
            w = math.ceil(int(h * aspect) / tile) * tile
        x = resize(x, h, w, r)
        if h > tile or w > tile:
            frames = [x[:, row * tile:(row + 1) * tile, col * tile:(col + 1) * tile]
                      for row in range((h - tile) // tile + 1) for col in range((w - tile) // tile + 1)]
            frames.append(resize(x, tile, tile, r))
        else:
            frames = [x]
    else:
        frames = [resize(x, tile, tile, r)]
    return torch.stack([normalize(f, ip) for f in frames])
