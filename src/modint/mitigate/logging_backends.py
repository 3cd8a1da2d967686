"""Training logs where people look: TensorBoard and Weights & Biases, named as the Hugging Face
Trainer's ``report_to`` names them (``tensorboard``, ``wandb``, ``none``, or several comma-separated).

A logger receives each logged training step (every loss term, lr, grad norm, the PGD margin) as
scalars under ``train/``, and the final diagnosis figures under ``diagnosis/<family>/<condition>/``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol, Sequence

BACKENDS = ("tensorboard", "wandb")
# Fields of a train-log entry that are bookkeeping, not curves.
NOT_SCALARS = ("step", "epoch", "seconds")
DIAGNOSIS_FIGURES = ("accuracy", "delta", "flip_rate", "followed_distractor_rate", "multimodal_gain")


class TrainLogger(Protocol):
    def log_step(self, step: int, entry: dict[str, Any]) -> None: ...

    def log_diagnosis(self, summary: dict[str, Any], step: int) -> None: ...

    def close(self) -> None: ...


def step_scalars(entry: dict[str, Any]) -> dict[str, float]:
    """``train/<name>`` -> value for the numeric fields of a train-log entry."""
    return {f"train/{k}": float(v) for k, v in entry.items()
            if k not in NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v))}


def diagnosis_scalars(summary: dict[str, Any]) -> dict[str, float]:
    """``diagnosis/<family>/<condition>/<figure>`` -> value for each summary row."""
    out = {}
    for row in summary.get("conditions", []):
        for figure in DIAGNOSIS_FIGURES:
            value = row.get(figure)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"diagnosis/{row['family']}/{row['condition']}/{figure}"] = float(value)
    return out


class TensorBoardLogger:
    """Event files under ``log_dir`` (``tensorboard --logdir OUT/tensorboard``)."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("--report-to tensorboard needs the tensorboard package "
                             "(pip install 'modint[tensorboard]')") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_step(self, step: int, entry: dict[str, Any]) -> None:
        for tag, value in step_scalars(entry).items():
            self.writer.add_scalar(tag, value, step)

    def log_diagnosis(self, summary: dict[str, Any], step: int) -> None:
        for tag, value in diagnosis_scalars(summary).items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A wandb run in ``dir`` (``WANDB_MODE=offline`` keeps it on disk)."""

    def __init__(self, out_dir: str | Path, config: dict[str, Any] | None = None, project: str = "modint"):
        try:
            import wandb
        except ImportError:
            raise ValueError("--report-to wandb needs the wandb package (pip install 'modint[wandb]')") from None
        self.run = wandb.init(project=project, dir=str(out_dir), config=config or {})

    def log_step(self, step: int, entry: dict[str, Any]) -> None:
        self.run.log(step_scalars(entry), step=step)

    def log_diagnosis(self, summary: dict[str, Any], step: int) -> None:
        self.run.log(diagnosis_scalars(summary), step=step)

    def close(self) -> None:
        self.run.finish()


class MultiLogger:
    def __init__(self, loggers: Sequence[TrainLogger]):
        self.loggers = list(loggers)

    def log_step(self, step: int, entry: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_step(step, entry)

    def log_diagnosis(self, summary: dict[str, Any], step: int) -> None:
        for logger in self.loggers:
            logger.log_diagnosis(summary, step)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def last_logged_step(out_dir: str | Path) -> int:
    """The last step in OUT/train_log.jsonl (where the diagnosis figures are placed), 0 if none."""
    import json

    path = Path(out_dir) / "train_log.jsonl"
    lines = [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return int(json.loads(lines[-1])["step"]) if lines else 0


def parse_report_to(value: str | None) -> list[str]:
    """``tensorboard,wandb`` -> the backends; ``none`` or empty -> []; ``all`` -> every backend."""
    names = [v.strip().lower() for v in (value or "none").split(",") if v.strip()]
    if names in (["none"], []):
        return []
    if names == ["all"]:
        return list(BACKENDS)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown --report-to {', '.join(unknown)} (use tensorboard, wandb, all or none)")
    return list(dict.fromkeys(names))


def make_logger(report_to: str | None, out_dir: str | Path, config: dict[str, Any] | None = None
                ) -> MultiLogger | None:
    """The loggers ``report_to`` names, writing under ``out_dir`` (TensorBoard: OUT/tensorboard,
    wandb: OUT/wandb); None for ``none``. ValueError for an unknown name or a missing package."""
    names = parse_report_to(report_to)
    if not names:
        return None
    loggers: list[TrainLogger] = []
    for name in names:
        if name == "tensorboard":
            loggers.append(TensorBoardLogger(Path(out_dir) / "tensorboard"))
        else:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            loggers.append(WandbLogger(out_dir, config))
    return MultiLogger(loggers)
