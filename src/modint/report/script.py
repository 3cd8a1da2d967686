"""The per-sample browser of report.html: vanilla JS, DOM built with textContent only (kept as a
Python string so that it ships inside the package without package-data settings)."""

BROWSER_JS = r"""(() => {
  "use strict";
  // The per-sample browser: records from the JSON block, filtered and paged in the page.
  // Every value from the data goes through textContent; nothing is parsed as HTML.
  const node = document.getElementById("modint-data");
  if (!node) return;
  const DATA = JSON.parse(node.textContent);
  const rows = DATA.rows || [];
  const texts = DATA.texts || [];
  const thumbs = DATA.thumbs || [];
  const options = DATA.options || {};
  const PAGE = DATA.page_size || 50;
  const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const letter = (i) => (i === null || i === undefined) ? "none" : (LETTERS[i] || String(i));
  const pct = (p) => (100 * p).toFixed(1) + "%";

  const fam = $("f-family"), cond = $("f-condition"), search = $("f-search");
  const flipped = $("f-flipped"), followed = $("f-followed"), errors = $("f-error");
  const body = $("sample-rows"), info = $("sample-count"), prev = $("page-prev"), next = $("page-next");
  if (!fam || !body) return;
  const fill = (select, values) => {
    for (const v of values) {
      const o = el("option", "", v);
      o.value = v;
      select.appendChild(o);
    }
  };
  fill(fam, Array.from(new Set(rows.map((r) => r.f))));
  fill(cond, Array.from(new Set(rows.map((r) => r.c))));

  let view = rows;
  let page = 0;

  function apply() {
    const f = fam.value, c = cond.value, q = search.value.trim().toLowerCase();
    const wantFlip = flipped.checked, wantFollow = followed.checked, wantErr = errors.checked;
    view = rows.filter((r) => (!f || r.f === f) && (!c || r.c === c) && (!wantFlip || r.fl) &&
      (!wantFollow || r.fo) && (!wantErr || r.e) && (!q || String(r.id).toLowerCase().includes(q)));
    page = 0;
    render();
  }

  function thumbCell(r) {
    const td = el("td");
    const src = r.im >= 0 ? thumbs[r.im] : null;
    if (typeof src === "string" && src.startsWith("data:image/")) {
      const img = el("img", "thumb");
      img.src = src;
      img.alt = "image the model saw";
      img.loading = "lazy";
      td.appendChild(img);
    } else {
      td.appendChild(el("span", "muted", r.note || "–"));
    }
    return td;
  }

  function metaCell(r) {
    const td = el("td");
    td.appendChild(el("div", "", r.id)).style.fontWeight = "600";
    td.appendChild(el("div", "muted", r.f + " · " + r.c));
    if (r.ref) td.appendChild(el("span", "badge ref", "reference"));
    if (r.fl) td.appendChild(el("span", "badge flip", "flipped"));
    if (r.fo) td.appendChild(el("span", "badge follow", "followed distractor"));
    if (r.e) td.appendChild(el("span", "badge err", "error"));
    if (r.sw) td.appendChild(el("div", "muted", "image from " + r.sw));
    return td;
  }

  function textCell(r) {
    const td = el("td");
    if (r.t >= 0 && r.t < texts.length) td.appendChild(el("pre", "seen", texts[r.t]));
    else td.appendChild(el("span", "muted", "–"));
    if (r.resp !== undefined && r.resp !== null) td.appendChild(el("div", "muted", "generated: " + r.resp));
    return td;
  }

  function optionsCell(r) {
    const td = el("td");
    const names = options[r.id] || [];
    const n = Math.max(names.length, (r.pr || []).length, (r.rpr || []).length);
    if (!n) {
      td.appendChild(el("span", "muted", "–"));
      return td;
    }
    const t = el("table", "opts");
    const head = el("tr");
    for (const h of ["", "option", r.ref ? "" : "ref p", "p"]) head.appendChild(el("td", "muted", h));
    t.appendChild(head);
    for (let i = 0; i < n; i++) {
      const tr = el("tr", (i === r.g ? "gold " : "") + (i === r.p ? "pred" : ""));
      tr.appendChild(el("td", "", letter(i) + (i === r.g ? " ✓" : "")));
      const name = el("td", "t", names[i] !== undefined ? names[i] : "");
      if (i === r.d) name.appendChild(el("span", "badge follow", "distractor"));
      tr.appendChild(name);
      tr.appendChild(el("td", "muted", !r.ref && r.rpr && r.rpr[i] !== undefined ? pct(r.rpr[i]) : ""));
      const p = el("td");
      if (r.pr && r.pr[i] !== undefined) {
        p.appendChild(document.createTextNode(pct(r.pr[i])));
        const bar = el("span", "pbar");
        bar.style.width = Math.round(50 * r.pr[i]) + "px";
        p.appendChild(bar);
      }
      tr.appendChild(p);
      t.appendChild(tr);
    }
    td.appendChild(t);
    return td;
  }

  function answerCell(r) {
    const td = el("td");
    td.appendChild(el("div", "muted", "gold: " + letter(r.g)));
    if (!r.ref) {
      const ref = el("div", "", "reference: " + (r.rp === undefined ? "–" : letter(r.rp)) + " ");
      if (r.rok !== undefined && r.rok !== null) ref.appendChild(el("span", r.rok ? "ok" : "bad", r.rok ? "✓" : "✗"));
      td.appendChild(ref);
    }
    const mine = el("div", "", (r.ref ? "answer: " : "this condition: ") + letter(r.p) + " ");
    mine.appendChild(el("span", r.ok ? "ok" : "bad", r.ok ? "✓" : "✗"));
    td.appendChild(mine);
    if (r.e) td.appendChild(el("div", "bad", r.e));
    if (r.rel) td.appendChild(el("div", "muted", "reliance: " + r.rel));
    return td;
  }

  function render() {
    const pages = Math.max(1, Math.ceil(view.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    const frag = document.createDocumentFragment();
    for (const r of view.slice(page * PAGE, (page + 1) * PAGE)) {
      const tr = el("tr");
      tr.appendChild(thumbCell(r));
      tr.appendChild(metaCell(r));
      tr.appendChild(textCell(r));
      tr.appendChild(optionsCell(r));
      tr.appendChild(answerCell(r));
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
    info.textContent = view.length + " of " + rows.length + " records · page " + (page + 1) + " of " + pages;
    info.dataset.count = String(view.length);
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  for (const c of [fam, cond, flipped, followed, errors]) c.addEventListener("change", apply);
  search.addEventListener("input", apply);
  prev.addEventListener("click", () => { page -= 1; render(); });
  next.addEventListener("click", () => { page += 1; render(); });
  render();
})();
"""
