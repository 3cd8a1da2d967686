"""Mitigation: the paper's fine-tuning framework (views, modality-masked PGD, consistency)."""
