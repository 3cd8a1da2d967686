"""Predictions made elsewhere (VLMEvalKit, lmms-eval, the published code, any harness) read as
answers of modint conditions, then scored like a ``--scoring generate`` run."""
