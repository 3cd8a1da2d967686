"""Numbers formatted for people, in one place: shares (0.153) as percent with one decimal, and
95% confidence intervals of shares."""

from __future__ import annotations

from typing import Any, Sequence

MISSING = "–"  # a figure that does not exist (no paired samples, no distractor, ...)


def percent(value: float | None, signed: bool = False, missing: str | None = MISSING, unit: str = "") -> str | None:
    """``0.153`` -> ``"15.3"`` (signed: ``"+15.3"``, for deltas), followed by ``unit``;
    ``missing`` when the value is None."""
    if value is None:
        return missing
    return f"{100 * value:+.1f}{unit}" if signed else f"{100 * value:.1f}{unit}"


def percent_ci(pair: Sequence[Any] | None, signed: bool = False, missing: str = "") -> str:
    """``(0.1, 0.25)`` -> ``"[10.0, 25.0]"`` (signed: ``"[+10.0, +25.0]"``); ``missing`` when
    there is no interval."""
    if not pair or len(pair) < 2 or pair[0] is None or pair[1] is None:
        return missing
    return f"[{percent(pair[0], signed)}, {percent(pair[1], signed)}]"
