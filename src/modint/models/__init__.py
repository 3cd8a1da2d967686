"""One adapter over Hugging Face VLMs, family specs, tiny builders and model loading."""

from modint.models.adapter import EncodedBatch, Scored, VLMAdapter
from modint.models.loading import ModelLoadError, load_adapter

__all__ = ["EncodedBatch", "ModelLoadError", "Scored", "VLMAdapter", "load_adapter"]
