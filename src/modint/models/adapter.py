"""ONE adapter over Hugging Face vision-language models.

Everything diagnosis and training need from a model goes through ``VLMAdapter``: building inputs
with the family's own processor and chat template, option-letter scoring from one forward pass,
generation, and masks of image-token positions. What differs between families lives in a
``FamilySpec`` (see ``modint.models.specs``), never in a subclass.

Encoder-decoder language models (the Flan-T5 variants of BLIP-2 and InstructBLIP share their
family's ``model_type``; ``is_encoder_decoder`` reads it from the config) differ in one place: the
answer comes from the DECODER. The prompt (with the image's query tokens) is the encoder input,
the decoder input is the decoder start token (scoring reads its logits) followed, for training, by
the answer tokens, and ``labels`` are laid out on the decoder side the way decoder-only rows lay
them out in the prompt (the logits at position t predict label t + 1), so the training objectives
read both alike. "The LLM input embeddings" are then the encoder's ``inputs_embeds``.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from modint.data.sample import OPTION_LETTERS, Sample
from modint.models import pixels
from modint.models.prompts import chat_messages, parse_answer, user_text
from modint.models.specs import FamilySpec, spec_for

log = logging.getLogger(__name__)

QWEN_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")  # flattened-patch pixel_values
ANYRES_TYPES = ("llava_next", "llava_onevision")  # [B, tiles, 3, h, w] pixel_values
FRAME_TYPES = ("idefics3", "smolvlm")  # [B, frames, 3, h, w] pixel_values
# model_type -> one raw image [3, H, W] in [0, 1] -> its pixel_values, as differentiable torch ops
PIXEL_PREPROCESSING: dict[str, Callable[[torch.Tensor, Any], torch.Tensor]] = {
    **{t: pixels.resize_crop_normalize for t in ("llava", "paligemma", "blip-2", "instructblip", "gemma3")},
    **{t: pixels.qwen_patches for t in QWEN_TYPES},
    **{t: pixels.anyres_tiles for t in ANYRES_TYPES},
    **{t: pixels.idefics3_tiles for t in FRAME_TYPES},
}


@dataclass
class EncodedBatch:
    """Model inputs for a list of samples plus the positions modint needs to know about."""

    inputs: dict[str, torch.Tensor]
    answer_index: torch.Tensor  # [B] position whose logits predict the answer letter
    image_token_mask: torch.Tensor  # [B, L] True at image-token positions
    samples: list[Sample]
    labels: torch.Tensor | None = None  # [B, L] answer token ids where an answer was appended, else -100
    # (encoder-decoder: [B, L_decoder], aligned with inputs["decoder_input_ids"])

    @property
    def answer_input_mask(self) -> torch.Tensor:
        """[B, L] True where an appended answer token sits in the LLM input (the positions
        ``image_token_mask`` indexes); never for encoder-decoder models, whose answers are decoded."""
        ids = self.inputs["input_ids"]
        if self.labels is None or "decoder_input_ids" in self.inputs:
            return torch.zeros_like(ids, dtype=torch.bool)
        return self.labels != -100


@dataclass
class Scored:
    """Option probabilities (softmax over option letters) and the argmax prediction."""

    probs: np.ndarray
    pred: int


class _EmbedsSeen(Exception):
    """Raised on the way into the language model once its input embeddings are read."""


class LetterScoringError(ValueError):
    """A model whose vocabulary has no token for an option letter: it cannot be letter-scored."""


def spelling_token_ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of every vocabulary token whose decoded text, stripped, is ``text`` (a few characters),
    in id order. Only tokens whose raw form contains ``text``, and byte pieces ("<0x41>"), are decoded."""
    found = []
    for raw, i in tokenizer.get_vocab().items():
        if isinstance(raw, bytes):  # tiktoken-style vocabularies
            raw = raw.decode("utf-8", "replace")
        if (text in raw or raw.startswith("<0x")) and tokenizer.decode([i]).strip() == text:
            found.append(i)
    return sorted(found)


def is_encoder_decoder(config: Any) -> bool:
    """Whether the language model is an encoder-decoder (BLIP-2 / InstructBLIP with Flan-T5)."""
    text = getattr(config, "text_config", None)
    return bool(getattr(text, "is_encoder_decoder", False))


