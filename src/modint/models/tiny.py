"""Tiny random models built from configs, with offline processors: for tests and for trying the
pipeline without weights. Seeded, so the same family and seed give the same weights."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from modint.models import templates
from modint.models.tokenizer import (gemma_tokenizer, llama2_tokenizer, llama3_tokenizer, opt_tokenizer,
                                       qwen2_tokenizer, smollm_tokenizer, t5_tokenizer, train_bpe_tokenizer)

TINY_IMAGE_SIZE = 32
TINY_PATCH = 8
HIDDEN = 32
LAYERS = 2
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _vision(**extra) -> dict:
    """The tiny vision tower every family shares: 32 px images, 8 px patches, 2 layers of 32."""
    return dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
                image_size=TINY_IMAGE_SIZE, patch_size=TINY_PATCH, **extra)


def _special_ids(tokenizer) -> dict:
    return dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)


def _vicuna_tokenizer(chat_template: str | None = None):
    """Llama-2 / Vicuna's SentencePiece tokenizer with the tokens llava-hf adds: <image> and <pad>."""
    tokenizer = llama2_tokenizer(chat_template=chat_template)
    tokenizer.add_special_tokens({"pad_token": "<pad>", "additional_special_tokens": ["<image>"]})
    return tokenizer


def _llama(tokenizer, **sizes):
    """The tiny Llama language model (LLaVA, LLaVA-NeXT, Idefics3, SmolVLM, InstructBLIP);
    ``sizes`` override its sizes."""
    from transformers import LlamaConfig

    settings = {**dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
                       num_key_value_heads=2, max_position_embeddings=2048), **sizes}
    return LlamaConfig(vocab_size=len(tokenizer), **settings, **_special_ids(tokenizer))


def tiny_llava(seed: int = 0, image_size: int = TINY_IMAGE_SIZE, patch: int = TINY_PATCH, vision: dict | None = None,
               text: dict | None = None):
    """A LLaVA-1.5-architecture model (CLIP vision tower, MLP projector, Llama LM) of ~100k
    parameters, and its LlavaProcessor with a locally trained tokenizer. ``vision`` / ``text``
    override the tower's and the LM's sizes."""
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)

    tokenizer = _vicuna_tokenizer(templates.LLAVA_VICUNA)
    vision_config = {**_vision(projection_dim=HIDDEN), **(vision or {}), "image_size": image_size, "patch_size": patch}
    config = LlavaConfig(vision_config=CLIPVisionConfig(**vision_config), text_config=_llama(tokenizer, **(text or {})),
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
                         vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        do_center_crop=True, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=tokenizer.chat_template)
    return model, processor


def tiny_llava_15_geometry(seed: int = 0):
    """LLaVA-1.5's geometry at a small depth: 336 px images in 14 px patches (576 image tokens
    after the CLS token is dropped) before a Llama LM 512 wide (8 heads of 64, MLP 1376, 2 layers);
    a 2-layer CLIP tower 128 wide. For measuring costs where the image prefix dominates, as it
    does in LLaVA-1.5 (576 image tokens before a question of about 100)."""
    return tiny_llava(seed, image_size=336, patch=14,
                      vision=dict(hidden_size=128, intermediate_size=512, num_attention_heads=4),
                      text=dict(hidden_size=512, intermediate_size=1376, num_attention_heads=8, num_key_value_heads=8))


def tiny_llava_next(seed: int = 0):
    """A LLaVA-NeXT (anyres tiling) model of the same tiny size; grid pinpoints at 1x1, 1x2, 2x1 tiles."""
    from transformers import CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tokenizer = _vicuna_tokenizer(templates.LLAVA_VICUNA)
    n = TINY_IMAGE_SIZE
    pinpoints = [[n, n], [n, 2 * n], [2 * n, n]]
    config = LlavaNextConfig(vision_config=CLIPVisionConfig(**_vision(projection_dim=HIDDEN)),
                             text_config=_llama(tokenizer), image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                             vision_feature_layer=-2, vision_feature_select_strategy="default",
                             image_grid_pinpoints=pinpoints)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).eval()
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": n}, crop_size={"height": n, "width": n}, image_grid_pinpoints=pinpoints,
        image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=TINY_PATCH,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=tokenizer.chat_template)
    return model, processor


