"""Choosing the weights to keep by a val criterion, never by test.

With ``--select-on-val``, ``modint train`` diagnoses the val split at every checkpoint and after
the last step; the weights with the highest score are the ones saved (and then diagnosed on
test, once). Criteria, computed from the val diagnosis's summary:

- ``worst_case`` (default): the mean over families of the worst-case accuracy (the fraction of
  samples right under EVERY condition of their family). It rises when a perturbed condition
  stops costing answers and falls when a reference does, so it rewards closing the gaps without
  giving up the clean answers.
- ``mean``: the mean accuracy over every family x condition row.

Ties go to the later step. The selector keeps a CPU copy of the trainable weights of the best
step so far (LoRA: the adapters only) in OUT/selection/best.pt, and the score of every step in
OUT/selection/selection.json, so an interrupted run resumes with its selection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

CRITERIA = ("worst_case", "mean")


def val_score(summary: dict[str, Any], criterion: str = "worst_case") -> float:
    """The criterion's value for one val diagnosis (a summary.json); a missing figure counts 0."""
    if criterion == "worst_case":
        values = [f.get("worst_case_accuracy") or 0.0 for f in summary.get("families", [])]
    elif criterion == "mean":
        values = [r.get("accuracy") or 0.0 for r in summary.get("conditions", [])]
    else:
        raise ValueError(f"unknown selection criterion {criterion!r}; use one of {', '.join(CRITERIA)}")
    if not values:
        raise ValueError("the val diagnosis has no rows to score")
    return sum(values) / len(values)


class CheckpointSelector:
    """Scores the weights at the steps ``train`` hands it and restores the best ones.

    ``evaluate(step)`` diagnoses the current weights (the model is in eval mode) and returns the
    summary; ``folder`` keeps the selection's state."""

    def __init__(self, evaluate: Callable[[int], dict[str, Any]], folder: str | Path, criterion: str = "worst_case",
                 resume: bool = False):
        if criterion not in CRITERIA:
            raise ValueError(f"unknown selection criterion {criterion!r}; use one of {', '.join(CRITERIA)}")
        self.evaluate = evaluate
        self.criterion = criterion
        self.folder = Path(folder)
        self.history: list[dict[str, Any]] = []
        log = self.folder / "selection.json"
        if resume and log.exists():
            self.history = json.loads(log.read_text())["steps"]
        elif log.exists():  # a fresh run: a stale selection would mix two runs
            log.unlink()
            (self.folder / "best.pt").unlink(missing_ok=True)

    @property
    def best(self) -> dict[str, Any] | None:
        """The best step so far (the later one of equal scores)."""
        best = None
        for entry in self.history:
            if best is None or entry["score"] >= best["score"]:
                best = entry
        return best

    def consider(self, adapter: Any, step: int) -> dict[str, Any]:
        """Diagnose the current weights, record their score, keep them if they are the best."""
        model = adapter.model
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                summary = self.evaluate(step)
        finally:
            model.train(training)
        entry = {"step": step, "score": val_score(summary, self.criterion)}
        self.history = [e for e in self.history if e["step"] != step] + [entry]
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.best is entry:
            state = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}
            tmp = self.folder / "best.pt.tmp"
            torch.save({"step": step, "params": state}, tmp)
            tmp.replace(self.folder / "best.pt")
        self._write()
        return entry

    def restore(self, adapter: Any) -> int:
        """Load the best step's trainable weights into ``adapter.model`` (nothing to do when the
        best is the step last considered); returns the selected step."""
        best = self.best
        if best is None:
            raise ValueError("no step was scored on val")
        if best is not self.history[-1]:
            state = torch.load(self.folder / "best.pt", weights_only=True)  # tensors and an int: no code
            if state["step"] != best["step"]:
                raise ValueError(f"{self.folder / 'best.pt'} holds step {state['step']}, not the best step "
                                 f"{best['step']}: the selection was interrupted; train again without --resume")
            adapter.model.load_state_dict(state["params"], strict=False)
        self._write(selected=best["step"])
        return best["step"]

    def _write(self, selected: int | None = None) -> None:
        payload = {"criterion": self.criterion, "steps": self.history, "selected_step": selected}
        (self.folder / "selection.json").write_text(json.dumps(payload, indent=1))