class VLMAdapter:
    """A model, its processor and its family spec. Samples must carry decoded PIL images
    (``modint.data.load_image``) or None (text only)."""

    def __init__(self, model: Any, processor: Any, spec: FamilySpec | None = None, name: str | None = None):
        self.model = model
        self.processor = processor
        self.spec = spec or spec_for(model.config.model_type)
        self.name = name or getattr(model.config, "_name_or_path", "") or self.spec.model_type
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.encoder_decoder = is_encoder_decoder(model.config)
        self._letter_ids: dict[str, list[int]] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ----- inputs ---------------------------------------------------------------------------
    def prompt(self, sample: Sample) -> str:
        """The exact text the model sees (image placeholders not yet expanded)."""
        if self.spec.plain_prompt is not None:  # families without a chat template (BLIP-2, PaliGemma...)
            text = self.spec.plain_prompt.format(system=self.spec.system_prompt or "", user=user_text(sample)).lstrip()
            return (self.spec.image_prefix or "") + text if sample.image is not None else text
        messages = chat_messages(sample, has_image=sample.image is not None,
                                 system_prompt=self.spec.system_prompt)
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def answer_text(self, sample: Sample, prompt: str | None = None) -> str:
        """The gold answer as the assistant would write it after ``prompt``: its option letter,
        with a space unless the prompt already ends in whitespace (or the answer opens the
        decoder's own sequence, encoder-decoder models)."""
        prompt = self.prompt(sample) if prompt is None else prompt
        letter = OPTION_LETTERS[sample.answer]
        return letter if self.encoder_decoder or prompt[-1:].isspace() else " " + letter

    def encode(self, samples: Sequence[Sample], padding_side: str = "right", with_answers: bool = False) -> EncodedBatch:
        """Tokenise prompts and preprocess images for a batch (mixed image / text-only allowed).

        Scoring uses right padding: real tokens keep positions 0..n-1 as in a one-sample batch,
        so no family needs explicit position ids; the answer is read at each row's last token.
        ``with_answers`` (training) appends each gold answer and returns its tokens as labels.
        Encoder-decoder models: the prompt is the encoder input, and the decoder input (start token,
        then any answer) is added as ``decoder_input_ids``; the answer is read at decoder position 0.
        """
        samples = list(samples)
        texts = [self.prompt(s) for s in samples]
        answers = [self.answer_text(s, t) for s, t in zip(samples, texts)] if with_answers else None
        if answers and not self.encoder_decoder:
            texts = [t + a for t, a in zip(texts, answers)]
        images = [s.image for s in samples if s.image is not None]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        bos = self.tokenizer.bos_token
        if bos and all(t.startswith(bos) for t in texts):  # the template wrote it (Gemma 3): no second BOS,
            kwargs["add_special_tokens"] = False          # as transformers' own apply_chat_template decides
        if images:
            kwargs["images"] = [[s.image] if s.image is not None else [] for s in samples] \
                if self.spec.images_per_row else images
        old_side = self.tokenizer.padding_side
        self.tokenizer.padding_side = padding_side
        try:
            if not images and self.spec.text_only_template:  # the processor refuses text-only input
                texts = [self.spec.text_only_template.format(bos=self.tokenizer.bos_token or "", text=t) for t in texts]
                inputs = dict(self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False))
                inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])  # all prefix
            else:
                inputs = dict(self.processor(**kwargs))
        finally:
            self.tokenizer.padding_side = old_side
        inputs.pop("labels", None)  # some processors add training labels
        inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        mask = inputs["attention_mask"]
        image_token_mask = inputs["input_ids"] == self.image_token_id
        if self.encoder_decoder:
            labels = self._decoder_inputs(inputs, answers)
            answer_index = torch.zeros(mask.shape[0], dtype=torch.long, device=mask.device)
            return EncodedBatch(inputs, answer_index, image_token_mask, samples, labels if answers else None)
        if padding_side == "right":
            answer_index = mask.sum(dim=1) - 1
        else:
            answer_index = torch.full((mask.shape[0],), mask.shape[1] - 1, device=mask.device)
        labels = None
        if answers:
            if padding_side != "right":
                raise ValueError("answers are appended to right-padded batches only")
            labels = torch.full_like(inputs["input_ids"], -100)
            for i, answer in enumerate(answers):
                ids = self.tokenizer.encode(answer, add_special_tokens=False)
                end = int(answer_index[i]) + 1
                got = inputs["input_ids"][i, end - len(ids):end].tolist()
                if got != ids:  # the answer must tokenise alike alone and after the prompt
                    raise ValueError(f"sample {samples[i].id!r}: answer {answer!r} tokenises differently after "
                                     f"the prompt ({got} vs {ids})")
                labels[i, end - len(ids):end] = torch.tensor(ids, device=labels.device)
        return EncodedBatch(inputs, answer_index, image_token_mask, samples, labels)

    def _decoder_inputs(self, inputs: dict[str, torch.Tensor], answers: list[str] | None) -> torch.Tensor:
        """Add ``decoder_input_ids`` / ``decoder_attention_mask`` (the decoder start token, then
        each answer's tokens, right-padded) to ``inputs``; returns the labels on that side: the
        answer tokens at their own positions, -100 elsewhere."""
        text_config = self.model.config.text_config
        start = text_config.decoder_start_token_id
        start = text_config.pad_token_id if start is None else start
        rows = [[start] + (self.tokenizer.encode(a, add_special_tokens=False) if answers else [])
                for a in (answers or [None] * inputs["input_ids"].shape[0])]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else start
        ids = torch.full((len(rows), width), pad, dtype=torch.long, device="cpu")  # filled here, then moved
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row, device="cpu")
            mask[i, :len(row)] = 1
            labels[i, 1:len(row)] = torch.tensor(row[1:], dtype=torch.long, device="cpu")
        device = inputs["input_ids"].device
        inputs["decoder_input_ids"], inputs["decoder_attention_mask"] = ids.to(device), mask.to(device)
        return labels.to(device)

    @property
    def image_token_id(self) -> int:
        return int(getattr(self.model.config, "image_token_id", None)
                   or self.tokenizer.convert_tokens_to_ids(self.spec.image_token))

    # ----- scoring --------------------------------------------------------------------------
    def letter_token_ids(self, letter: str) -> list[int]:
        """Every token whose decoded text, stripped, is exactly ``letter``: "A", "▁A" (SentencePiece),
        "ĠA" (byte-level BPE), a byte-fallback "<0x41>". Which one follows the generation prompt
        depends on the template; each counts as choosing the letter. LetterScoringError when none."""
        if letter not in self._letter_ids:
            ids = spelling_token_ids(self.tokenizer, letter)
            if not ids:
                raise LetterScoringError(f"model {self.name} cannot be letter-scored: no token of its vocabulary "
                                         f"spells option letter {letter!r}")
            self._letter_ids[letter] = ids
        return self._letter_ids[letter]

    def check_letters(self, n_options: int) -> None:
        """LetterScoringError naming the model and the letter if any of the first ``n_options``
        option letters has no token (to run before any record is written)."""
        for letter in OPTION_LETTERS[:n_options]:
            self.letter_token_ids(letter)

    def _run(self, batch: EncodedBatch, **kwargs: Any) -> Any:
        """The model's forward on ``batch``. Q-Former families cannot run without pixels: text-only
        rows go straight to the LM (through inputs_embeds, so the embedding hooks see them as they
        do a multimodal forward; an encoder-decoder LM also gets the decoder inputs)."""
        if self.spec.text_only_via_language_model and "pixel_values" not in batch.inputs:
            embeds = self.model.get_input_embeddings()(batch.inputs["input_ids"])
            decoder = {k: v for k, v in batch.inputs.items() if k.startswith("decoder_")}
            return self.model.language_model(inputs_embeds=embeds, attention_mask=batch.inputs["attention_mask"],
                                             **decoder, **kwargs)
        return self.model(**batch.inputs, **kwargs)

    def answer_logits(self, batch: EncodedBatch, **forward_kwargs: Any) -> torch.Tensor:
        """Next-token logits at each row's answer position, [B, V], from one forward pass."""
        rows = torch.arange(len(batch.samples), device=batch.answer_index.device)
        if self.encoder_decoder:  # the decoder's positions: a handful, all kept
            return self._run(batch, **forward_kwargs).logits[rows, batch.answer_index].float()
        keep = torch.unique(batch.answer_index)
        out = self._run(batch, logits_to_keep=keep, **forward_kwargs)
        cols = torch.searchsorted(keep, batch.answer_index)
        return out.logits[rows, cols].float()

    def forward(self, batch: EncodedBatch, embeds: torch.Tensor | None = None,
                output_hidden_states: bool = False,
                edit_embeds: Callable[[torch.Tensor], torch.Tensor] | None = None, **kwargs: Any) -> Any:
        """A full forward (logits for every position unless ``logits_to_keep`` says which;
        differentiable, for training). ``embeds`` replaces the LLM's merged input embeddings
        (embedding-space PGD); ``edit_embeds`` maps them to what the LLM gets instead (adversarial
        training). Encoder-decoder models: the logits (and ``hidden_states``) are the decoder's,
        where the answer is."""
        def run():
            out = self._run(batch, output_hidden_states=output_hidden_states, **kwargs)
            if self.encoder_decoder and output_hidden_states:
                out.hidden_states = getattr(out, "language_model_outputs", out).decoder_hidden_states
            return out

        if edit_embeds is not None:
            with self._on_embeds(edit_embeds):
                return run()
        if embeds is None:
            return run()
        with self._on_embeds(lambda e: embeds.to(e.dtype)):
            return run()

    # ----- differentiable pixel preprocessing (for pixel-space PGD) ------------------------------
    def differentiable_pixels(self, image: torch.Tensor) -> torch.Tensor:
        """The family's preprocessing of one image as torch ops, so a loss on the model's output
        has a gradient with respect to the raw pixels: ``image`` is [3, H, W] in [0, 1]; returns
        what the processor would put in ``pixel_values`` for it: [3, h, w]; Qwen's flattened
        [patches, dim]; the tiling families' [tiles, 3, h, w]. Resizing uses PIL's own filter
        weights (``modint.models.pixels``), as the processors resize with PIL."""
        ip = getattr(self.processor, "image_processor", None)
        prepare = PIXEL_PREPROCESSING.get(self.spec.model_type)
        if prepare is None or ip is None:
            raise NotImplementedError(f"differentiable preprocessing is not implemented for {self.spec.model_type!r}")
        return prepare(image.float(), ip).to(self.model.dtype)

    def differentiable_pixel_values(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """``pixel_values`` for a batch of raw images (each [3, H, W] in [0, 1]) as the processor
        would lay them out: stacked; concatenated patches for Qwen; tiles padded with zero tiles to
        the batch's most for the tiling families."""
        per_image = [self.differentiable_pixels(x) for x in images]
        if self.spec.model_type in QWEN_TYPES:
            return torch.cat(per_image)
        if self.spec.model_type in ANYRES_TYPES + FRAME_TYPES:
            return pixels.pad_tiles(per_image)
        return torch.stack(per_image)

    # ----- the LLM's input embeddings (for embedding-space PGD) --------------------------------
    # Every family merges its image features into the language model's input embeddings and
    # then calls the language model with ``inputs_embeds``. A pre-hook on the language model sees
    # exactly that tensor, so reading and replacing it needs no per-family code. An encoder-decoder
    # LM takes them in its encoder (the decoder reads token ids).
    def language_model(self) -> torch.nn.Module:
        return self.model.get_encoder() if self.encoder_decoder else self.model.get_decoder()

    @contextmanager
    def _on_embeds(self, fn: Callable[[torch.Tensor], torch.Tensor | None]):
        def pre_hook(module, args, kwargs):
            out = fn(kwargs["inputs_embeds"])
            if out is not None:
                kwargs["inputs_embeds"] = out
            return args, kwargs

        handle = self.language_model().register_forward_pre_hook(pre_hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def embed(self, batch: EncodedBatch) -> torch.Tensor:
        """The LLM input embeddings E [B, L, H] with the image features merged in (the forward
        stops there: the language model does not run)."""
        seen: list[torch.Tensor] = []

        def stop(e: torch.Tensor) -> None:
            seen.append(e.detach().clone())
            raise _EmbedsSeen

        with torch.no_grad(), self._on_embeds(stop):
            try:
                self.answer_logits(batch)
            except _EmbedsSeen:
                pass
        return seen[0]

    def answer_logits_from_embeds(self, batch: EncodedBatch, embeds: torch.Tensor) -> torch.Tensor:
        """Answer-position logits when the LLM is fed ``embeds`` instead of its merged inputs
        (differentiable w.r.t. ``embeds``)."""
        with self._on_embeds(lambda e: embeds.to(e.dtype)):
            return self.answer_logits(batch)

    def option_logits(self, logits: torch.Tensor, n_options: int) -> torch.Tensor:
        """Per-option scores from next-token logits [..., V]: logsumexp over each letter's
        token variants, so "A" and " A" both count as choosing A."""
        columns = []
        for letter in OPTION_LETTERS[:n_options]:
            ids = torch.tensor(self.letter_token_ids(letter), device=logits.device)
            columns.append(torch.logsumexp(logits[..., ids], dim=-1))
        return torch.stack(columns, dim=-1)

    def _split_by_image(self, samples: Sequence[Sample], fn: Callable[[list[Sample]], list]) -> list:
        """``fn`` over the image rows and the text-only rows separately, results in input order:
        for families whose processor puts image tokens on every row of a batch."""
        with_image = [i for i, s in enumerate(samples) if s.image is not None]
        without = [i for i, s in enumerate(samples) if s.image is None]
        if not (self.spec.text_only_via_language_model or self.spec.split_mixed_batches) or not with_image or not without:
            return fn(list(samples))
        results: list = [None] * len(samples)
        for part in (with_image, without):
            for i, r in zip(part, fn([samples[i] for i in part])):
                results[i] = r
        return results

    @torch.no_grad()
    def score(self, samples: Sequence[Sample]) -> list[Scored]:
        """Probabilities over option letters for each sample, from ONE forward pass."""
        return self._split_by_image(samples, self._score)

    def _score(self, samples: list[Sample]) -> list[Scored]:
        batch = self.encode(samples)
        logits = self.answer_logits(batch)
        results = []
        for i, sample in enumerate(batch.samples):
            probs = torch.softmax(self.option_logits(logits[i], len(sample.options)), dim=-1)
            probs = probs.double().cpu().numpy()
            results.append(Scored(probs=probs, pred=int(np.argmax(probs))))
        return results

    @torch.no_grad()
    def generate(self, samples: Sequence[Sample], max_new_tokens: int = 10,
                 repetition_penalty: float = 1.2) -> list[str]:
        """Greedy answers (the published decoding), left-padded as generation requires."""
        return self._split_by_image(samples, lambda part: self._generate(part, max_new_tokens, repetition_penalty))

    def _generate(self, samples: list[Sample], max_new_tokens: int, repetition_penalty: float) -> list[str]:
        batch = self.encode(samples, padding_side="left")
        model = self.model
        inputs = {k: v for k, v in batch.inputs.items() if not k.startswith("decoder_")}  # generate starts it
        if self.spec.text_only_via_language_model and "pixel_values" not in batch.inputs:
            model = self.model.language_model  # which reads no Q-Former inputs (InstructBLIP)
            inputs = {k: inputs[k] for k in ("input_ids", "attention_mask")}
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                             repetition_penalty=repetition_penalty, pad_token_id=self.tokenizer.pad_token_id)
        prompt_length = batch.inputs["input_ids"].shape[1]
        # Some families return only the new tokens (their generate starts from embeddings), and an
        # encoder-decoder returns the decoder's tokens (from its start token, skipped as special).
        if self.encoder_decoder:
            new_tokens = out
        else:
            new_tokens = out[:, prompt_length:] if out.shape[1] > prompt_length or model is not self.model else out
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def generate_text(self, requests: Sequence[str], max_new_tokens: int = 48) -> list[str]:
        """Greedy free-text answers to text-only requests, in the family's prompt format."""
        samples = [Sample(f"request-{i}", "text_heavy", text, (), 0) for i, text in enumerate(requests)]
        return self.generate(samples, max_new_tokens=max_new_tokens)

    def parse(self, text: str, sample: Sample) -> int | None:
        return parse_answer(text, sample.options)