QWEN_SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def tiny_qwen2_vl(seed: int = 0, version: str = "qwen2_vl"):
    """A Qwen2-VL / Qwen2.5-VL model (14 px patches merged 2x2) or a Qwen3-VL one (16 px patches
    merged 2x2, a learned 4x4 position grid, deepstack features from vision layer 0) with the
    stand-in processor (the Qwen processors need torchvision). mrope_section sums to head_dim / 2."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from modint.models.processors import ExpandingProcessor

    template = templates.QWEN3_VL if version == "qwen3_vl" else templates.QWEN2_VL
    tokenizer = qwen2_tokenizer(chat_template=template, extra_special=QWEN_SPECIAL[2:])
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    hidden, layers, heads = HIDDEN, LAYERS, 2
    half = hidden // heads // 2
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=2048,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                 "mrope_section": [half - 2 * (half // 3), half // 3, half // 3]},
                **_special_ids(tokenizer))
    common = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    patch, norm = 14, {}
    if version == "qwen3_vl":
        from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

        text.update(head_dim=hidden // heads)
        text["rope_parameters"]["mrope_interleaved"] = True
        patch, norm = 16, dict(image_mean=[0.5] * 3, image_std=[0.5] * 3)
        vision = dict(depth=layers, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=heads,
                      out_hidden_size=hidden, patch_size=patch, spatial_merge_size=2, temporal_patch_size=2,
                      num_position_embeddings=16, deepstack_visual_indexes=[0], in_channels=3)
        config = Qwen3VLConfig(text_config=text, vision_config=vision, **common)
        model_class = Qwen3VLForConditionalGeneration
    elif version == "qwen2_vl":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        vision = dict(depth=layers, embed_dim=hidden, hidden_size=hidden, num_heads=heads, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, in_channels=3, mlp_ratio=2)
        config = Qwen2VLConfig(text_config=text, vision_config=vision, **common)
        model_class = Qwen2VLForConditionalGeneration
    else:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        vision = dict(depth=layers, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=heads,
                      out_hidden_size=hidden, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                      window_size=56, fullatt_block_indexes=[layers - 1], in_channels=3)
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
        model_class = Qwen2_5_VLForConditionalGeneration
    torch.manual_seed(seed)
    model = model_class(config).eval()
    side = 2 * patch  # one merged token
    image_processor = Qwen2VLImageProcessorPil(min_pixels=side * side, max_pixels=4 * side * side, patch_size=patch,
                                               merge_size=2, temporal_patch_size=2, **norm)
    return model, ExpandingProcessor(image_processor, tokenizer, "<|image_pad|>", template)


def tiny_qwen2_5_vl(seed: int = 0):
    return tiny_qwen2_vl(seed, version="qwen2_5_vl")


def tiny_qwen3_vl(seed: int = 0):
    return tiny_qwen2_vl(seed, version="qwen3_vl")


def tiny_llava_onevision(seed: int = 0):
    """LLaVA-OneVision: SigLIP tower (16 tokens per 32 px tile, no CLS: "full" features), a Qwen2
    LM, anyres tiling over 1x1..2x2 tiles with unpadding and a newline per row, anyres_max_9. Its
    processor without the video processor (that one needs torchvision)."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config, SiglipVisionConfig
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil)

    from modint.models.processors import image_only_onevision_processor

    tokenizer = qwen2_tokenizer(chat_template=templates.LLAVA_ONEVISION, extra_special=["<image>", "<video>"])
    n = TINY_IMAGE_SIZE
    pinpoints = [[n, n], [n, 2 * n], [2 * n, n], [2 * n, 2 * n]]
    text = Qwen2Config(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                       num_hidden_layers=LAYERS, num_attention_heads=2, num_key_value_heads=2,
                       max_position_embeddings=2048, **_special_ids(tokenizer))
    config = LlavaOnevisionConfig(vision_config=SiglipVisionConfig(**_vision()).to_dict(), text_config=text.to_dict(),
                                  image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                                  video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
                                  vision_feature_select_strategy="full", vision_feature_layer=-1,
                                  image_grid_pinpoints=pinpoints, vision_aspect_ratio="anyres_max_9")
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": n, "width": n}, image_grid_pinpoints=pinpoints,
                                                      image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = image_only_onevision_processor(
        image_processor=image_processor, tokenizer=tokenizer, num_image_tokens=(n // TINY_PATCH) ** 2,
        vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
        chat_template=templates.LLAVA_ONEVISION)
    return model, processor


GEMMA3_SPECIAL = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}


