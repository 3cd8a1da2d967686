"""Inline SVG charts for the reports, drawn in Python (no JS chart library, nothing fetched).

Every string that comes from a run (condition and family names, run labels) goes through
``esc``; the SVG elements carry no xmlns attribute (inline SVG in HTML needs none), so the
output holds no URL at all.
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

from modint.report.format import percent

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d")
BAR = "#4c78a8"
NEG = "#c0392b"
POS = "#2e8b57"
GREY = "#8a8f98"
FAMILY_SHORT = {"image_heavy": "IMG", "text_heavy": "TXT", "vqa": "VQA"}


def esc(value: Any) -> str:
    """HTML-escaped text (quotes too); '://' is broken up so that no URL appears in the output."""
    return html.escape(str(value), quote=True).replace("://", "&#58;//")


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def _svg(width: float, height: float, body: str, label: str, cls: str = "chart") -> str:
    return (f'<svg class="{cls}" viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" height="{_n(height)}" '
            f'role="img" aria-label="{esc(label)}">{body}</svg>')


def _text(x: float, y: float, text: Any, anchor: str = "start", cls: str = "", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{c}{extra}>{esc(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = "#333", width: float = 1, extra: str = "") -> str:
    return (f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" '
            f'stroke-width="{_n(width)}"{extra}/>')


def _nice_max(value: float, step: float) -> float:
    return max(step, math.ceil(value / step - 1e-9) * step)


def family_bars(rows: Sequence[dict], title: str = "") -> str:
    """Accuracy per condition as horizontal bars with 95% CI whiskers (left panel) and the paired
    delta against the family's reference with its 95% CI (right panel), one row per condition."""
    label_w, acc_w, gap, delta_w, value_w = 170, 300, 70, 240, 60
    row_h, top = 28, 34
    height = top + row_h * len(rows) + 24
    width = label_w + acc_w + gap + delta_w + value_w
    x0 = label_w
    d0 = label_w + acc_w + gap
    spans = [abs(v) for r in rows if not r.get("is_reference")
             for v in [r.get("delta"), *(r.get("delta_ci95") or [])] if v is not None]
    dmax = _nice_max(max(spans, default=0.0), 0.05)
    dmax = max(dmax, 0.10)

    def ax(v: float) -> float:
        return x0 + acc_w * max(0.0, min(1.0, v))

    def dx(v: float) -> float:
        return d0 + delta_w / 2 + (delta_w / 2) * max(-1.0, min(1.0, v / dmax))

    parts = [_text(x0, 14, "accuracy (95% CI)", cls="axis-title"),
             _text(d0, 14, "delta vs reference, points (95% CI)", cls="axis-title")]
    bottom = top + row_h * len(rows)
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        x = ax(t)
        parts.append(_line(x, top - 4, x, bottom, "#e3e6ea"))
        parts.append(_text(x, bottom + 16, f"{int(t * 100)}", "middle", "tick"))
    for t in (-dmax, -dmax / 2, 0.0, dmax / 2, dmax):
        x = dx(t)
        parts.append(_line(x, top - 4, x, bottom, "#999" if t == 0 else "#e3e6ea"))
        parts.append(_text(x, bottom + 16, f"{100 * t:+.0f}" if t else "0", "middle", "tick"))
    for i, r in enumerate(rows):
        y = top + i * row_h
        cy = y + row_h / 2
        name = str(r.get("condition"))
        ref = bool(r.get("is_reference"))
        parts.append(_text(label_w - 8, cy + 4, name + (" (ref)" if ref else ""), "end", "lbl ref" if ref else "lbl"))
        acc = r.get("accuracy")
        lo, hi = (r.get("accuracy_ci95") or [None, None])[:2]
        if acc is not None:
            parts.append(f'<rect x="{_n(x0)}" y="{_n(y + 6)}" width="{_n(ax(acc) - x0)}" height="{row_h - 12}" '
                         f'fill="{GREY if ref else BAR}" rx="2"><title>{esc(name)}: {percent(acc, unit="%")} '
                         f'(n = {esc(r.get("n"))})</title></rect>')
            if lo is not None and hi is not None:
                parts.append(_line(ax(lo), cy, ax(hi), cy, "#222", 1.4))
                parts.append(_line(ax(lo), cy - 5, ax(lo), cy + 5, "#222", 1.4))
                parts.append(_line(ax(hi), cy - 5, ax(hi), cy + 5, "#222", 1.4))
            parts.append(_text(x0 + acc_w + 6, cy + 4, percent(acc, unit="%"), cls="val"))
        if ref:
            parts.append(_text(dx(0) + 6, cy + 4, "reference", cls="muted"))
            continue
        delta = r.get("delta")
        dlo, dhi = (r.get("delta_ci95") or [None, None])[:2]
        if delta is None:
            parts.append(_text(dx(0) + 6, cy + 4, "no paired samples", cls="muted"))
            continue
        colour = NEG if dhi is not None and dhi < 0 else POS if dlo is not None and dlo > 0 else GREY
        if dlo is not None and dhi is not None:
            parts.append(_line(dx(dlo), cy, dx(dhi), cy, colour, 2))
            parts.append(_line(dx(dlo), cy - 5, dx(dlo), cy + 5, colour, 2))
            parts.append(_line(dx(dhi), cy - 5, dx(dhi), cy + 5, colour, 2))
        ci = f" [{100 * dlo:+.1f}, {100 * dhi:+.1f}]" if dlo is not None and dhi is not None else ""
        parts.append(f'<circle cx="{_n(dx(delta))}" cy="{_n(cy)}" r="4.5" fill="{colour}"><title>{esc(name)}: '
                     f'{100 * delta:+.1f} points{ci}</title></circle>')
        parts.append(_text(d0 + delta_w + 8, cy + 4, f"{100 * delta:+.1f}", cls="val"))
    return _svg(width, height, "".join(parts), title or "accuracy and delta per condition")


