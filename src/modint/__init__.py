"""modint: diagnose and mitigate modality interference in multimodal LLMs.

    import modint

    adapter = modint.load_adapter("demo")
    samples = modint.load_benchmark("mini", split="test", limit=60)
    summary = modint.run_diagnosis(adapter, samples, "runs/demo")   # records, summary, report.html
    model_dir = modint.train(adapter, modint.load_benchmark("mini", split="train"), "runs/train")

The functions are defined in ``modint.api`` (imported on first use, so ``import modint`` and the
torch-free parts of the package stay light).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "attack", "load_adapter", "load_benchmark", "run_diagnosis", "train", "train_and_diagnose"]

if TYPE_CHECKING:
    from modint.api import attack, load_adapter, load_benchmark, run_diagnosis, train, train_and_diagnose


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("modint.api"), name)
    raise AttributeError(f"module 'modint' has no attribute {name!r}")
