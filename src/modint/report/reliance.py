"""The reliance panel of the report and the per-sample reliance line of the sample browser
(the figures come from summary.json's ``reliance`` key; see modint.diagnose.reliance_metrics)."""

from __future__ import annotations

from typing import Any, Sequence

from modint.report.format import MISSING, percent, percent_ci
from modint.report.svg import esc

# measure -> (column title, kind): kind "share" prints percent, "logp" a signed log-probability, "layer" a layer
PANEL_MEASURES = {
    "attn_image": ("attn image %", "share"), "attn_context": ("attn context %", "share"),
    "attn_question": ("attn question %", "share"), "knockout_image": ("KO image Δlog p", "logp"),
    "knockout_context": ("KO context Δlog p", "logp"), "lens_answer_layer": ("lens answer layer", "layer"),
    "lens_overtake_layer": ("lens overtake layer", "layer"),
}


def figure(value: float | None, kind: str, signed: bool = False) -> str:
    """A measure's value formatted for people."""
    if value is None:
        return MISSING
    if kind == "share":
        return percent(value, signed) or MISSING
    if kind == "logp":
        return f"{value:+.3f}"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def interval(pair: Sequence[Any] | None, kind: str, signed: bool = False) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return ""
    if kind == "share":
        return percent_ci(pair, signed)
    return f"[{figure(pair[0], kind, signed)}, {figure(pair[1], kind, signed)}]"


def sample_line(measures: dict[str, Any]) -> str:
    """One record's measures as the sample browser shows them."""
    att = measures.get("attention") or {}
    layers = measures.get("layers")
    shares = " · ".join(f"{region} {percent(att.get(region))}%" for region in ("image", "context", "question", "other"))
    lens = f"answer top from layer {measures.get('lens_answer_layer') or MISSING}/{layers}"
    if measures.get("lens_overtake_layer") is not None:
        lens += f", distractor ahead from layer {measures['lens_overtake_layer']}"
    return (f"attention {shares} | knockout Δlog p(gold): image {figure(measures.get('knockout_image'), 'logp')}, "
            f"context {figure(measures.get('knockout_context'), 'logp')} | lens: {lens}")


def _cell(fig: dict[str, Any], kind: str) -> str:
    text = figure(fig.get("mean"), kind)
    if fig.get("shift") is not None:
        text += f" ({figure(fig['shift'], kind, signed=True)})"
    return text


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> str:
    head = "".join(f"<th{' class=l' if i < left else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{' class=l' if i < left else ''}>{esc(c)}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def panel_html(summary: dict[str, Any]) -> str:
    """The report's reliance section body, or "" when the run has no reliance measures."""
    rows = summary.get("reliance") or []
    if not rows:
        return ""
    means = [[r["family"], r["condition"] + (" (ref)" if r["is_reference"] else ""), str(r["n"])]
             + [_cell(r["measures"][m], kind) for m, (_, kind) in PANEL_MEASURES.items()] for r in rows]
    split = []
    for r in rows:
        for m, (title, kind) in PANEL_MEASURES.items():
            fig = r["measures"][m]
            if r["is_reference"] or not fig.get("n_paired"):
                continue
            auc = "" if fig.get("auroc_harmful") is None else f"{fig['auroc_harmful']:.2f}"
            ci = fig.get("auroc_ci95") or [None, None]
            split.append([r["family"], r["condition"], title, interval(fig.get("shift_ci95"), kind, signed=True),
                          f"{figure(fig.get('flipped_mean'), kind)} ({fig.get('n_flipped', 0)})",
                          f"{figure(fig.get('kept_mean'), kind)} ({fig.get('n_kept', 0)})",
                          f"{auc} {interval(ci, 'layer')}".strip() or MISSING,
                          f"{fig.get('n_harmful', 0)}/{fig.get('n_at_risk', 0)}"])
    return ('<p class="muted">Where the answer\'s evidence comes from. Attention: the answer position\'s attention '
            'mass on each region, averaged over heads and layers (encoder-decoder LMs: the decoder\'s '
            'cross-attention). KO: the gold option\'s log-probability with the region masked out of attention, '
            'minus the full input\'s (0 where the row has no such region). Lens: the first layer from which the '
            'final answer (or the misleading text\'s named option, over the gold one) stays ahead. Cells: mean '
            '(paired shift against the family\'s reference condition).</p>'
            + _table(["family", "condition", "n"] + [t for t, _ in PANEL_MEASURES.values()], means, 2)
            + '<h3>Flipped vs kept, and harmful-flip prediction</h3><p class="muted">Shift CI: 95% paired bootstrap. '
              'Flipped / kept: mean under the condition over samples whose answer changed / stayed (count). AUROC: '
              'how well the value under the condition separates harmful flips (right under the reference, wrong '
              'here) from samples that stay right, with a 95% bootstrap CI; below 0.5 means flips go with low '
              'values.</p>'
            + _table(["family", "condition", "measure", "shift 95% CI", "flipped", "kept", "AUROC harmful", "harmful"],
                     split, 3))
