"""modint: diagnose and mitigate modality interference in multimodal LLMs."""

__version__ = "0.1.0"
