"""Letter scoring that computes each distinct prompt prefix once.

The prompts put the image first (``modint.models.prompts``), so the conditions of a sample share
the chat header and the image, and text-heavy conditions that use a canvas or a switch photo share
header + that image with every other sample using it. ``SharedScorer`` splits each row after its
last image token (text-only rows: after the chat header every text-only prompt starts with),
computes the key/value cache of each distinct prefix once, keeps it in a ``PrefixCache`` bounded by
bytes (least recently used first out), and runs only the suffixes, batched over rows with the same
prefix length and bucketed by suffix length, against the prefixes' cached keys and values. An
image prefix continues from the cache of the chat header before the image (computed once per run),
and a prefix that several calls use has a forward of its own, so its numbers do not depend on
which call (in which process) computes it.

Rows of one ``score`` call share their prefixes without the cache; the cache carries prefixes from
call to call. Given the run's plan (``PrefixCache.expect``: which calls use each image, or the
text-only header), it keeps exactly the prefixes a later call will use, drops each one after its
last call and, past its byte bound, evicts the one needed last; so single-use prefixes (a sample's
own image, its noise image) never push out the reused ones (canvases, switch photos). Without a
plan it keeps every prefix, least recently used out first.

The result equals ``VLMAdapter.score`` (the reference path) up to float error: the suffix tokens
attend to exactly the keys and values the full forward would give them, at the same positions.
Families where that does not hold name the reason in ``FamilySpec.no_prefix_sharing`` (or have an
encoder-decoder language model, whose encoder attends both ways); they keep the reference path.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from modint.data.sample import Sample
from modint.models.adapter import Scored
from modint.models.prefix_cache import PrefixCache, PrefixEntry, UseKey, image_digest, use_key  # noqa: F401 (re-exported)

# Inputs laid out one value per token position ([B, L]); the others (pixels, grids, image sizes)
# describe the images, which a prefix's key holds as a hash of the decoded image.
PER_POSITION = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")
ENCODER_DECODER_REASON = "encoder-decoder language model: its encoder attends in both directions"


def sharing_blocker(adapter: Any) -> str | None:
    """Why prefix sharing cannot apply to this adapter's model, or None when it can."""
    if adapter.encoder_decoder:
        return ENCODER_DECODER_REASON
    return adapter.spec.no_prefix_sharing


@dataclass
class _Row:
    index: int  # in the caller's list
    sample: Sample
    tokens: dict[str, torch.Tensor]  # the row's per-position inputs ([1, L], no padding)
    split: int  # prefix length
    positions: torch.Tensor | None  # multimodal RoPE: [3, L] position ids of the whole row
    use: UseKey  # use_key(sample.image)
    # the row's other inputs (pixels, image sizes) from the call's encoding, [1, ...] each; None
    # when the processor does not lay them out one row per sample (``_row_inputs``)
    extras: dict[str, torch.Tensor] | None = None
    entry: PrefixEntry | None = None

    @property
    def length(self) -> int:
        return int(self.tokens["input_ids"].shape[1])

    @property
    def language_model_only(self) -> bool:
        return self.sample.image is None

    @property
    def key(self) -> tuple:
        """The prefix's identity: its use key (image digest) and its token ids."""
        return (*self.use, tuple(self.tokens["input_ids"][0, :self.split].tolist()))


def _use_of(image: Any, known: dict[int, UseKey]) -> UseKey:
    """``use_key(image)``, hashed once per image object of a call (``known``: by ``id``)."""
    if id(image) not in known:
        known[id(image)] = use_key(image)
    return known[id(image)]


