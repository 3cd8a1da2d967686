"""Resolve ``--model`` (a built-in name, a local directory or a hub id) to a VLMAdapter."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch

from modint.models.adapter import VLMAdapter

log = logging.getLogger(__name__)

TINY_PREFIX = "tiny-random-"
DEMO_NAME = "demo"
DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"  # shipped inside the package
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded; the message says which and why."""


def resolve_dtype(dtype: str | None, device: str) -> torch.dtype:
    """``auto`` means fp32 on CPU (bf16 matmuls are ~100x slower there) and bf16 elsewhere."""
    if dtype in (None, "auto"):
        return torch.float32 if device == "cpu" else torch.bfloat16
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}") from None


def _load_processor(source: str, config, trust_remote_code: bool):
    from transformers import AutoProcessor

    from modint.models.specs import SPECS

    spec = SPECS.get(config.model_type)
    try:
        return AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (AttributeError, ImportError, OSError, ValueError) as exc:
        if spec is None or not spec.stand_in:
            raise
        log.info("%s: %s; using the stand-in processor", source, exc)
    import importlib

    module, _, name = spec.stand_in.rpartition(".")
    return getattr(importlib.import_module(module), name)(source, config)


def device_map_kwargs(device_map: str) -> dict:
    """from_pretrained arguments for ``--device-map``: a strategy name, or a JSON object mapping
    module names to devices; a map that sends modules to "disk" gets a temporary offload folder."""
    text = device_map.strip()
    if not text.startswith(("{", "[")):
        if text not in ("auto", "balanced", "balanced_low_0", "sequential"):
            raise ValueError(f"--device-map {device_map!r}: use auto, balanced, balanced_low_0, sequential or a JSON "
                             "object of module -> device")
        return {"device_map": text}
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--device-map is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError("--device-map JSON must be a non-empty object of module -> device")
    kwargs: dict = {"device_map": mapping}
    if "disk" in mapping.values():
        import tempfile

        kwargs["offload_folder"] = tempfile.mkdtemp(prefix="modint-offload-")
    return kwargs


def load_adapter(model: str, device: str = "cpu", dtype: str | None = "auto", device_map: str | None = None,
                 trust_remote_code: bool = False, seed: int = 0) -> VLMAdapter:
    """Load ``model``: ``tiny-random-FAMILY`` (built in memory), a local directory, or a hub id."""
    torch_dtype = resolve_dtype(dtype, device)
    if model == DEMO_NAME:
        if not (DEMO_DIR / "config.json").exists():
            raise ModelLoadError(f"the demo model is not installed at {DEMO_DIR} "
                                 "(train it with `modint zoo train-demo --out` that directory)")
        adapter = load_adapter(str(DEMO_DIR), device=device, dtype=dtype, device_map=device_map)
        adapter.name = DEMO_NAME
        return adapter
    if model.startswith(TINY_PREFIX):
        from modint.models.tiny import build_tiny

        family = model[len(TINY_PREFIX):].replace("-", "_") if model[len(TINY_PREFIX):] not in ("blip-2",) else "blip-2"
        try:
            hf_model, processor = build_tiny(family, seed=seed)
        except KeyError as exc:
            raise ModelLoadError(str(exc.args[0])) from None
        hf_model = hf_model.to(device=device, dtype=torch_dtype).eval()
        return VLMAdapter(hf_model, processor, name=model)

    path = Path(model).expanduser()
    if not path.is_dir() and not _HUB_ID.match(model):
        raise ModelLoadError(f"model {model!r}: no such directory, and not a hub id (owner/name)")
    if not path.is_dir() and os.environ.get("HF_HUB_OFFLINE") == "1":
        log.info("HF_HUB_OFFLINE=1: %s must already be in the local cache", model)
    from transformers import AutoConfig, AutoModelForImageTextToText

    source = str(path) if path.is_dir() else model
    placement = device_map_kwargs(device_map) if device_map else {}
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        processor = _load_processor(source, config, trust_remote_code)
        kwargs = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code, **placement}
        hf_model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"model {model!r}: cannot load ({first})") from None
    if not device_map:
        hf_model = hf_model.to(device)
    from modint.models.specs import SPECS

    if config.model_type not in SPECS:
        raise ModelLoadError(f"model {model!r}: family {config.model_type!r} is not supported "
                             f"(supported: {', '.join(sorted(SPECS))})")
    return VLMAdapter(hf_model.eval(), processor, name=model)
