"""Check mitigated runs against the mitigation targets, all against the base model's
diagnosis on the same split at the same diagnosis seed (e.g. `make demo`'s runs/demo):

    python scripts/check_mitigation.py runs/demo runs/mit-s0/diagnosis runs/mit-s1/diagnosis ...

The figures and tables are `modint compare BASE RUN... --targets` (modint.report.targets):
misleading-text gap reduced by >= 70% and switched-image gap by >= 40% (mean over the runs),
image-heavy clean, text-heavy noise_image and VQA clean within 1 point of the base (mean change).
Exit status 0 when every target is met, 1 when one is missed, 2 on bad usage.
"""

import sys

from rich.console import Console

from modint.report.compare import RunError, compare_runs
from modint.report.targets import mitigation_targets, targets_tables


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        cmp = compare_runs(args)
    except RunError as exc:
        print(f"check_mitigation: {exc}", file=sys.stderr)
        return 2
    result = mitigation_targets(cmp)
    console = Console(width=140)
    for part in targets_tables(result, cmp.labels):
        console.print(part, highlight=False)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
