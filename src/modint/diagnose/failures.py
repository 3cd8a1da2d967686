"""When a run's error records make it a failure (never a quiet success).

A condition fails a run when every one of its records is an error (a device or model defect
usually looks like this: the engine turns each exception into an error record), or when the
share of error records exceeds ``max_error_rate``. The rate is judged per (family, condition),
which also bounds the run's overall rate: a broken attack cannot hide among healthy conditions.
"""

from __future__ import annotations

from typing import Any, Iterable

# A few unreadable samples in a large benchmark are recorded and tolerated; beyond 1 in 20
# the figures no longer describe the benchmark that was asked for.
DEFAULT_MAX_ERROR_RATE = 0.05


def run_failure(records: Iterable[dict[str, Any]], max_error_rate: float = DEFAULT_MAX_ERROR_RATE) -> str | None:
    """One line saying why ``records`` are a failed run, or None. Fully failed conditions are
    named before conditions that are only above the rate; the line quotes the first error."""
    if not 0 <= max_error_rate <= 1:
        raise ValueError(f"max error rate must be between 0 and 1, got {max_error_rate}")
    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        groups.setdefault((rec.get("family"), rec.get("condition")), []).append(rec)
    worst = None
    for (family, condition), recs in groups.items():
        errors = [r for r in recs if r.get("error")]
        rate = len(errors) / len(recs)
        if errors and (rate == 1 or rate > max_error_rate):
            key = (rate == 1, rate)
            if worst is None or key > worst[0]:
                worst = (key, family, condition, recs, errors)
    if worst is None:
        return None
    (all_failed, rate), family, condition, recs, errors = worst
    first = " ".join(str(errors[0]["error"]).split())
    first = first if len(first) <= 300 else first[:297] + "..."
    if all_failed:
        return (f"every record of condition {condition} ({family}) is an error ({len(recs)} of {len(recs)}); "
                f"first: {first}")
    return (f"{len(errors)} of {len(recs)} records of condition {condition} ({family}) are errors ({rate:.1%}, above "
            f"the maximum error rate {max_error_rate:.1%}); first: {first}")