def _row_inputs(inputs: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """A batch encoding's inputs other than the per-position ones, when each is a tensor with one
    entry per row (LLaVA's pixels [B, 3, H, W], image sizes [B, 2]): then a sub-batch's inputs are
    these rows. None otherwise (Qwen-VL's patches of all images in one [N, D] tensor), or when one
    may be laid out per position (its second dimension is the batch's length)."""
    rows, length = inputs["input_ids"].shape
    extras = {k: v for k, v in inputs.items() if k not in PER_POSITION}
    for value in extras.values():
        if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != rows:
            return None
        if value.ndim >= 2 and value.shape[1] == length:
            return None
    return extras


def _cache_bytes(cache: Any) -> int:
    total = 0
    for layer in getattr(cache, "layers", []):
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def rope_positions(adapter: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Multimodal RoPE (Qwen-VL): the rows' [3, B, L] position ids, from the model's own rule, or
    None for other models; a continuation must be given them (text after an image does not sit
    at its index)."""
    inner = getattr(adapter.model, "model", None)
    rope_index = getattr(inner, "get_rope_index", None)
    if rope_index is None or "mm_token_type_ids" not in inputs:
        return None
    positions, _ = rope_index(inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
                              image_grid_thw=inputs.get("image_grid_thw"),
                              attention_mask=inputs["attention_mask"])
    return positions


def returned_cache(out: Any) -> Any:
    """The key/value cache a forward returned (BLIP-2 nests its language model's output)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.language_model_outputs.cache


def stack_caches(caches: Sequence[Any]) -> Any:
    """A new cache holding ``caches`` (each of batch 1, same length) along the batch; the inputs
    are left untouched (the forward appends to the new cache's own tensors)."""
    first = caches[0]
    stacked = copy.copy(first)
    stacked.layers = []
    for i, layer in enumerate(first.layers):
        fresh = copy.copy(layer)
        if isinstance(getattr(layer, "keys", None), torch.Tensor) and layer.keys.numel():
            fresh.keys = torch.cat([c.layers[i].keys for c in caches])
            fresh.values = torch.cat([c.layers[i].values for c in caches])
        stacked.layers.append(fresh)
    return stacked


def select_cache_row(cache: Any, row: int) -> Any:
    """Row ``row`` of a batched cache, as a cache of its own (owning its memory)."""
    single = copy.copy(cache)
    single.layers = []
    for layer in cache.layers:
        fresh = copy.copy(layer)
        if isinstance(getattr(layer, "keys", None), torch.Tensor) and layer.keys.numel():
            fresh.keys = layer.keys[row:row + 1].clone()
            fresh.values = layer.values[row:row + 1].clone()
        single.layers.append(fresh)
    return single


# Families whose header cannot be computed apart from the image that follows it: Gemma 3's image
# tokens attend to each other both ways, a mask its forward builds only over a whole prompt.
HEADER_APART_BLOCKERS = frozenset({"gemma3"})

# A forward's fixed cost (the per-layer calls, the cache copy), in positions computed: bucketing
# pays that much for one more batch rather than pad that many positions.
FORWARD_COST_POSITIONS = 32


def bucket_by_length(lengths: Sequence[int], max_rows: int,
                     forward_cost: int = FORWARD_COST_POSITIONS) -> list[tuple[int, int]]:
    """Cut sorted ``lengths`` into consecutive batches [a, b) of at most ``max_rows`` rows that
    minimise the positions computed (each batch pads to its longest row) plus ``forward_cost``
    per batch: an exact dynamic programme over the cut points."""
    n = len(lengths)
    best = [0.0] + [float("inf")] * n  # best[i]: cost of the first i rows
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(max(0, end - max_rows), end):
            cost = best[start] + (end - start) * lengths[end - 1] + forward_cost
            if cost < best[end]:
                best[end], cut[end] = cost, start
    bounds, end = [], n
    while end > 0:
        bounds.append((cut[end], end))
        end = cut[end]
    return bounds[::-1]


class SharedScorer:
    """``score(samples)`` as ``VLMAdapter.score``, each distinct prefix computed once (see the
    module docstring). One instance per run: its ``cache`` lives as long as it does."""

    def __init__(self, adapter: Any, cache: PrefixCache | None = None, batch_size: int = 16):
        self.adapter = adapter
        self.cache = cache if cache is not None else PrefixCache()
        self.batch_size = batch_size
        self.blocker = sharing_blocker(adapter)
        self._header: int | None = None
        self._headers: dict[tuple, Any] = {}  # chat header before the image (token ids) -> its key/value cache
        # Use keys that more than one call of the run uses (from the engine's plan; None: unknown).
        self.reused: set[UseKey] | None = None

    @torch.no_grad()
    def score(self, samples: Sequence[Sample]) -> list:
        samples = list(samples)
        if self.blocker is not None:
            return self.adapter.score(samples)
        rows = self._rows(samples)
        self._attach_prefixes(rows)
        results: list = [None] * len(rows)
        for chunk in self._suffix_batches(rows):
            for row, scored in zip(chunk, self._score_suffixes(chunk)):
                results[row.index] = scored
        return results

    # ----- rows and prefixes ---------------------------------------------------------------
    def header_length(self) -> int:
        """Tokens every text-only prompt starts with (the chat header): the common prefix of
        prompts that differ from their first user character (a perturbation's context comes
        before the question); several openings, as a tokenizer may split off a word's leading space."""
        if self._header is None:
            probes = [Sample(f"header-probe-{i}", "text_heavy", "?", ("x", "y"), 0, context=c)
                      for i, c in enumerate(("Question", "The", "x", "1", "Q", "é"))]
            ids = [self.adapter.encode([p]).inputs["input_ids"][0].tolist() for p in probes]
            n = 0
            while n < min(map(len, ids)) and len({row[n] for row in ids}) == 1:
                n += 1
            self._header = n
        return self._header

    def _rows(self, samples: list[Sample]) -> list[_Row]:
        """Each sample's tokens and prefix length, from one encoding of the image rows and one of
        the text-only rows (Q-Former processors put query tokens on every row of a batch)."""
        rows: list = [None] * len(samples)
        uses: dict[int, UseKey] = {}  # by image object: a sample's conditions share one decoded image
        for with_image in (True, False):
            part = [i for i, s in enumerate(samples) if (s.image is not None) == with_image]
            if not part:
                continue
            batch = self.adapter.encode([samples[i] for i in part])
            positions = rope_positions(self.adapter, batch.inputs)
            lengths = batch.inputs["attention_mask"].sum(1).tolist()  # right padding
            extras = _row_inputs(batch.inputs)
            for j, i in enumerate(part):
                n = int(lengths[j])
                tokens = {k: batch.inputs[k][j:j + 1, :n] for k in PER_POSITION if k in batch.inputs}
                image_at = torch.nonzero(batch.image_token_mask[j, :n]).flatten()
                split = int(image_at[-1]) + 1 if len(image_at) else self.header_length()
                split = max(1, min(split, n - 1))  # at least one suffix token, whose logits are read
                rows[i] = _Row(i, samples[i], tokens, split, positions[:, j, :n] if positions is not None else None,
                               _use_of(samples[i].image, uses), None if extras is None else
                               {k: v[j:j + 1] for k, v in extras.items()})
        return rows

    def _attach_prefixes(self, rows: list[_Row]) -> None:
        """Each row's prefix entry: from the cache, or computed, once per distinct prefix. Whether
        a call finds a prefix cached depends on the calls this process ran before, so a prefix that
        other calls use too (``reused``; every prefix when that is unknown) gets a forward of its
        own; the others, which their call always computes, in batches of one length in row order.
        Either way a prefix's numbers do not depend on how a run is split into processes. A row
        whose prefix an earlier row of the same call brought counts as a hit."""
        pending: dict[tuple, list[_Row]] = {}
        for row in rows:
            key = row.key
            if key in pending:
                pending[key].append(row)
                self.cache.hits += 1
                continue
            row.entry = self.cache.get(key)
            if row.entry is None:
                pending[key] = [row]
        chunks: list[list[tuple]] = []
        groups: dict[tuple[int, bool], list[tuple]] = {}
        for key, waiting in pending.items():
            if self.reused is None or waiting[0].use in self.reused:
                chunks.append([key])
            else:
                groups.setdefault((waiting[0].split, waiting[0].language_model_only), []).append(key)
        for keys in groups.values():
            chunks.extend(keys[start:start + self.batch_size] for start in range(0, len(keys), self.batch_size))
        for chunk in chunks:
            for key, entry in zip(chunk, self._compute_prefixes([pending[k][0] for k in chunk])):
                self.cache.put(key, entry, use=pending[key][0].use)
                for row in pending[key]:
                    row.entry = entry

    def _compute_prefixes(self, firsts: list[_Row]) -> list[PrefixEntry]:
        """The key/value caches of prefixes of one length, from one forward; an image prefix
        continues from the chat header's cache (``_image_header``) where it can."""
        split = firsts[0].split
        if all(r.extras is not None for r in firsts):  # the call's encoding has every input: no second one
            inputs = {k: torch.cat([r.tokens[k][:, :split] for r in firsts]) for k in firsts[0].tokens}
            inputs.update({k: torch.cat([r.extras[k] for r in firsts]) for k in firsts[0].extras})
        else:
            inputs = {k: v for k, v in self.adapter.encode([r.sample for r in firsts]).inputs.items()}
            for name in PER_POSITION:
                if name in inputs:
                    inputs[name] = inputs[name][:, :split]
        if firsts[0].positions is not None:
            inputs["position_ids"] = torch.stack([r.positions[:, :split] for r in firsts], dim=1)
        start, header = self._image_header(firsts)
        if header is not None:  # continue from the chat header's cached keys and values
            for name in PER_POSITION:
                if name in inputs:
                    inputs[name] = inputs[name][:, start:]
            inputs["attention_mask"] = torch.ones(len(firsts), split, dtype=inputs["attention_mask"].dtype,
                                                  device=inputs["attention_mask"].device)
            if "position_ids" in inputs:
                inputs["position_ids"] = inputs["position_ids"][..., start:]
        batched = returned_cache(self._forward(inputs, cache=stack_caches([header] * len(firsts))
                                               if header is not None else None))
        self.cache.vision_encodings += sum(not r.language_model_only for r in firsts)
        self.cache.positions_computed += (split - start) * len(firsts)
        entries = []
        for i in range(len(firsts)):
            single = select_cache_row(batched, i) if len(firsts) > 1 else batched
            entries.append(PrefixEntry(single, split, _cache_bytes(single)))
        return entries

    def _image_header(self, firsts: list[_Row]) -> tuple[int, Any]:
        """The chat header before the image, when every row of ``firsts`` has the same one: its
        length and its key/value cache, computed once per run (``_headers``), so that each image's
        prefix computes only the image and what follows. (0, None) otherwise, or for text-only
        rows, or for families whose image tokens attend both ways (``HEADER_APART_BLOCKERS``)."""
        if firsts[0].language_model_only or self.adapter.spec.model_type in HEADER_APART_BLOCKERS:
            return 0, None
        heads = []
        for row in firsts:
            at = torch.nonzero(row.tokens["input_ids"][0] == self.adapter.image_token_id).flatten()
            heads.append(tuple(row.tokens["input_ids"][0, :int(at[0])].tolist()) if len(at) else ())
        if not heads[0] or len(set(heads)) > 1:
            return 0, None
        start = len(heads[0])
        if heads[0] not in self._headers:
            row = firsts[0]
            inputs = {k: v[:, :start] for k, v in row.tokens.items()}
            if row.positions is not None:
                inputs["position_ids"] = row.positions[:, None, :start]
            self._headers[heads[0]] = returned_cache(self._forward(inputs, cache=None))
            self.cache.positions_computed += start
        return start, self._headers[heads[0]]

    def _forward(self, inputs: dict[str, torch.Tensor], cache: Any, logits_to_keep: Any = 1) -> Any:
        """The model's forward with a key/value cache; Q-Former families send inputs without
        pixels (text-only rows, every suffix) to their language model alone, as ``VLMAdapter``
        does for text-only rows."""
        model = self.adapter.model
        if "pixel_values" not in inputs and self.adapter.spec.text_only_via_language_model:
            model = model.language_model
            inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
        return model(**inputs, cache=cache, use_cache=True, logits_to_keep=logits_to_keep)

    # ----- suffixes ----------------------------------------------------------------------------
    def _suffix_batches(self, rows: list[_Row]) -> list[list[_Row]]:
        """Rows that can share one forward (same prefix length, same route), each group sorted by
        suffix length and cut where padding would cost more than another forward
        (``bucket_by_length``); deterministic for given rows."""
        groups: dict[tuple[int, bool], list[_Row]] = {}
        for row in rows:
            groups.setdefault((row.split, row.language_model_only), []).append(row)
        batches = []
        for key in sorted(groups):
            ordered = sorted(groups[key], key=lambda r: (r.length - r.split, r.index))
            cuts = bucket_by_length([r.length - r.split for r in ordered], self.batch_size)
            batches.extend(ordered[a:b] for a, b in cuts)
        return batches

    def _score_suffixes(self, chunk: list[_Row]) -> list:
        device = self.adapter.device
        prefix = chunk[0].split
        lengths = [r.length - prefix for r in chunk]
        width = max(lengths)
        pad = self.adapter.tokenizer.pad_token_id or 0
        inputs: dict[str, torch.Tensor] = {}
        for name in PER_POSITION:
            if name not in chunk[0].tokens:
                continue
            fill = pad if name == "input_ids" else 0
            block = torch.full((len(chunk), width), fill, dtype=chunk[0].tokens[name].dtype, device=device)
            for i, row in enumerate(chunk):
                block[i, :lengths[i]] = row.tokens[name][0, prefix:]
            inputs[name] = block
        # The mask covers the cached prefix and the suffix (padding after each row's end).
        inputs["attention_mask"] = torch.cat([torch.ones(len(chunk), prefix, dtype=inputs["attention_mask"].dtype,
                                                         device=device), inputs["attention_mask"]], dim=1)
        if chunk[0].positions is not None:
            positions = torch.zeros(3, len(chunk), width, dtype=chunk[0].positions.dtype, device=device)
            for i, row in enumerate(chunk):
                positions[:, i, :lengths[i]] = row.positions[:, prefix:]
            inputs["position_ids"] = positions
        last = torch.tensor([n - 1 for n in lengths], device=device)
        keep = torch.unique(last)
        cache = stack_caches([r.entry.cache for r in chunk])
        out = self._forward(inputs, cache=cache, logits_to_keep=keep)
        self.cache.positions_computed += len(chunk) * width
        logits = out.logits[torch.arange(len(chunk), device=device), torch.searchsorted(keep, last)].float()
        results = []
        for i, row in enumerate(chunk):
            probs = torch.softmax(self.adapter.option_logits(logits[i], len(row.sample.options)), dim=-1)
            probs = probs.double().cpu().numpy()
            results.append(Scored(probs=probs, pred=int(np.argmax(probs))))
        return results