def radar(axes: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], size: int = 460) -> str:
    """Accuracy per axis (0 at the centre, 100% at the rim), one closed polygon per series."""
    n = len(axes)
    legend_h = 22 * len(series) if len(series) > 1 else 0
    pad = 120
    w = size + 2 * pad
    h = size + 60 + legend_h
    cx, cy, rad = w / 2, size / 2 + 30, size / 2 - 20
    if n == 0:
        return _svg(w, 60, _text(20, 30, "no conditions", cls="muted"), "radar")

    def point(i: int, v: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * i / n
        return cx + rad * v * math.cos(a), cy + rad * v * math.sin(a)

    parts = []
    for ring in (0.25, 0.5, 0.75, 1.0):
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in (point(i, ring) for i in range(max(n, 3))))
        if n >= 3:
            parts.append(f'<polygon points="{pts}" fill="none" stroke="#dfe3e8"/>')
        else:
            parts.append(f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(rad * ring)}" fill="none" stroke="#dfe3e8"/>')
        x, y = point(0, ring)
        parts.append(_text(x + 4, y + 12, f"{int(ring * 100)}%", cls="tick"))
    for i, name in enumerate(axes):
        x, y = point(i, 1.0)
        parts.append(_line(cx, cy, x, y, "#dfe3e8"))
        lx, ly = point(i, 1.09)
        anchor = "middle" if abs(lx - cx) < 8 else ("start" if lx > cx else "end")
        parts.append(_text(lx, ly + 4, name, anchor, "lbl"))
    for k, (label, values) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        pts = [point(i, v) for i, v in enumerate(values) if v is not None]
        if len(pts) >= 2:
            coords = " ".join(f"{_n(x)},{_n(y)}" for x, y in pts)
            parts.append(f'<polygon points="{coords}" fill="{colour}" fill-opacity="0.14" stroke="{colour}" '
                         f'stroke-width="2"/>')
        for i, v in enumerate(values):
            if v is None:
                continue
            x, y = point(i, v)
            parts.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3.5" fill="{colour}"><title>{esc(label)} · '
                         f'{esc(axes[i])}: {percent(v, unit="%")}</title></circle>')
        if len(series) > 1:
            ly = size + 50 + 22 * k
            parts.append(f'<rect x="{_n(pad)}" y="{_n(ly - 10)}" width="14" height="14" fill="{colour}"/>')
            parts.append(_text(pad + 20, ly + 2, label, cls="lbl"))
    return _svg(w, h, "".join(parts), "radar chart of accuracy per condition")


