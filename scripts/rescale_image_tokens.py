"""Copy a LLaVA checkpoint with its projector's output scaled so that image tokens enter the LM
at TARGET times the mean norm of the text embeddings (docs/demo-model.md, experiment D).

    python scripts/rescale_image_tokens.py SRC DST [--target 2.0]

The LM's first RMSNorm makes layer 1 blind to the scale; the later layers' residual updates are
not, so the copy behaves differently and needs training (e.g. `scripts/train_demo.py
--resume-from DST` with DST named after the stage it ends).
"""

import argparse

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--target", type=float, default=2.0, help="image-token norm / text-embedding norm")
    parser.add_argument("--scenes", type=int, default=16, help="validation scenes the image-token norm is measured on")
    args = parser.parse_args()
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from modint.data.mini import load_mini
    from modint.data.sample import load_image

    model = LlavaForConditionalGeneration.from_pretrained(args.src, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(args.src)
    images = [load_image(s) for s in load_mini("val") if s.image is not None][:args.scenes]
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        feats = model.model.get_image_features(pixel_values=pixels)
        feats = getattr(feats, "pooler_output", feats)
        feats = torch.cat(list(feats)) if isinstance(feats, (list, tuple)) else feats
        image_norm = feats.norm(dim=-1).mean().item()
        text_norm = model.get_input_embeddings().weight.norm(dim=-1).mean().item()
        factor = args.target * text_norm / image_norm
        last = model.model.multi_modal_projector.linear_2
        last.weight.mul_(factor)
        last.bias.mul_(factor)
    print(f"image tokens {image_norm:.2f}, text embeddings {text_norm:.2f}: projector output x {factor:.4f}")
    model.save_pretrained(args.dst)
    processor.save_pretrained(args.dst)


if __name__ == "__main__":
    main()
