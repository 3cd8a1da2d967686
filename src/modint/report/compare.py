"""Several runs side by side: accuracy per (family, condition) per run, and for each later run
against the first an exact McNemar test on the records they share, paired by (id, condition).

Accuracy counts non-error records; the paired test uses the (id, condition) pairs that are
non-error in both runs: b = right in the first run and wrong in the later one, c = the reverse.

Robustness (attack sweeps) is tested per eps, over samples, and never over pooled eps x sample
pairs: a sample's records at different eps are not independent (a sweep carries the strongest
outcome over to larger eps, ``found_at_eps``). The eps > 0 tests of one curve are one family,
Holm-corrected; the overall "all" row leaves attack records out for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from modint.diagnose.metrics import EPS_UNITS, family_key, mcnemar_exact_p, wilson_ci
from modint.report import svg
from modint.report.compare_reliance import reliance_changes, reliance_html
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
    p_holm: float | None = None  # Holm-adjusted p where the test is one of a family (an attack's eps > 0)

    @property
    def p(self) -> float:
        return mcnemar_exact_p(self.b, self.c)

    @property
    def significant(self) -> bool:
        return self.n > 0 and (self.p if self.p_holm is None else self.p_holm) < ALPHA

    @property
    def delta(self) -> float | None:
        return None if not self.n else (self.c - self.b) / self.n


@dataclass
class EpsTest:
    """One eps of a sweep, later run vs the first: the paired test over the samples attacked at
    that eps in both (the same object as the main table's row for the condition)."""

    eps: float
    condition: str
    paired: Paired


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest of m is multiplied
    by m - i + 1, then made non-decreasing in that order and capped at 1. It controls the
    family-wise error rate under any dependence between the tests (a sweep's eps are dependent)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [1.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


@dataclass
class Comparison:
    runs: list[Run]
    labels: list[str]
    keys: list[tuple[str, str]]
    # (family, condition) -> per run (k correct, n) over non-error records; None where absent
    counts: dict[tuple[str, str], list[tuple[int, int] | None]]
    # per later run (index 1..): overall (attack conditions left out) and per (family, condition)
    overall: list[Paired] = field(default_factory=list)
    per_key: list[dict[tuple[str, str], Paired]] = field(default_factory=list)
    # per (family, attack space) that any run attacked: the curves side by side, see _robustness
    robustness: list[dict] = field(default_factory=list)
    attack_conditions: set[str] = field(default_factory=set)  # condition names with attack records
    reliance: list[dict] = field(default_factory=list)  # see modint.report.compare_reliance

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
    cmp.attack_conditions = {cond for ok in oks for (_, cond), r in ok.items() if r.get("attack_space") is not None}
    for later in oks[1:]:
        shared = set(oks[0]) & set(later)
        cmp.overall.append(_paired(oks[0], later, {k for k in shared if k[1] not in cmp.attack_conditions}))
        by_key: dict[tuple[str, str], set] = {}
        for idc in shared:
            by_key.setdefault((family_of[idc], idc[1]), set()).add(idc)
        cmp.per_key.append({k: _paired(oks[0], later, ids) for k, ids in by_key.items()})
    cmp.robustness = _robustness(cmp, oks)
    cmp.reliance = reliance_changes([run.records for run in runs])
    return cmp


def _robustness(cmp: Comparison, oks: list[dict]) -> list[dict]:
    """Per (family, space) that any run attacked: its conditions in increasing eps, each run's
    accuracy there (None where it did not attack at that eps) and, per later run, one ``EpsTest``
    per condition. The eps > 0 tests with shared samples are Holm-corrected together; their
    adjusted p lands on the main table's rows too."""
    sweeps: dict[tuple[str, str], dict[str, float]] = {}
    for ok in oks:
        for (_, cond), r in ok.items():
            if r.get("attack_space") is not None:
                sweep = sweeps.setdefault((str(r.get("family")), str(r["attack_space"])), {})
                sweep.setdefault(cond, float(r.get("eps") or 0))
    out = []
    for (family, space), sweep in sorted(sweeps.items(), key=lambda kv: (family_key(kv[0][0]), kv[0][1])):
        conditions = sorted(sweep, key=lambda c: (sweep[c], _condition_key(c)))
        per_eps = []
        for by_key in cmp.per_key:
            tests = [EpsTest(sweep[c], c, by_key.get((family, c)) or Paired()) for c in conditions]
            family_of_tests = [t.paired for t in tests if t.eps > 0 and t.paired.n]
            for paired, adjusted in zip(family_of_tests, holm_adjust([p.p for p in family_of_tests])):
                paired.p_holm = adjusted
            per_eps.append(tests)
        out.append({"family": family, "space": space, "eps_unit": EPS_UNITS.get(space, ""),
                    "eps": [sweep[c] for c in conditions], "conditions": conditions,
                    "accuracy": [[cmp.accuracy((family, c), i) for c in conditions] for i in range(len(cmp.runs))],
                    "per_eps": per_eps})
    return out


def _eps_text(tests: Sequence[EpsTest]) -> str:
    return ", ".join(f"{t.eps:g}" for t in tests)


def robustness_verdict(curve: dict, labels: Sequence[str], i: int) -> str:
    """One line: run i against the first on one curve (i >= 1), from its per-eps tests."""
    tests = [t for t in curve["per_eps"][i - 1] if t.eps > 0 and t.paired.n]
    where = f"{curve['family']} · {curve['space']} space"
    if not tests:
        return f"{where}: {labels[i]} and {labels[0]} share no attacked records (eps > 0)"
    more = [t for t in tests if t.paired.significant and t.paired.delta > 0]
    less = [t for t in tests if t.paired.significant and t.paired.delta < 0]

    def at(found: list[EpsTest]) -> str:
        return f"at eps {_eps_text(found)} (Holm p {', '.join(f'{t.paired.p_holm:.3g}' for t in found)})"

    if more and less:
        verdict = f"{labels[i]} against {labels[0]}: more robust {at(more)} and less robust {at(less)}"
    elif more or less:
        verdict = f"{labels[i]} is {'more' if more else 'less'} robust than {labels[0]} {at(more or less)}"
    else:
        best = min(tests, key=lambda t: (t.paired.p_holm, t.paired.p))
        where_best = f", at eps {best.eps:g}" if best.paired.p_holm < 1 else ""
        verdict = (f"{labels[i]} and {labels[0]} are not significantly different in robustness at any eps > 0 "
                   f"(smallest Holm p {best.paired.p_holm:.3g}{where_best})")
    first = sum(t.paired.acc_first for t in tests) / len(tests)
    this = sum(t.paired.acc_this for t in tests) / len(tests)
    return (f"{where}: {verdict}; exact McNemar over samples per eps, Holm over {len(tests)} eps; "
            f"accuracy averaged over those eps {100 * first:.1f}% -> {100 * this:.1f}%")


def per_eps_table(cmp: Comparison):
    """A rich Table: per curve, later run and eps, the paired accuracies on the samples attacked
    in both runs, the discordant counts, the exact McNemar p and the Holm-adjusted p."""
    from rich.table import Table

    table = Table(title="robustness per eps: later runs vs the first on the samples attacked in both; exact McNemar "
                        "over samples, Holm over each curve's eps > 0 (* Holm p < 0.05)")
    for name in ("family", "space", "runs", "eps", "n", "acc first %", "acc later %", "b", "c", "p", "Holm p"):
        table.add_column(name, justify="left" if name in ("family", "space", "runs") else "right")
    for curve in cmp.robustness:
        for i, tests in enumerate(curve["per_eps"], start=1):
            for t in tests:
                p = t.paired
                cells = [curve["family"], curve["space"], f"{cmp.labels[i]} vs {cmp.labels[0]}", f"{t.eps:g}",
                         str(p.n)]
                if not p.n:
                    table.add_row(*cells, *["–"] * 6)
                    continue
                holm = "–" if p.p_holm is None else f"{p.p_holm:.3g}" + (" *" if p.significant else "")
                table.add_row(*cells, f"{100 * p.acc_first:.1f}", f"{100 * p.acc_this:.1f}", str(p.b), str(p.c),
                              f"{p.p:.3g}", holm)
    return table


def _acc_text(cmp: Comparison, key: tuple[str, str], i: int) -> str:
    acc = cmp.accuracy(key, i)
    return "–" if acc is None else f"{100 * acc:.1f} (n={cmp.counts[key][i][1]})"


def _paired_text(p: Paired | None) -> str:
    if p is None or not p.n:
        return "–"
    holm = "" if p.p_holm is None else f" Holm={p.p_holm:.3g}"
    return f"{100 * p.delta:+.1f} p={p.p:.3g}{holm}" + (" *" if p.significant else "")


def _overall_label(cmp: Comparison) -> str:
    return "shared records, no attacks" if cmp.attack_conditions else "shared records"


def comparison_table(cmp: Comparison):
    """A rich Table: accuracy % per run, and per later run its paired change against the first
    (points) with the McNemar p (* marks p < 0.05)."""
    from rich.table import Table

    table = Table(title="accuracy % (n) per run; later runs vs the first: paired change in points, exact "
                        "McNemar p (* p < 0.05; attacks at eps > 0: Holm-adjusted over the eps, Holm p < 0.05)")
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
    total = ["all", _overall_label(cmp)]
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
        holm = "" if p.p_holm is None else f" · Holm p = {p.p_holm:.3g}"
        return (f'<td class="{cls}{sig}">{100 * p.delta:+.1f} · {p.b} / {p.c} · p = {p.p:.3g}{holm}{mark}</td>')

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
    total = ("<td class=l><b>all</b></td><td class=l>shared (id, condition) records"
             f"{', attacks left out (see Robustness)' if cmp.attack_conditions else ''}</td>")
    for i in range(len(cmp.runs)):
        total += "<td></td>" if i == 0 else f"<td>n = {cmp.overall[i - 1].n}</td>" + paired_cells(cmp.overall[i - 1])
    rows.append(f'<tr class="total" id="overall">{total}</tr>')
    runs = "".join(
        f"<li><b>{esc(label)}</b>: {esc(run.path)} · model {esc((run.summary or {}).get('model'))} · "
        f"{len(run.records)} records</li>" for label, run in zip(cmp.labels, cmp.runs))
    body = (f'<section id="runs"><h2>Runs</h2><ul>{runs}</ul>'
            '<p class="muted">Paired figures use the (id, condition) records present without error in both runs: b '
            'counts those right in the first run and wrong in the later one, c the reverse; the exact McNemar test '
            'is two-sided, * marks p &lt; 0.05. An attack condition at eps &gt; 0 is one test of its sweep: its * '
            'uses the Holm-adjusted p over the sweep\'s eps, and the "all" row leaves attacks out.</p></section>'
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
                 f'irrelevant modality against eps, one line per run. Each eps is tested on its own, pairing the '
                 f'samples attacked at that eps in both runs (exact McNemar), and the eps &gt; 0 of a curve are '
                 f'Holm-corrected together: pooling eps x samples would count one sample several times.</p>'
                 f'<ul>{verdicts}</ul><div class="cards">{"".join(cards)}</div>{_per_eps_html(cmp)}</section>')
        nav.append(("robustness", "Robustness"))
    if cmp.reliance:
        body += f'<section id="reliance"><h2>Reliance</h2>{reliance_html(cmp.reliance, cmp.labels)}</section>'
        nav.append(("reliance", "Reliance"))
    title = "modint comparison: " + " vs ".join(cmp.labels)
    return page(title, f"{len(cmp.runs)} runs", nav, body)


def _per_eps_html(cmp: Comparison) -> str:
    head = ("<tr><th class=l>family</th><th class=l>space</th><th class=l>runs</th><th>eps</th><th>n</th>"
            "<th>accuracy % first</th><th>accuracy % later</th><th>b / c</th><th>McNemar p</th><th>Holm p</th></tr>")
    rows = []
    for curve in cmp.robustness:
        for i, tests in enumerate(curve["per_eps"], start=1):
            for t in tests:
                p = t.paired
                cells = (f"<td class=l>{esc(curve['family'])}</td><td class=l>{esc(curve['space'])}</td>"
                         f"<td class=l>{esc(cmp.labels[i])} vs {esc(cmp.labels[0])}</td><td>{t.eps:g}</td><td>{p.n}</td>")
                if not p.n:
                    cells += "<td>–</td>" * 5
                else:
                    holm = "–" if p.p_holm is None else f"{p.p_holm:.3g}" + (" *" if p.significant else "")
                    cls = " class=sig" if p.significant else ""
                    cells += (f"<td>{100 * p.acc_first:.1f}</td><td>{100 * p.acc_this:.1f}</td><td>{p.b} / {p.c}</td>"
                              f"<td>{p.p:.3g}</td><td{cls}>{holm}</td>")
                rows.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table class="data" id="per-eps">{head}{"".join(rows)}</table></div>'


def write_comparison(cmp: Comparison, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_comparison(cmp), encoding="utf-8")
    return target


__all__ = ["Comparison", "EpsTest", "Paired", "RunError", "compare_runs", "comparison_table", "holm_adjust",
           "per_eps_table", "render_comparison", "robustness_verdict", "write_comparison"]