def histogram(counts: Sequence[int], lo: float, hi: float, title: str, note: str = "") -> str:
    """A histogram of pre-binned counts over [lo, hi] (equal-width bins)."""
    w, h, left, right, top, bottom = 320, 170, 34, 10, 26, 30
    pw, ph = w - left - right, h - top - bottom
    nb = max(1, len(counts))
    peak = max(counts, default=0) or 1
    bw = pw / nb
    parts = [_text(left, 14, title, cls="axis-title")]
    if note:
        parts.append(_text(w - right, 14, note, "end", "muted"))
    parts.append(_line(left, top + ph, left + pw, top + ph, "#999"))
    for i, c in enumerate(counts):
        if not c:
            continue
        bh = ph * c / peak
        a, b = lo + (hi - lo) * i / nb, lo + (hi - lo) * (i + 1) / nb
        colour = NEG if b <= 0 else POS if a >= 0 else GREY
        parts.append(f'<rect x="{_n(left + i * bw + 0.5)}" y="{_n(top + ph - bh)}" width="{_n(max(bw - 1, 0.5))}" '
                     f'height="{_n(bh)}" fill="{colour}"><title>[{a:+.2f}, {b:+.2f}): {c}</title></rect>')
    zero = left + pw * (0 - lo) / (hi - lo) if lo < 0 < hi else None
    if zero is not None:
        parts.append(_line(zero, top, zero, top + ph, "#555", 1, ' stroke-dasharray="3,3"'))
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(_text(left + pw * (v - lo) / (hi - lo), top + ph + 14, f"{v:+g}" if v else "0", "middle", "tick"))
    parts.append(_text(left - 4, top + 8, str(peak), "end", "tick"))
    parts.append(_text(left - 4, top + ph, "0", "end", "tick"))
    return _svg(w, h, "".join(parts), title, "chart small")


def line_plot(xs: Sequence[float], series: Sequence[tuple[str, Sequence[float | None]]], title: str,
              x_label: str) -> str:
    """Lines over shared x values with y in [0, 1] (shown in %)."""
    w, h, left, right, top, bottom = 470, 270, 44, 14, 30, 62
    pw, ph = w - left - right, h - top - bottom
    xmin, xmax = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if xmax == xmin:
        xmin, xmax = xmin - 0.5, xmax + 0.5

    def px(x: float) -> float:
        return left + pw * (x - xmin) / (xmax - xmin)

    def py(y: float) -> float:
        return top + ph * (1 - max(0.0, min(1.0, y)))

    parts = [_text(left, 16, title, cls="axis-title")]
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(_line(left, py(t), left + pw, py(t), "#e3e6ea"))
        parts.append(_text(left - 6, py(t) + 4, f"{int(t * 100)}%", "end", "tick"))
    ticks = sorted(set(xs)) if len(set(xs)) <= 8 else [xmin + (xmax - xmin) * k / 4 for k in range(5)]
    for t in ticks:
        parts.append(_line(px(t), top + ph, px(t), top + ph + 4, "#999"))
        parts.append(_text(px(t), top + ph + 16, f"{t:g}", "middle", "tick"))
    parts.append(_line(left, top + ph, left + pw, top + ph, "#999"))
    parts.append(_text(left + pw / 2, top + ph + 32, x_label, "middle", "tick"))
    for k, (label, ys) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        pts = [(px(x), py(y)) for x, y in zip(xs, ys) if y is not None]
        if len(pts) >= 2:
            parts.append(f'<polyline points="{" ".join(f"{_n(a)},{_n(b)}" for a, b in pts)}" fill="none" '
                         f'stroke="{colour}" stroke-width="2"/>')
        for x, y in zip(xs, ys):
            if y is not None:
                parts.append(f'<circle cx="{_n(px(x))}" cy="{_n(py(y))}" r="3.5" fill="{colour}"><title>'
                             f'{esc(label)} at {x:g}: {percent(y, unit="%")}</title></circle>')
        lx = left + 150 * k
        parts.append(f'<rect x="{_n(lx)}" y="{_n(h - 16)}" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(lx + 17, h - 6, label, cls="lbl"))
    return _svg(w, h, "".join(parts), title)
