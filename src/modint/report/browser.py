"""The report's per-sample browser: the records as JSON rows (rendered by a small vanilla script,
50 rows a page) with a thumbnail of the image the model saw and the text it read, rebuilt from the
samples when they are given."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from pathlib import Path
from typing import Any, Sequence

from modint.report.reliance import sample_line as reliance_line
from modint.report.rows import index_records
from modint.report.svg import esc

log = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_THUMBS = 2000
THUMB_PX = 96


def _thumb_uri(image: Any, px: int = THUMB_PX) -> str:
    """The image shrunk to at most ``px`` on its longer side, as the smaller of PNG and JPEG."""
    im = image.convert("RGB") if image.mode != "RGB" else image.copy()
    im.thumbnail((px, px))
    encoded = []
    for fmt, mime, kw in (("PNG", "image/png", {}), ("JPEG", "image/jpeg", {"quality": 82})):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        encoded.append((len(buf.getvalue()), mime, buf.getvalue()))
    _, mime, data = min(encoded)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class _Thumbs:
    """Deduplicated thumbnails (identical images share one entry), at most ``cap`` of them."""

    def __init__(self, cap: int):
        self.cap = cap
        self.uris: list[str] = []
        self.by_hash: dict[str, int] = {}
        self.by_key: dict[Any, int] = {}
        self.skipped = 0

    def add(self, key: Any, load) -> int:
        if key is not None and key in self.by_key:
            return self.by_key[key]
        if len(self.uris) >= self.cap:
            self.skipped += 1
            return -2
        uri = _thumb_uri(load())
        digest = hashlib.sha1(uri.encode("ascii")).hexdigest()
        if digest not in self.by_hash:
            self.by_hash[digest] = len(self.uris)
            self.uris.append(uri)
        if key is not None:
            self.by_key[key] = self.by_hash[digest]
        return self.by_hash[digest]


def _round(probs: Any) -> list[float] | None:
    if not isinstance(probs, list):
        return None
    return [round(float(p), 4) for p in probs]


def browser_data(records: Sequence[dict], refs: dict[str, str], samples: Sequence | None = None, seed: int = 0,
                 switch_source: str = "mixed", run_dir: str | Path | None = None, max_thumbs: int = MAX_THUMBS,
                 page_size: int = PAGE_SIZE, pool_part: str = "eval") -> dict[str, Any]:
    """What the browser script renders: one row per record (with its reference's answer), the
    deduplicated texts the model read and thumbnails of the images it saw."""
    table = index_records(records)
    texts: list[str] = []
    text_index: dict[str, int] = {}
    thumbs = _Thumbs(max_thumbs)
    by_id: dict[str, Any] = {}
    for s in samples or []:
        by_id.setdefault(str(s.id), s)
    pools = None
    if samples:
        from modint.perturb import default_pools

        try:
            pools = default_pools(list(samples), switch_source=switch_source, part=pool_part)
        except Exception as exc:
            log.warning("report: no switch pool (%s)", exc)
    run = Path(run_dir).resolve() if run_dir is not None else None
    rows = []
    option_texts: dict[str, list[str]] = {}
    for r in records:
        family, condition, rid = str(r.get("family")), str(r.get("condition")), str(r.get("id"))
        ref_name = refs.get(family)
        is_ref = condition == ref_name
        ref = None if is_ref else table.get((family, str(ref_name)), {}).get(rid)
        err = r.get("error")
        row: dict[str, Any] = {"id": rid, "f": family, "c": condition, "g": r.get("gold"), "p": r.get("pred"),
                               "ok": bool(r.get("correct")), "pr": _round(r.get("probs")), "e": err or None,
                               "d": r.get("distractor"), "ref": is_ref, "t": -1, "im": -1}
        if ref is not None:
            row.update({"rp": ref.get("pred"), "rok": None if ref.get("error") else bool(ref.get("correct")),
                        "rpr": _round(ref.get("probs"))})
        both_ok = ref is not None and not err and not ref.get("error")
        row["fl"] = bool(both_ok and ref.get("pred") != r.get("pred"))
        row["fo"] = bool(not err and r.get("distractor") is not None and r.get("pred") is not None
                         and int(r["pred"]) == int(r["distractor"]))
        if r.get("switched_from"):
            row["sw"] = r["switched_from"]
        if r.get("response") is not None:
            row["resp"] = r["response"]
        if r.get("reliance"):
            row["rel"] = reliance_line(r["reliance"])
        sample = by_id.get(rid)
        if sample is not None and pools is not None:
            option_texts.setdefault(rid, [str(o) for o in sample.options])
            _seen(row, r, sample, seed, pools, run, texts, text_index, thumbs)
        elif samples:
            row["note"] = "sample not found"
        rows.append(row)
    note = ""
    if thumbs.skipped:
        note = (f"Thumbnails are capped at {max_thumbs} distinct images: {thumbs.skipped} record(s) are shown "
                f"without one.")
    return {"rows": rows, "texts": texts, "thumbs": thumbs.uris, "options": option_texts, "page_size": page_size,
            "note": note}


def _seen(row: dict, record: dict, sample: Any, seed: int, pools: Any, run: Path | None, texts: list[str],
          text_index: dict[str, int], thumbs: _Thumbs) -> None:
    """Fill the row's text and thumbnail with what the model was given under the condition."""
    from modint.data.sample import load_image
    from modint.models.prompts import user_text
    from modint.perturb import apply_condition

    condition = str(record.get("condition"))
    try:
        perturbed = apply_condition(sample, condition, seed, pools)
    except Exception as exc:
        row["note"] = f"not rebuilt: {exc}"
        return
    text = user_text(perturbed)
    if text not in text_index:
        text_index[text] = len(texts)
        texts.append(text)
    row["t"] = text_index[text]
    adversarial = "@" in condition or record.get("attack_space") is not None
    try:
        if adversarial:
            rel = record.get("adversarial_image")
            path = (run / rel).resolve() if rel and run is not None else None
            if path is not None and path.is_relative_to(run) and path.is_file():
                from PIL import Image

                def load_file(p=path):
                    with Image.open(p) as im:
                        return im.convert("RGB")

                row["im"] = thumbs.add(("file", str(path)), load_file)
            elif record.get("attack_space") == "embed" and perturbed.image is not None:
                # Embedding attacks leave the pixels alone: the model saw the reference image.
                row["im"] = thumbs.add(("sample", sample.id) if perturbed.image is sample.image else None,
                                       lambda: load_image(perturbed))
            else:
                row["note"] = "attacked image not saved (--save-adversarial)"
        elif perturbed.image is None:
            row["note"] = "no image"
        else:
            key = ("sample", sample.id) if perturbed.image is sample.image else None
            row["im"] = thumbs.add(key, lambda: load_image(perturbed))
    except Exception as exc:
        row["note"] = f"image not loaded: {exc}"
        row["im"] = -1
        return
    if row["im"] == -2:
        row["im"] = -1
        row["note"] = "thumbnail cap reached"


def browser_section(data: dict[str, Any], with_samples: bool) -> str:
    note = ""
    if not with_samples:
        note = ('<p class="muted">The samples were not available when this report was written: rows show answers '
                "and probabilities only (<code>modint report RUN</code> rebuilds them from the benchmark).</p>")
    if data.get("note"):
        note += f'<p class="muted">{esc(data["note"])}</p>'
    return (f"{note}<div class=\"filters\">"
            '<label>family <select id="f-family"><option value="">all</option></select></label>'
            '<label>condition <select id="f-condition"><option value="">all</option></select></label>'
            '<label><input type="checkbox" id="f-flipped"> flipped</label>'
            '<label><input type="checkbox" id="f-followed"> followed distractor</label>'
            '<label><input type="checkbox" id="f-error"> error</label>'
            '<label>id <input type="search" id="f-search" placeholder="filter ids"></label></div>'
            '<div class="pager"><button type="button" id="page-prev">previous</button>'
            '<span id="sample-count" data-count="0"></span>'
            '<button type="button" id="page-next">next</button></div>'
            '<div class="scroll"><table class="samples"><thead><tr><th>image seen</th><th>sample</th>'
            '<th>text seen</th><th>options</th>'
            '<th>answer</th></tr></thead><tbody id="sample-rows"></tbody></table></div>'
            '<p class="muted">"flipped": the predicted option differs from the one under the family\'s reference '
            'condition. Options: ✓ marks the gold one, underlined is the answer under the row\'s condition; "ref p" '
            'are the probabilities under the reference condition.</p>')
