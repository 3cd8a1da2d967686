"""A single self-contained report.html per run directory: no network, every text escaped.

Sections: the headline (the strongest interference found), accuracy and paired delta per family
(SVG bars with 95% CI whiskers), a radar of accuracy over all conditions, flip matrices, the
distribution of the gold option's probability shift, robustness curves (when the run has
adversarial conditions), the summary table, and the per-sample browser (``browser``).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from modint.diagnose import rundir
from modint.diagnose.metrics import family_key
from modint.report import svg
from modint.report.browser import MAX_THUMBS, browser_data, browser_section
from modint.report.format import percent, percent_ci
from modint.report.gain import gain_html
from modint.report.reliance import panel_html as reliance_panel
from modint.report.page import json_block, page
from modint.report.script import BROWSER_JS
from modint.report.svg import esc
from modint.report.rows import index_records, task_rows

log = logging.getLogger(__name__)

HIST_BINS = 20
HIST_RANGE = (-1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Figures computed from the records


def references(summary: dict[str, Any] | None, manifest: dict[str, Any] | None = None) -> dict[str, str]:
    """Each family's reference condition: the summary's reference rows, else the run's config,
    else the library default."""
    from modint.perturb import REFERENCE_CONDITION

    refs = dict(REFERENCE_CONDITION)
    refs.update(((manifest or {}).get("config") or {}).get("reference") or {})
    for row in (summary or {}).get("conditions", []):
        if row.get("is_reference"):
            refs[str(row["family"])] = str(row["condition"])
    return refs


def _pairs(records: Iterable[dict], refs: dict[str, str]):
    """(family, condition, [(reference record, record), ...]) per non-reference condition, over
    the ids with a non-error record under both (as in the summary's paired figures)."""
    table = index_records(records)
    for (family, condition), recs in sorted(table.items(), key=lambda kv: (family_key(kv[0][0]), kv[0][1])):
        ref_name = refs.get(family)
        if condition == ref_name:
            continue
        ref = table.get((family, ref_name), {})
        ids = sorted(i for i in set(recs) & set(ref) if not recs[i].get("error") and not ref[i].get("error"))
        yield family, condition, [(ref[i], recs[i]) for i in ids]


def flip_matrices(records: Iterable[dict], refs: dict[str, str]) -> dict[tuple[str, str], dict[str, int]]:
    """Per non-reference (family, condition): counts of reference correct/wrong x perturbed
    correct/wrong on the paired samples, and ``changed`` (the predicted option differs)."""
    out = {}
    for family, condition, pairs in _pairs(records, refs):
        m = {"both_correct": 0, "harmful": 0, "beneficial": 0, "both_wrong": 0, "changed": 0, "n": len(pairs)}
        for a, b in pairs:
            ra, rb = bool(a.get("correct")), bool(b.get("correct"))
            key = ("both_correct" if rb else "harmful") if ra else ("beneficial" if rb else "both_wrong")
            m[key] += 1
            m["changed"] += a.get("pred") != b.get("pred")
        out[(family, condition)] = m
    return out


def gold_prob_shifts(records: Iterable[dict], refs: dict[str, str]) -> dict[tuple[str, str], list[float]]:
    """Per non-reference (family, condition): the gold option's probability under the condition
    minus under the reference, for paired samples that have probabilities under both."""
    out = {}
    for family, condition, pairs in _pairs(records, refs):
        shifts = []
        for a, b in pairs:
            p, q, gold = a.get("probs"), b.get("probs"), b.get("gold")
            if p is None or q is None or gold is None or len(p) != len(q) or not 0 <= int(gold) < len(q):
                continue
            shifts.append(float(q[int(gold)]) - float(p[int(gold)]))
        out[(family, condition)] = shifts
    return out


def histogram_counts(values: Sequence[float], bins: int = HIST_BINS, lo: float = HIST_RANGE[0],
                     hi: float = HIST_RANGE[1]) -> list[int]:
    """Counts in ``bins`` equal bins over [lo, hi]: bin k holds lo + k*w <= v < lo + (k+1)*w, the
    last bin also holds hi; values outside are clipped into the end bins."""
    counts = [0] * bins
    for v in values:
        k = math.floor((float(v) - lo) * bins / (hi - lo))
        counts[min(max(k, 0), bins - 1)] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Sections


def _signed3(v: float) -> str:
    text = f"{v:+.3f}"
    return "0.000" if text in ("+0.000", "-0.000") else text


def headline(summary: dict[str, Any]) -> str:
    """One sentence: the most negative delta among non-reference conditions, with its 95% CI."""
    rows = summary.get("conditions", [])
    paired = [r for r in rows if not r.get("is_reference") and r.get("delta") is not None]
    if not paired:
        return '<p class="headline calm">No perturbed condition was paired with its reference: nothing to compare.</p>'
    worst = min(paired, key=lambda r: (r["delta"], family_key(str(r["family"])), str(r["condition"])))
    ref = next((r for r in rows if r.get("is_reference") and r["family"] == worst["family"]), None)
    lo, hi = (worst.get("delta_ci95") or [None, None])[:2]
    ci = f" (95% CI {percent(lo, True)} to {percent(hi, True)})" if lo is not None and hi is not None else ""
    where = f"{esc(worst['family'])}"
    base = (f", from {percent(ref.get('accuracy'))}% under <b>{esc(ref['condition'])}</b> to "
            f"{percent(worst.get('accuracy'))}%" if ref and ref.get("accuracy") is not None else "")
    if worst["delta"] < 0:
        return (f'<p class="headline" id="headline-text">Strongest interference: <b>{esc(worst["condition"])}</b> '
                f"lowers {where} accuracy by <b>{100 * -worst['delta']:.1f} points</b>{ci}{base} "
                f"(n = {esc(worst.get('n'))}).</p>")
    return (f'<p class="headline calm" id="headline-text">No condition lowered accuracy: the smallest change is '
            f"<b>{esc(worst['condition'])}</b> on {where}, {100 * worst['delta']:+.1f} points{ci}.</p>")


def _summary_table(rows: Sequence[dict[str, Any]], by_task: bool = False) -> str:
    """Every figure of each row; ``by_task``: rows of ``tables.task_rows`` (a task column)."""
    task = "<th class=l>task</th>" if by_task else ""
    head = (f"<tr><th class=l>family</th><th class=l>condition</th>{task}<th>n</th><th>paired</th><th>accuracy %</th>"
            "<th>95% CI</th>"
            "<th>delta pts</th><th>delta 95% CI</th><th>flips %</th><th>harmful %</th><th>beneficial %</th>"
            "<th>McNemar p</th><th>JS</th><th>gold p shift</th><th>followed distractor %</th><th>unparsed</th>"
            "<th>errors</th></tr>")
    cells = []
    for c in rows:
        d = c.get("delta")
        cls = "neg" if (d or 0) < -1e-12 else ("pos" if (d or 0) > 1e-12 else "")
        p = c.get("mcnemar_p")
        sig = " sig" if p is not None and p < 0.05 else ""
        shift = c.get("gold_prob_shift")
        task_cell = f"<td class=l>{esc(c.get('task'))}</td>" if by_task else ""
        cells.append(
            f"<tr class=\"{'ref' if c.get('is_reference') else ''}\"><td class=l>{esc(c.get('family'))}</td>"
            f"<td class=l>{esc(c.get('condition'))}</td>{task_cell}"
            f"<td>{esc(c.get('n'))}</td><td>{'–' if c.get('n_paired') is None else esc(c['n_paired'])}</td>"
            f"<td>{percent(c.get('accuracy'))}</td><td>{percent_ci(c.get('accuracy_ci95'))}</td>"
            f"<td class=\"{cls}\">{percent(d, True)}</td><td>{percent_ci(c.get('delta_ci95'), True)}</td>"
            f"<td>{percent(c.get('flip_rate'))}</td><td>{percent(c.get('harmful_flip_rate'))}</td>"
            f"<td>{percent(c.get('beneficial_flip_rate'))}</td>"
            f"<td class=\"{sig.strip()}\">{'–' if p is None else f'{p:.3g}'}</td>"
            f"<td>{'–' if c.get('js_mean') is None else format(c['js_mean'], '.3f')}</td>"
            f"<td>{'–' if shift is None else _signed3(shift)}</td>"
            f"<td>{percent(c.get('followed_distractor_rate'))}</td><td>{esc(c.get('unparsed', 0))}</td>"
            f"<td>{esc(c.get('errors', 0))}</td></tr>")
    table_id = ' id="task-table"' if by_task else ""
    return f'<div class="scroll"><table class="data"{table_id}>{head}{"".join(cells)}</table></div>'


def _families_section(summary: dict[str, Any]) -> str:
    rows = summary.get("conditions", [])
    worst = {f["family"]: f for f in summary.get("families", [])}
    parts = []
    for family in sorted({str(r["family"]) for r in rows}, key=family_key):
        mine = [r for r in rows if r["family"] == family]
        w = worst.get(family) or {}
        note = ""
        if w.get("worst_case_accuracy") is not None:
            note = (f'<p class="muted">Right under every condition: {percent(w["worst_case_accuracy"])}% '
                    f'{percent_ci(w.get("worst_case_ci95"))} of {esc(w.get("n_worst_case"))} samples.</p>')
        parts.append(f"<h3>{esc(family)}</h3>{svg.family_bars(mine, f'{family}: accuracy and delta')}{note}")
    return "".join(parts)


def radar_axes(rows: Sequence[dict]) -> list[tuple[str, str]]:
    return [(str(r["family"]), str(r["condition"])) for r in rows]


def radar_label(family: str, condition: str) -> str:
    return f"{svg.FAMILY_SHORT.get(family, family)} {condition}"


def _flip_section(matrices: dict[tuple[str, str], dict[str, int]], summary: dict[str, Any]) -> str:
    if not matrices:
        return '<p class="muted">No perturbed condition to pair with a reference.</p>'
    pvals = {(r["family"], r["condition"]): r.get("mcnemar_p") for r in summary.get("conditions", [])}
    cards = []
    for (family, condition), m in matrices.items():
        p = pvals.get((family, condition))
        ptxt = "" if p is None else f" · McNemar p = {p:.3g}"
        cards.append(
            f'<div class="card flip-card" data-family="{esc(family)}" data-condition="{esc(condition)}">'
            f"<h4>{esc(family)} · {esc(condition)}</h4>"
            '<table class="flip"><tr><th></th><th>perturbed correct</th><th>perturbed wrong</th></tr>'
            f'<tr><th>reference correct</th><td class="same">{m["both_correct"]}</td>'
            f'<td class="harm">{m["harmful"]}</td></tr>'
            f'<tr><th>reference wrong</th><td class="bene">{m["beneficial"]}</td>'
            f'<td class="same">{m["both_wrong"]}</td></tr></table>'
            f'<div class="muted">{m["n"]} paired samples · answer changed on {m["changed"]}{ptxt}</div></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _shift_section(shifts: dict[tuple[str, str], list[float]]) -> str:
    cards = []
    for (family, condition), values in shifts.items():
        if not values:
            continue
        counts = histogram_counts(values)
        mean = sum(values) / len(values)
        title = f"{svg.FAMILY_SHORT.get(family, family)} {condition}"
        chart = svg.histogram(counts, *HIST_RANGE, title, f"n={len(values)} mean={_signed3(mean)}")
        cards.append(f'<div class="card">{chart}</div>')
    if not cards:
        return '<p class="muted">No option probabilities to compare (generate scoring, or no paired samples).</p>'
    return (f'<p class="muted">Gold-option probability under the condition minus under the reference, per paired '
            f'sample; {HIST_BINS} bins over [-1, 1]. Left of the dashed line the condition pulled the model away '
            f'from the right answer.</p><div class="cards">{"".join(cards)}</div>')


def _robustness_section(curves: Sequence[dict]) -> str:
    cards = []
    for c in curves:
        points = c.get("points") or []
        xs = [float(p["eps"]) for p in points]
        series = [("accuracy", [p.get("accuracy") for p in points]),
                  ("attack success rate", [p.get("attack_success_rate") for p in points])]
        unit = c.get("eps_unit") or ""
        cards.append('<div class="card">' + svg.line_plot(
            xs, series, f"{c.get('family')} · {c.get('space')} space",
            f"eps ({unit})" if unit else "eps") + "</div>")
    return f'<div class="cards">{"".join(cards)}</div>'


# ---------------------------------------------------------------------------------------------
# The page


def render_report(summary: dict[str, Any], manifest: dict[str, Any] | None = None,
                  records: Sequence[dict] | None = None, samples: Sequence | None = None,
                  run_dir: str | Path | None = None, max_thumbs: int = MAX_THUMBS) -> str:
    records = list(records or [])
    refs = references(summary, manifest)
    config = (manifest or {}).get("config") or {}
    seed = int(config.get("seed", summary.get("seed") or 0) or 0)
    switch_source = str(config.get("switch_source") or "mixed")
    rows = summary.get("conditions", [])
    title = f"modint diagnosis: {summary.get('model')} on {summary.get('benchmark')}"
    subtitle = (f"split {esc(summary.get('split'))} · scoring {esc(summary.get('scoring'))} · seed "
                f"{esc(summary.get('seed'))} · {len(records)} records")
    axes = radar_axes(rows)
    radar = svg.radar([radar_label(f, c) for f, c in axes],
                      [(str(summary.get("model")), [r.get("accuracy") for r in rows])])
    matrices = flip_matrices(records, refs)
    shifts = gold_prob_shifts(records, refs)
    data = browser_data(records, refs, samples, seed, switch_source, run_dir, max_thumbs,
                        pool_part=str(config.get("pool_part") or "eval"))
    nav = [("headline", "Headline"), ("families", "Per family"), ("radar", "Radar"), ("flips", "Flips"),
           ("shift", "Probability shift")]
    body = [f'<section id="headline">{headline(summary)}'
            '<p class="muted">Deltas, flips and shifts compare each condition with its family\'s reference condition '
            'on the same samples; whiskers are 95% confidence intervals (Wilson for accuracy, paired bootstrap '
            'for deltas).</p></section>',
            f'<section id="families"><h2>Accuracy and delta per family</h2>{_families_section(summary)}</section>',
            f'<section id="radar"><h2>Accuracy over all conditions</h2>{radar}</section>',
            f'<section id="flips"><h2>Flip matrices</h2>{_flip_section(matrices, summary)}</section>',
            f'<section id="shift"><h2>Gold-option probability shift</h2>{_shift_section(shifts)}</section>']
    if summary.get("robustness"):
        nav.append(("robustness", "Robustness"))
        body.append('<section id="robustness"><h2>Robustness curves</h2>'
                    '<p class="muted">Attack success rate: among samples right under the reference, the fraction '
                    f'the attack made wrong.</p>{_robustness_section(summary["robustness"])}</section>')
    gain = gain_html(summary)
    if gain:
        nav.append(("gain", "Multimodal gain"))
        body.append(f'<section id="gain"><h2>Multimodal gain and leakage</h2>{gain}</section>')
    reliance = reliance_panel(summary)
    if reliance:
        nav.append(("reliance", "Reliance"))
        body.append(f'<section id="reliance"><h2>Reliance: attention, knockout, logit lens</h2>{reliance}</section>')
    nav += [("table", "Table"), ("tasks", "Per task"), ("samples", "Samples"), ("manifest", "Manifest")]
    body.append(f'<section id="table"><h2>All figures</h2>{_summary_table(rows)}</section>')
    by_task = task_rows(summary)
    body.append('<section id="tasks"><h2>Per task</h2><p class="muted">Every family x condition on the samples of '
                'each task; paired figures against the reference on the same samples ("paired" of them).</p>'
                + (_summary_table(by_task, by_task=True) if by_task else '<p class="muted">No record names a task.</p>')
                + "</section>")
    body.append(f'<section id="samples"><h2>Per-sample browser</h2>{browser_section(data, bool(samples))}</section>')
    meta = esc(json.dumps(manifest or {}, indent=2, ensure_ascii=False))
    body.append(f'<section id="manifest"><h2>Manifest</h2><details><summary>manifest.json</summary><pre>{meta}</pre>'
                "</details></section>")
    return page(title, subtitle, nav, "".join(body), BROWSER_JS, json_block("modint-data", data))


def write_report(run_dir: str | Path, samples: Sequence | None = None, path: str | Path | None = None) -> Path:
    """Write report.html (or ``path``) for a run directory; ``samples`` (the run's samples) add
    thumbnails and the text each model input held to the per-sample browser."""
    run = Path(run_dir)
    summary = json.loads((run / rundir.SUMMARY).read_text(encoding="utf-8"))
    manifest_path = run / rundir.MANIFEST
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else None
    records = rundir.read_records(run / rundir.RECORDS)
    target = Path(path) if path is not None else run / rundir.REPORT
    text = render_report(summary, manifest, records, samples, run)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def write_report_safely(run_dir: str | Path, samples: Sequence | None = None) -> Path | None:
    """``write_report`` for a run just made: a failure is logged, not raised (the report must
    never cost the records or the summary). Returns the report's path, or None."""
    try:
        return write_report(run_dir, samples=samples)
    except Exception as exc:
        log.warning("could not write report.html: %s", exc)
        return None
