"""What every command shares: the consoles, the common options, and the one-line errors."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# A table piped to a file or a CI log should not wrap into unreadable columns.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)

DEFAULT_MODEL = "demo"

# Options every model-loading command shares (typer accepts one OptionInfo as several defaults).
LIMIT_OPTION = typer.Option(None, min=1, help="At most this many samples, spread over families.")
DEVICE_OPTION = typer.Option("cpu", help="cpu, cuda, cuda:1, mps ...")
DTYPE_OPTION = typer.Option("auto", help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16.")
DEVICE_MAP_OPTION = typer.Option(None, help="Spread a model larger than one device: auto, balanced, sequential, or a "
                                 "JSON map of modules to devices ('{\"model.language_model\": \"disk\", ...}'; "
                                 "'disk' offloads to a temporary folder).")
REMOTE_CODE_OPTION = typer.Option(False, help="Allow model code from the checkpoint (off by default).")
SHARE_OPTION = typer.Option(True, "--share/--no-share", help="Letter scoring: compute each shared prompt prefix "
                            "(header + image) once and run only the rest; --no-share: one full forward per input "
                            "(the reference path).")
MAX_ERROR_RATE_OPTION = typer.Option(0.05, min=0.0, max=1.0, help="Exit 1 when a condition has more error records "
                                     "than this share (or all of them); the records stay and a re-run resumes.")


def usage_error(message: str) -> None:
    """One clear line on stderr and exit code 2: the user asked for something that isn't there."""
    print(f"modint: error: {message}", file=sys.stderr)  # one line, never wrapped
    raise typer.Exit(2)


@contextmanager
def usage_errors(*also: type[Exception]) -> Iterator[None]:
    """A bad name or value met inside (KeyError, ValueError, and ``also``: an unknown benchmark,
    split, condition or format, a file that cannot be read) becomes a usage error."""
    try:
        yield
    except (KeyError, ValueError, *also) as exc:
        usage_error(str(exc.args[0]) if exc.args else str(exc))  # a KeyError's str() would add quotes


def failure(message: str) -> None:
    print(f"modint: failed: {message}", file=sys.stderr)
    raise typer.Exit(1)


def split_list(value: Optional[str]) -> Optional[list[str]]:
    if value is None or value.strip() in ("", "all"):
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def progress_bar() -> Progress:
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False,
                    disable=not err.is_terminal and os.environ.get("MODINT_PROGRESS") != "1")


def claim(out_dir: Path):
    """Hold --out for this process from the start, so that a second writer is refused at once
    (before a model loads); each rank of `accelerate launch` holds its own part."""
    from modint.diagnose.rundir import RunLock

    rank = int(os.environ.get("RANK", "0") or 0)
    return RunLock(out_dir, "" if rank == 0 else f"rank{rank}")