def tiny_gemma3(seed: int = 0):
    """Gemma 3: SigLIP tower (4x4 patches of a 32 px image) average-pooled 2x2 to 4 soft tokens,
    a Gemma 3 LM (sliding + full attention layers, bidirectional attention within an image). The
    projection weight starts at zero in transformers; it is drawn at random here so gradients
    reach the pixels."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor, SiglipVisionConfig
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    # Gemma3Processor reads tokenizer.boi_token / eoi_token / image_token: named special tokens.
    tokenizer = gemma_tokenizer(chat_template=templates.GEMMA3, extra_special=GEMMA3_SPECIAL.values(), **GEMMA3_SPECIAL)
    tokens = (TINY_IMAGE_SIZE // TINY_PATCH // 2) ** 2
    image_processor = Gemma3ImageProcessorPil(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
                                              image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=tokens,
                                chat_template=templates.GEMMA3)
    text = dict(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=LAYERS,
                num_attention_heads=2, num_key_value_heads=1, head_dim=HIDDEN // 2, query_pre_attn_scalar=HIDDEN // 2,
                sliding_window=64, layer_types=["sliding_attention", "full_attention"], **_special_ids(tokenizer))
    config = Gemma3Config(text_config=text, vision_config=SiglipVisionConfig(**_vision()).to_dict(),
                          mm_tokens_per_image=tokens, boi_token_index=tokenizer.boi_token_id,
                          eoi_token_index=tokenizer.eoi_token_id, image_token_index=tokenizer.image_token_id)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config).eval()
    torch.nn.init.normal_(model.model.multi_modal_projector.mm_input_projection_weight, std=0.02)
    return model, processor


def tiny_idefics3(seed: int = 0, family: str = "idefics3"):
    """Idefics3 or SmolVLM: a SigLIP-style tower on 32 px tiles (images split into tiles plus a
    global view), pixel shuffle by 2, Llama LM. SmolVLM's processor needs torchvision; Idefics3's
    builds the same image prompt, so it serves both. Idefics3 has Llama 3's tokenizer, SmolVLM SmolLM2's;
    both end a turn with <end_of_utterance> (their eos)."""
    from transformers import Idefics3Processor

    template = templates.IDEFICS3 if family == "idefics3" else templates.SMOLVLM
    tokenizer = llama3_tokenizer(chat_template=template) if family == "idefics3" else smollm_tokenizer(
        chat_template=template)
    if family == "idefics3":
        from transformers import Idefics3Config as Config, Idefics3ForConditionalGeneration as Model
        from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil as ImageProc
    else:
        from transformers import SmolVLMConfig as Config, SmolVLMForConditionalGeneration as Model
        from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil as ImageProc
    image_processor = ImageProc(size={"longest_edge": 2 * TINY_IMAGE_SIZE}, max_image_size={"longest_edge": TINY_IMAGE_SIZE})
    seq_len = (TINY_IMAGE_SIZE // TINY_PATCH) ** 2 // 4
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=seq_len,
                                  chat_template=template)  # adds its tokens to the tokenizer
    tokenizer.eos_token = "<end_of_utterance>"
    config = Config(vision_config=_vision(), text_config=_llama(tokenizer).to_dict(), scale_factor=2,
                    image_token_id=processor.image_token_id)
    torch.manual_seed(seed)
    return Model(config).eval(), processor


def tiny_smolvlm(seed: int = 0):
    return tiny_idefics3(seed, family="smolvlm")


def _qformer(**extra) -> dict:
    return dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=2 * HIDDEN,
                encoder_hidden_size=HIDDEN, **extra)


def _t5_tokenizer():
    """Flan-T5's unigram tokenizer with the <image> placeholder BLIP-2's processors expand."""
    tokenizer = t5_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]}, replace_extra_special_tokens=False)
    return tokenizer


def _t5(tokenizer) -> dict:
    """The tiny Flan-T5-style encoder-decoder LM of the BLIP-2 / InstructBLIP Flan-T5 variants:
    gated-GELU feed-forward, untied output head, decoding starts at the pad token (as in T5)."""
    from transformers import T5Config

    return T5Config(vocab_size=len(tokenizer), d_model=HIDDEN, d_kv=HIDDEN // 2, d_ff=2 * HIDDEN, num_layers=LAYERS,
                    num_decoder_layers=LAYERS, num_heads=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                    dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                    decoder_start_token_id=tokenizer.pad_token_id).to_dict()


def tiny_blip_2(seed: int = 0, queries: int = 4, language: str = "opt"):
    """BLIP-2 with an OPT language model (``language="t5"``: a Flan-T5-style encoder-decoder):
    ViT -> Q-Former (``queries`` query tokens) -> LM. No chat template (plain prompt); the vision
    initializer is 0.02 so pixel gradients do not vanish."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, OPTConfig
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    tokenizer = _t5_tokenizer() if language == "t5" else opt_tokenizer()
    image_processor = BlipImageProcessorPil(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    processor = Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=queries)
    text = _t5(tokenizer) if language == "t5" else OPTConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, ffn_dim=2 * HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=2, word_embed_proj_dim=HIDDEN, **_special_ids(tokenizer)).to_dict()
    config = Blip2Config(vision_config=_vision(initializer_range=0.02), qformer_config=_qformer(),
                         text_config=text,
                         num_query_tokens=queries, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    return Blip2ForConditionalGeneration(config).eval(), processor


def tiny_instructblip(seed: int = 0, queries: int = 4, language: str = "llama"):
    """InstructBLIP with a Llama (Vicuna-style) LM (``language="t5"``: a Flan-T5-style
    encoder-decoder); the Q-Former also reads the instruction through its own tokenizer. Vision
    initializer 0.02 (the 1e-10 default makes pixel gradients vanish)."""
    from transformers import InstructBlipConfig, InstructBlipForConditionalGeneration, InstructBlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    tokenizer = _t5_tokenizer() if language == "t5" else _vicuna_tokenizer()
    qformer_tokenizer = train_bpe_tokenizer(chat_template=None)  # (a BERT WordPiece one in the real model)
    qformer_tokenizer.chat_template = None
    image_processor = BlipImageProcessorPil(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    processor = InstructBlipProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                      qformer_tokenizer=qformer_tokenizer, num_query_tokens=queries)
    qformer = _qformer(vocab_size=len(qformer_tokenizer), pad_token_id=qformer_tokenizer.pad_token_id)
    config = InstructBlipConfig(vision_config=_vision(initializer_range=0.02), qformer_config=qformer,
                                text_config=_t5(tokenizer) if language == "t5" else _llama(tokenizer).to_dict(),
                                num_query_tokens=queries, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    return InstructBlipForConditionalGeneration(config).eval(), processor


def tiny_blip_2_t5(seed: int = 0):
    return tiny_blip_2(seed, language="t5")


def tiny_instructblip_t5(seed: int = 0):
    return tiny_instructblip(seed, language="t5")


def tiny_paligemma(seed: int = 0):
    """PaliGemma: SigLIP tower (16 image tokens), Gemma LM with a bidirectional prefix. No chat
    template; the processor adds its 1152 location/segmentation tokens to the tokenizer."""
    from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tokenizer = gemma_tokenizer()
    image_processor = SiglipImageProcessorPil(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    image_processor.image_seq_length = (TINY_IMAGE_SIZE // TINY_PATCH) ** 2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    text = GemmaConfig(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                       num_hidden_layers=LAYERS, num_attention_heads=2, num_key_value_heads=1, head_dim=HIDDEN // 2,
                       **_special_ids(tokenizer))
    config = PaliGemmaConfig(vision_config=_vision(projection_dim=HIDDEN), text_config=text.to_dict(),
                             image_token_index=processor.image_token_id, projection_dim=HIDDEN)
    torch.manual_seed(seed)
    return PaliGemmaForConditionalGeneration(config).eval(), processor


# Keys are transformers model_types, except the Flan-T5 (encoder-decoder) variants of BLIP-2 and
# InstructBLIP: "blip-2-t5" and "instructblip-t5" build checkpoints whose model_type is blip-2 /
# instructblip, with a T5 text_config.
TINY_BUILDERS: dict[str, Callable] = {"paligemma": tiny_paligemma, "blip-2": tiny_blip_2, "instructblip": tiny_instructblip, "idefics3": tiny_idefics3, "smolvlm": tiny_smolvlm, "llava": tiny_llava, "llava_next": tiny_llava_next, "qwen2_vl": tiny_qwen2_vl,
                                      "qwen2_5_vl": tiny_qwen2_5_vl, "qwen3_vl": tiny_qwen3_vl,
                                      "llava_onevision": tiny_llava_onevision, "gemma3": tiny_gemma3,
                                      "blip-2-t5": tiny_blip_2_t5, "instructblip-t5": tiny_instructblip_t5}


# Named variants of a family at other sizes (not one per family, so the per-family tests skip them).
TINY_VARIANTS: dict[str, Callable] = {"llava-1.5-geometry": tiny_llava_15_geometry}


def build_tiny(family: str, seed: int = 0):
    """(model, processor) for a transformers ``model_type`` (or blip-2-t5 / instructblip-t5, or a
    variant of ``TINY_VARIANTS``; "_" may stand for "-": load_adapter turns tiny-random-blip-2-t5
    into blip_2_t5); KeyError lists the known ones."""
    builders = {**TINY_BUILDERS, **TINY_VARIANTS}
    builder = builders.get(family) or builders.get(family.replace("_", "-"))
    if builder is None:
        raise KeyError(f"no tiny builder for family {family!r}; known: {', '.join(sorted(builders))}")
    return builder(seed=seed)


def save_tiny(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random model of ``family`` in the standard Hugging Face layout."""
    out = Path(out_dir)
    model, processor = build_tiny(family, seed=seed)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
