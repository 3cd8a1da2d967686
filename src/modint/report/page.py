"""The HTML shell shared by report.html and the run comparison: inline CSS, an inline script
allowed by its hash in a Content-Security-Policy that forbids every fetch (images only as data:
URIs) and every inline event handler, and JSON data blocks that cannot close their script tag."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from modint.report.svg import esc

CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d8dee4;--bg:#f6f8fa;--accent:#4c78a8;--neg:#c0392b;--pos:#2e8b57}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:var(--fg);background:#fff}
main{max-width:78rem;margin:0 auto;padding:1.2rem 2rem 4rem}
header.top{background:linear-gradient(90deg,#24324a,#3b5683);color:#fff;padding:1.2rem 2rem}
header.top h1{margin:0;font-size:1.4rem;font-weight:600}header.top p{margin:.3rem 0 0;opacity:.85}
nav.toc{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:.45rem 2rem;
  display:flex;gap:1.1rem;flex-wrap:wrap;font-size:.9rem}
nav.toc a{color:var(--accent);text-decoration:none}nav.toc a:hover{text-decoration:underline}
h2{font-size:1.15rem;margin:2.2rem 0 .6rem;padding-bottom:.3rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:1.2rem 0 .4rem}
.headline{font-size:1.15rem;background:var(--bg);border-left:5px solid var(--neg);padding:.9rem 1.1rem;margin:1rem 0;
  border-radius:4px}.headline.calm{border-left-color:var(--pos)}
.headline b{font-weight:650}
.muted{color:var(--muted);fill:var(--muted)}
table.data{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
table.data th,table.data td{border-bottom:1px solid var(--line);padding:.3rem .55rem;text-align:right;white-space:nowrap}
table.data th{background:var(--bg);font-weight:600}table.data td.l,table.data th.l{text-align:left}
table.data tr.ref td{background:#fafbfc;color:#444}
.scroll{overflow-x:auto;max-width:100%}
.neg{color:var(--neg)}.pos{color:var(--pos)}.sig{font-weight:700}
svg.chart{max-width:100%;height:auto;font-size:12px;overflow:visible}
svg .lbl{fill:#24292f}svg .lbl.ref{font-style:italic}svg .tick{fill:#6e7781;font-size:11px}
svg .axis-title{fill:#24292f;font-weight:600}svg .val{fill:#24292f;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:.9rem}
.card{border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem;background:#fff}
.card h4{margin:0 0 .4rem;font-size:.92rem}
table.flip{border-collapse:collapse;font-size:.88rem;font-variant-numeric:tabular-nums}
table.flip th,table.flip td{border:1px solid var(--line);padding:.3rem .6rem;text-align:center}
table.flip th{background:var(--bg);font-weight:600}
table.flip td.harm{background:#fbe4e1}table.flip td.bene{background:#e3f4e8}table.flip td.same{background:#fafbfc}
.filters{display:flex;flex-wrap:wrap;gap:.8rem;align-items:center;background:var(--bg);padding:.6rem .8rem;
  border-radius:6px;border:1px solid var(--line)}
.filters label{display:flex;gap:.3rem;align-items:center}
.filters select,.filters input[type=search]{font:inherit;padding:.15rem .3rem}
.pager{display:flex;gap:.6rem;align-items:center;margin:.6rem 0}
.pager button{font:inherit;padding:.2rem .7rem;border:1px solid var(--line);background:#fff;border-radius:4px;cursor:pointer}
.pager button:disabled{opacity:.4;cursor:default}
table.samples{border-collapse:collapse;width:100%;font-size:.85rem}
table.samples th{background:var(--bg);text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line)}
table.samples td{vertical-align:top;padding:.45rem .5rem;border-bottom:1px solid var(--line)}
table.samples img.thumb{max-width:96px;max-height:96px;border:1px solid var(--line);image-rendering:auto}
pre.seen{white-space:pre-wrap;word-break:break-word;margin:0;max-height:9.5rem;overflow:auto;font-size:.8rem;
  background:var(--bg);padding:.35rem .45rem;border-radius:4px;max-width:30rem}
.badge{display:inline-block;font-size:.72rem;padding:.05rem .4rem;border-radius:9px;margin:.15rem .2rem 0 0;
  background:#eaeef2;color:#333}
.badge.flip{background:#fde2c7}.badge.follow{background:#f7d4f0}.badge.err{background:#fbd5d0}.badge.ref{background:#dbe7f5}
table.opts{border-collapse:collapse;font-size:.8rem}table.opts td{padding:.05rem .35rem;border:none;white-space:nowrap}
table.opts td.t{white-space:normal;max-width:16rem;word-break:break-word}
table.opts tr.gold td.t{font-weight:650}table.opts tr.pred td.t{text-decoration:underline}
.pbar{display:inline-block;height:.55rem;background:var(--accent);vertical-align:middle;border-radius:2px;margin-left:.3rem}
.ok{color:var(--pos);font-weight:600}.bad{color:var(--neg);font-weight:600}
details pre{background:var(--bg);padding:.6rem;border-radius:4px;overflow:auto;font-size:.8rem}
footer{margin-top:3rem;color:var(--muted);font-size:.8rem}
"""


def json_block(element_id: str, data: Any) -> str:
    """Data for the page's script in a JSON block that no data can break out of: every ``<``, ``>``
    and ``&`` is written as a JSON ``\\u`` escape (stronger than escaping ``</`` as ``<\\/``: the
    block holds no ``</`` and no ``<!--`` at all, so neither ends it nor changes how it is
    tokenised), and ``://`` as ``:\\/\\/`` so that no URL appears in the output."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("://", ":\\/\\/")):
        text = text.replace(raw, escaped)
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def page(title: str, subtitle: str, nav: list[tuple[str, str]], body: str, script: str = "",
         data: str = "") -> str:
    """A complete self-contained document; ``body`` and ``data`` are already-safe HTML."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")
    links = "".join(f'<a href="#{esc(anchor)}">{esc(text)}</a>' for anchor, text in nav)
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f'<header class="top"><h1>{esc(title)}</h1><p>{subtitle}</p></header>'
            f'<nav class="toc">{links}</nav><main>{body}'
            f"<footer>Written by modint. Self-contained: no external resources.</footer></main>"
            f"{data}" + (f"<script>{script}</script>" if script else "") + "</body></html>")
