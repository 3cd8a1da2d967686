"""Reliance measures: where a record's answer gets its evidence from.

For each (perturbed) sample, on the language model that produces the answer:

- attention mass from the answer position to four regions of the input: the image tokens
  (``EncodedBatch.image_token_mask``), the perturbation's added context text, the question with
  its options, and the rest (system prompt, chat template, image framing tokens), per layer
  (averaged over heads) and averaged over layers. Encoder-decoder LMs (Flan-T5): the decoder's
  CROSS-attention from its first position (where the answer is read) over the encoder tokens;
  its self-attention at that position sees only itself.
- knockout: the gold option's log-probability (log-softmax over the option letters, as
  ``probs``) with the image tokens, and separately the context text, masked out as attention
  keys for every query in every layer, minus the full input's. Token positions are kept (a
  knocked-out token still occupies its position), so nothing but the information is removed.
  Encoder-decoder LMs: the encoder's attention mask (its self-attention and the decoder's
  cross-attention). A region a row does not have (no image, no context) gives 0 for both
  measures, by definition and without a forward.
- logit lens: the final norm and LM head applied to every layer's output at the answer
  position, options scored as ``VLMAdapter.option_logits`` does: the first layer from which the
  final answer stays the top option, and (records with a ``distractor``) the first layer from
  which the named option stays above the gold one (None when it is not above it at the end).

Attention weights need the eager attention implementation (sdpa returns none): the forward that
measures switches the model to eager for its duration, and the record's probabilities come from
that same forward. The knockouts of a batch go into ONE further forward (one row per
knocked-out region), so a record costs the measuring forward plus at most one extra.

Region spans come from the processor itself: the context is where the encoding with and
without the context differ, the question where the encoding with the question and options
replaced differs. A boundary token shared by two regions (a merged newline) may fall either way.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from modint.data.sample import Sample

REGIONS = ("image", "context", "question", "other")


@dataclass
class TextStack:
    """The answer-producing transformer stack and what turns its hidden states into logits."""

    module: torch.nn.Module  # returns attentions / cross_attentions when asked
    layers: torch.nn.ModuleList
    norm: torch.nn.Module
    head: torch.nn.Module
    project_out: torch.nn.Module | None = None  # OPT: hidden -> word embedding width
    scale: float = 1.0  # T5 (not v1.1) scales the decoder output before the head
    softcap: float | None = None  # Gemma's final logit soft-capping
    cross: bool = False  # encoder-decoder: read cross-attention


def text_stack(adapter: Any) -> TextStack:
    """The LM stack of any supported family: the decoder of a decoder-only LM, the DECODER of an
    encoder-decoder one (the adapter's ``language_model()`` is its encoder)."""
    model = adapter.model
    root = model.get_decoder()
    if adapter.encoder_decoder:
        root = getattr(root, "decoder", root)
    text_config = getattr(model.config, "text_config", model.config)
    for module in root.modules():
        layers = getattr(module, "layers", None) or getattr(module, "block", None)
        if isinstance(layers, torch.nn.ModuleList):
            norm = getattr(module, "norm", None) or getattr(module, "final_layer_norm", None)
            if norm is None:
                raise NotImplementedError(f"no final norm found on {type(module).__name__}")
            # T5 scales the decoder output before its head unless the checkpoint is a v1.1 one
            scaled = adapter.encoder_decoder and getattr(text_config, "scale_decoder_outputs",
                                                         getattr(text_config, "tie_word_embeddings", False))
            return TextStack(module, layers, norm, model.get_output_embeddings(),
                             project_out=getattr(module, "project_out", None),
                             scale=text_config.d_model ** -0.5 if scaled else 1.0,
                             softcap=getattr(text_config, "final_logit_softcapping", None),
                             cross=adapter.encoder_decoder)
    raise NotImplementedError(f"no transformer layers found in {type(root).__name__}")


@contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """The model with eager attention (which returns weights and takes additive 4-D masks)."""
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if previous != "eager":
            model.set_attn_implementation(previous)


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def lens_logits(stack: TextStack, hidden: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits from hidden states [..., H] of any layer, as the model makes its own."""
    x = stack.norm(hidden)
    if stack.project_out is not None:
        x = stack.project_out(x)
    logits = stack.head(x * stack.scale).float()
    if stack.softcap:
        logits = torch.tanh(logits / stack.softcap) * stack.softcap
    return logits


def _diff_span(full: list[int], other: list[int]) -> tuple[int, int]:
    """[start, end) of the tokens of ``full`` that differ from ``other`` (common prefix and
    suffix removed); an empty span when they are equal."""
    prefix = 0
    while prefix < min(len(full), len(other)) and full[prefix] == other[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(full), len(other)) - prefix and full[-1 - suffix] == other[-1 - suffix]:
        suffix += 1
    return prefix, max(prefix, len(full) - suffix)


def _row_ids(adapter: Any, sample: Sample) -> list[int]:
    batch = adapter.encode([sample])
    return batch.inputs["input_ids"][0].tolist()


def token_spans(adapter: Any, sample: Sample) -> dict[str, tuple[int, int]]:
    """Token spans [start, end) of the context text and of the question with its options, in the
    row the adapter encodes for ``sample`` (right padding: the same in any batch)."""
    full = _row_ids(adapter, sample)
    spans = {"context": (0, 0)}
    if sample.context:
        spans["context"] = _diff_span(full, _row_ids(adapter, sample.replace(context="")))
    blank = sample.replace(question="#", options=tuple("#" for _ in sample.options))
    start, end = _diff_span(full, _row_ids(adapter, blank))
    c_start, c_end = spans["context"]
    spans["question"] = (max(start, c_end) if c_end > c_start else start, end)
    return spans


def region_masks(batch: Any, spans: Sequence[dict[str, tuple[int, int]]]) -> dict[str, torch.Tensor]:
    """[B, L] boolean masks of the four regions over the (encoder) input tokens; every real
    token is in exactly one of them, padding in none."""
    real = batch.inputs["attention_mask"].bool()
    image = batch.image_token_mask & real
    context = torch.zeros_like(real)
    question = torch.zeros_like(real)
    for row, span in enumerate(spans):
        context[row, slice(*span["context"])] = True
        question[row, slice(*span["question"])] = True
    context &= real & ~image
    question &= real & ~image & ~context
    return {"image": image, "context": context, "question": question, "other": real & ~image & ~context & ~question}


def _first_layer_for_good(holds: Sequence[bool]) -> int | None:
    """1-based first layer from which ``holds`` is true through the last layer."""
    if not holds or not holds[-1]:
        return None
    layer = len(holds)
    while layer > 1 and holds[layer - 2]:
        layer -= 1
    return layer


@contextmanager
def _capture(stack: TextStack, store: dict[str, Any]) -> Iterator[None]:
    """Every layer's output, and the stack's attention weights, of the next forward."""
    store["layers"] = []
    with ExitStack() as hooks:
        for layer in stack.layers:
            handle = layer.register_forward_hook(lambda m, a, out: store["layers"].append(_hidden(out)))
            hooks.callback(handle.remove)
        handle = stack.module.register_forward_hook(
            lambda m, a, out: store.update(attentions=getattr(out, "cross_attentions" if stack.cross else "attentions")))
        hooks.callback(handle.remove)
        yield


@contextmanager
def _knock_out_keys(adapter: Any, stack: TextStack, batch: Any, keys: torch.Tensor) -> Iterator[None]:
    """Mask the positions ``keys`` [B, L] as attention keys for every query of every layer."""
    if stack.cross:  # T5's relative positions do not read the mask: masking is exact there
        batch.inputs["attention_mask"] = batch.inputs["attention_mask"] * (~keys).to(batch.inputs["attention_mask"].dtype)
        yield
        return

    def pre_hook(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is None or mask.dim() != 4 or not mask.is_floating_point():
            raise NotImplementedError(f"{type(module).__name__}: knockout needs the eager 4-D additive mask")
        mask = mask.expand(keys.shape[0], -1, -1, -1).clone()
        # Set, never add: a query whose every key is knocked out (an image token before any text)
        # gets a finite uniform row instead of NaNs that would reach other rows through the values.
        mask.masked_fill_(keys[:, None, None, : mask.shape[-1]], torch.finfo(mask.dtype).min)
        kwargs["attention_mask"] = mask
        return args, kwargs

    with ExitStack() as hooks:
        for layer in stack.layers:
            hooks.callback(layer.register_forward_pre_hook(pre_hook, with_kwargs=True).remove)
        yield


def _gold_logprob(adapter: Any, logits: torch.Tensor, sample: Sample) -> float:
    scores = adapter.option_logits(logits, len(sample.options))
    return float(torch.log_softmax(scores.double(), dim=-1)[sample.answer])


def _rounded(values: Any) -> Any:
    if isinstance(values, dict):
        return {k: _rounded(v) for k, v in values.items()}
    if isinstance(values, list):
        return [_rounded(v) for v in values]
    return round(float(values), 6) if isinstance(values, float) else values


@torch.no_grad()
def measure(adapter: Any, samples: Sequence[Sample]) -> list[tuple[np.ndarray, int, dict[str, Any]]]:
    """(option probabilities, prediction, reliance measures) per sample, in order. Rows with and
    without an image run in separate batches (some families need that)."""
    results: list = [None] * len(samples)
    for has_image in (True, False):
        rows = [i for i, s in enumerate(samples) if (s.image is not None) == has_image]
        if rows:
            for i, result in zip(rows, _measure_group(adapter, [samples[i] for i in rows])):
                results[i] = result
    return results


def _measure_group(adapter: Any, samples: list[Sample]) -> list[tuple[np.ndarray, int, dict[str, Any]]]:
    stack = text_stack(adapter)
    batch = adapter.encode(samples)
    spans = [token_spans(adapter, s) for s in samples]
    regions = region_masks(batch, spans)
    store: dict[str, Any] = {}
    with eager_attention(adapter.model), _capture(stack, store):
        logits = adapter.answer_logits(batch, output_attentions=True)
    rows = torch.arange(len(samples), device=batch.answer_index.device)
    position = torch.zeros_like(batch.answer_index) if stack.cross else batch.answer_index
    # [layers, B, K] attention of the answer position, averaged over heads
    attention = torch.stack([a[rows, :, position, :].float().mean(dim=1) for a in store["attentions"]])
    hidden = torch.stack([h[rows, position] for h in store["layers"]])  # [layers, B, H]
    lens = lens_logits(stack, hidden)  # [layers, B, V]
    out = []
    for b, sample in enumerate(samples):
        n = len(sample.options)
        probs = torch.softmax(adapter.option_logits(logits[b], n), dim=-1).double().cpu().numpy()
        pred = int(np.argmax(probs))
        by_layer = {r: attention[:, b, : regions[r].shape[1]][:, regions[r][b]].sum(dim=-1).tolist() for r in REGIONS}
        options = adapter.option_logits(lens[:, b], n)  # [layers, n]
        distractor = sample.meta.get("distractor") if isinstance(sample.meta, dict) else None
        overtake = None
        if isinstance(distractor, int) and 0 <= distractor < n and distractor != sample.answer:
            overtake = _first_layer_for_good((options[:, distractor] > options[:, sample.answer]).tolist())
        measures = {
            "attention": {r: float(np.mean(v)) for r, v in by_layer.items()},
            "attention_by_layer": by_layer,
            "tokens": {r: int(regions[r][b].sum()) for r in REGIONS},
            "attention_source": "cross" if stack.cross else "self",
            "logprob_gold": _gold_logprob(adapter, logits[b], sample),
            "knockout_image": 0.0, "knockout_context": 0.0,
            "layers": len(stack.layers),
            "lens_answer_layer": _first_layer_for_good((options.argmax(dim=-1) == pred).tolist()),
            "lens_overtake_layer": overtake,
        }
        out.append((probs, pred, measures))
    _knockouts(adapter, stack, samples, spans, regions, [m for _, _, m in out])
    for _, _, m in out:
        m.update(_rounded({k: m[k] for k in ("attention", "attention_by_layer", "logprob_gold",
                                             "knockout_image", "knockout_context")}))
    return out


def _knockouts(adapter: Any, stack: TextStack, samples: list[Sample], spans: list, regions: dict[str, torch.Tensor],
               measures: list[dict[str, Any]]) -> None:
    """One forward with a row per (sample, present region) knocked out; fills knockout_* in place."""
    jobs = [(b, region) for b in range(len(samples)) for region in ("image", "context") if regions[region][b].any()]
    if not jobs:
        return
    batch = adapter.encode([samples[b] for b, _ in jobs])
    keys = torch.zeros_like(batch.inputs["attention_mask"], dtype=torch.bool)
    width = min(keys.shape[1], regions["image"].shape[1])
    for row, (b, region) in enumerate(jobs):
        keys[row, :width] = regions[region][b, :width]
    with eager_attention(adapter.model), _knock_out_keys(adapter, stack, batch, keys):
        logits = adapter.answer_logits(batch)
    for row, (b, region) in enumerate(jobs):
        measures[b][f"knockout_{region}"] = _gold_logprob(adapter, logits[row], samples[b]) - measures[b]["logprob_gold"]
