"""Several runs side by side: accuracy per (family, condition) per run, and for each later run
against the first an exact McNemar test on the records they share, paired by (id, condition).

Accuracy counts non-error records; the paired test uses the (id, condition) pairs that are
non-error in both runs: b = right in the first run and wrong in the later one, c = the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from modint.diagnose.metrics import family_key, mcnemar_exact_p, wilson_ci
from modint.report import svg
from modint.report.html import radar_label
from modint.report.load import Run, RunError, load_run
from modint.report.page import page
from modint.report.svg import esc

ALPHA = 0.05


@dataclass
class Paired:
    """A paired comparison of a later run with the first one."""

    n: int = 0
    b: int = 0  # right in the first run, wrong in this one
    c: int = 0  # wrong in the first run, right in this one
    acc_first: float | None = None
    acc_this: float | None = None

    @property
    def p(self) -> float:
        return mcnemar_exact_p(self.b, self.c)

    @property
    def significant(self) -> bool:
        return self.n > 0 and self.p < ALPHA

    @property
    def delta(self) -> float | None:
        return None if not self.n else (self.c - self.b) / self.n


@dataclass
class Comparison:
    runs: list[Run]
    labels: list[str]
    keys: list[tuple[str, str]]
    # (family, condition) -> per run (k correct, n) over non-error records; None where absent
    counts: dict[tuple[str, str], list[tuple[int, int] | None]]
    # per later run (index 1..): overall and per (family, condition)
    overall: list[Paired] = field(default_factory=list)
    per_key: list[dict[tuple[str, str], Paired]] = field(default_factory=list)
    # per (family, attack space) that any run attacked: the curves side by side, see _robustness
    robustness: list[dict] = field(default_factory=list)

    def accuracy(self, key: tuple[str, str], run: int) -> float | None:
        kn = self.counts[key][run]
        return None if kn is None or kn[1] == 0 else kn[0] / kn[1]


def _labels(runs: Sequence[Run]) -> list[str]:
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{i + 1}:{lab}" for i, lab in enumerate(labels)]
    return labels


def _condition_key(name: str) -> tuple:
    from modint.perturb import condition_rank

    try:
        return (0, *condition_rank(name), name)
    except KeyError:
        return (1, 0, 0.0, name)


def _ok(records: Sequence[dict]) -> dict[tuple[str, str], dict]:
    """(id, condition) -> non-error record."""
    return {(str(r.get("id")), str(r.get("condition"))): r for r in records if not r.get("error")}


def _paired(first: dict, later: dict, keys: set) -> Paired:
    out = Paired(n=len(keys))
    right_first = right_later = 0
    for k in keys:
        a, b = bool(first[k].get("correct")), bool(later[k].get("correct"))
        right_first += a
        right_later += b
        out.b += a and not b
        out.c += b and not a
    if keys:
        out.acc_first, out.acc_this = right_first / len(keys), right_later / len(keys)
    return out


def compare_runs(paths: Sequence[str | Path]) -> Comparison:
    """Load the runs (RunError naming a path that is not a run directory) and compare them."""
    if len(paths) < 2:
        raise RunError("compare needs at least two run directories")
    runs = [load_run(p) for p in paths]
    families: dict[tuple[str, str], None] = {}
    for run in runs:
        for r in run.records:
            families[(str(r.get("family")), str(r.get("condition")))] = None
    keys = sorted(families, key=lambda fc: (family_key(fc[0]), _condition_key(fc[1])))
    counts: dict[tuple[str, str], list[tuple[int, int] | None]] = {k: [None] * len(runs) for k in keys}
    oks = [_ok(run.records) for run in runs]
    family_of = {}
    for i, run in enumerate(runs):
        for r in run.records:
            family_of[(str(r.get("id")), str(r.get("condition")))] = str(r.get("family"))
            key = (str(r.get("family")), str(r.get("condition")))
            k, n = counts[key][i] or (0, 0)
            if not r.get("error"):
                k, n = k + bool(r.get("correct")), n + 1
            counts[key][i] = (k, n)
    cmp = Comparison(runs, _labels(runs), keys, counts)
    for later in oks[1:]:
        shared = set(oks[0]) & set(later)
        cmp.overall.append(_paired(oks[0], later, shared))
        by_key: dict[tuple[str, str], set] = {}
        for idc in shared:
            by_key.setdefault((family_of[idc], idc[1]), set()).add(idc)
        cmp.per_key.append({k: _paired(oks[0], later, ids) for k, ids in by_key.items()})
    cmp.robustness = _robustness(runs, oks)
    return cmp


def _robustness(runs: Sequence[Run], oks: list[dict]) -> list[dict]:
    """Per (family, space) in any run's summary["robustness"]: the union of eps values, each
    run's accuracy there (None where it did not attack at that eps), and per later run a paired
    test against the first over all attacked records (eps > 0) the two share: is it more robust?"""
    curves: dict[tuple[str, str], dict] = {}
    for i, run in enumerate(runs):
        for c in (run.summary or {}).get("robustness") or []:
            entry = curves.setdefault((str(c.get("family")), str(c.get("space"))),
                                      {"family": c.get("family"), "space": c.get("space"),
                                       "eps_unit": c.get("eps_unit") or "", "by_run": [{} for _ in runs]})
            for p in c.get("points") or []:
                entry["by_run"][i][float(p["eps"])] = p.get("accuracy")
    out = []
    for (family, space), entry in sorted(curves.items(), key=lambda kv: (family_key(kv[0][0]), kv[0][1])):
        eps = sorted({e for run in entry["by_run"] for e in run})
        attacked = [{k for k, r in ok.items() if str(r.get("family")) == family and r.get("attack_space") == space
                     and float(r.get("eps") or 0) > 0} for ok in oks]
        paired = [_paired(oks[0], oks[i], attacked[0] & attacked[i]) for i in range(1, len(runs))]
        out.append({"family": family, "space": space, "eps_unit": entry["eps_unit"], "eps": eps,
                    "accuracy": [[run.get(e) for e in eps] for run in entry["by_run"]], "paired": paired})
    return out


def robustness_verdict(curve: dict, labels: Sequence[str], i: int) -> str:
    """One line: run i against the first on one curve (i >= 1)."""
    p = curve["paired"][i - 1]
    where = f"{curve['family']} · {curve['space']} space"
    if not p.n:
        return f"{where}: {labels[i]} and {labels[0]} share no attacked records (eps > 0)"
    if p.significant:
        verdict = f"{labels[i]} is {'more' if p.delta > 0 else 'less'} robust than {labels[0]}"
    else:
        verdict = f"{labels[i]} and {labels[0]} are not significantly different in robustness"
    return (f"{where}: {verdict} under attack (eps > 0, n={p.n}): accuracy "
            f"{100 * p.acc_first:.1f}% -> {100 * p.acc_this:.1f}% ({100 * p.delta:+.1f} points, b={p.b} c={p.c}, "
            f"McNemar p={p.p:.3g})")


def _acc_text(cmp: Comparison, key: tuple[str, str], i: int) -> str:
    acc = cmp.accuracy(key, i)
    return "–" if acc is None else f"{100 * acc:.1f} (n={cmp.counts[key][i][1]})"


def _paired_text(p: Paired | None) -> str:
    if p is None or not p.n:
        return "–"
    return f"{100 * p.delta:+.1f} p={p.p:.3g}" + (" *" if p.significant else "")


def comparison_table(cmp: Comparison):
    """A rich Table: accuracy % per run, and per later run its paired change against the first
    (points) with the McNemar p (* marks p < 0.05)."""
    from rich.table import Table

    table = Table(title="accuracy % (n) per run; later runs vs the first: paired change in points, exact "
                        "McNemar p (* p < 0.05)")
    table.add_column("family")
    table.add_column("condition")
    for i, label in enumerate(cmp.labels):
        table.add_column(label, justify="right")
        if i:
            table.add_column(f"{label} vs {cmp.labels[0]}", justify="right")
    for key in cmp.keys:
        cells = [key[0], key[1]]
        for i in range(len(cmp.runs)):
            cells.append(_acc_text(cmp, key, i))
            if i:
                cells.append(_paired_text(cmp.per_key[i - 1].get(key)))
        table.add_row(*cells)
    total = ["all", "shared records"]
    for i in range(len(cmp.runs)):
        if i == 0:
            total.append("")
        else:
            p = cmp.overall[i - 1]
            total.append(f"n={p.n} b={p.b} c={p.c}")
            total.append(_paired_text(p))
    table.add_row(*total, style="bold")
    return table


def render_comparison(cmp: Comparison) -> str:
    """The comparison as one self-contained HTML page (radar overlay and table)."""
    radar = svg.radar([radar_label(f, c) for f, c in cmp.keys],
                      [(label, [cmp.accuracy(k, i) for k in cmp.keys]) for i, label in enumerate(cmp.labels)])
    head = "<tr><th class=l>family</th><th class=l>condition</th>"
    for i, label in enumerate(cmp.labels):
        head += f"<th>{esc(label)}<br>accuracy % [95% CI]</th>"
        if i:
            head += f"<th>{esc(label)} vs {esc(cmp.labels[0])}<br>paired Δ pts · b / c · McNemar p</th>"
    head += "</tr>"

    def paired_cells(p: Paired | None) -> str:
        if p is None or not p.n:
            return "<td>–</td>"
        cls = "neg" if p.delta < 0 else "pos" if p.delta > 0 else ""
        sig = " sig" if p.significant else ""
        mark = " *" if p.significant else ""
        return (f'<td class="{cls}{sig}">{100 * p.delta:+.1f} · {p.b} / {p.c} · p = {p.p:.3g}{mark}</td>')

    rows = []
    for key in cmp.keys:
        cells = f"<td class=l>{esc(key[0])}</td><td class=l>{esc(key[1])}</td>"
        for i in range(len(cmp.runs)):
            kn = cmp.counts[key][i]
            if kn is None or not kn[1]:
                cells += "<td>–</td>"
            else:
                lo, hi = wilson_ci(*kn)
                cells += f"<td>{100 * kn[0] / kn[1]:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]</td>"
            if i:
                cells += paired_cells(cmp.per_key[i - 1].get(key))
        rows.append(f"<tr>{cells}</tr>")
    total = "<td class=l><b>all</b></td><td class=l>shared (id, condition) records</td>"
    for i in range(len(cmp.runs)):
        total += "<td></td>" if i == 0 else f"<td>n = {cmp.overall[i - 1].n}</td>" + paired_cells(cmp.overall[i - 1])
    rows.append(f'<tr class="total" id="overall">{total}</tr>')
    runs = "".join(
        f"<li><b>{esc(label)}</b>: {esc(run.path)} · model {esc((run.summary or {}).get('model'))} · "
        f"{len(run.records)} records</li>" for label, run in zip(cmp.labels, cmp.runs))
    body = (f'<section id="runs"><h2>Runs</h2><ul>{runs}</ul>'
            '<p class="muted">Paired figures use the (id, condition) records present without error in both runs: b '
            'counts those right in the first run and wrong in the later one, c the reverse; the exact McNemar test '
            'is two-sided, * marks p &lt; 0.05.</p></section>'
            f'<section id="radar"><h2>Accuracy over all conditions</h2>{radar}</section>'
            f'<section id="table"><h2>Accuracy per run</h2><div class="scroll"><table class="data">{head}'
            f'{"".join(rows)}</table></div></section>')
    nav = [("runs", "Runs"), ("radar", "Radar"), ("table", "Table")]
    if cmp.robustness:
        cards = []
        for c in cmp.robustness:
            unit = c["eps_unit"]
            cards.append('<div class="card">' + svg.line_plot(
                c["eps"], [(label, acc) for label, acc in zip(cmp.labels, c["accuracy"])],
                f"{c['family']} · {c['space']} space: accuracy", f"eps ({unit})" if unit else "eps") + "</div>")
        verdicts = "".join(f"<li>{esc(robustness_verdict(c, cmp.labels, i))}</li>"
                           for c in cmp.robustness for i in range(1, len(cmp.runs)))
        body += (f'<section id="robustness"><h2>Robustness curves</h2><p class="muted">Accuracy under PGD on the '
                 f'irrelevant modality against eps, one line per run; the verdict pairs the attacked records '
                 f'(eps &gt; 0) the runs share.</p><ul>{verdicts}</ul><div class="cards">{"".join(cards)}</div>'
                 '</section>')
        nav.append(("robustness", "Robustness"))
    title = "modint comparison: " + " vs ".join(cmp.labels)
    return page(title, f"{len(cmp.runs)} runs", nav, body)


def write_comparison(cmp: Comparison, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_comparison(cmp), encoding="utf-8")
    return target


__all__ = ["Comparison", "Paired", "RunError", "compare_runs", "comparison_table", "render_comparison",
           "robustness_verdict", "write_comparison"]
