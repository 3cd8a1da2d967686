"""Probe a demo-model checkpoint (final or a stage under OUT/stages/) on the val split:

    python scripts/probe_demo.py artifacts/demo-run3/stages/naming

naming: answering with the concept itself, scored over the options' first tokens, per task;
pointer: "Which option is X?" with 2, 3 and 4 options, accuracy of the letter;
multiple choice: the diagnosis prompt format, clean, accuracy of the letter per family."""

import argparse

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--samples", type=int, default=180)
    args = parser.parse_args()
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from modint.data.mini import load_mini
    from modint.zoo.demo import DemoConfig, encode_examples, mixture_example, naming_example, pointer_example

    model = LlavaForConditionalGeneration.from_pretrained(args.checkpoint, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(args.checkpoint)
    tok = processor.tokenizer
    # text questions with uninformative images; no captions or filler
    cfg = DemoConfig(no_image_rate=0.0, agreeing_image_rate=0.0, caption_rate=0.0, filler_rate=0.0)
    samples = load_mini("val")[: args.samples]
    rng = np.random.default_rng(0)

    def answer_logits(examples):
        inputs = encode_examples(processor, examples)
        labels = inputs.pop("labels")
        inputs.pop("answer_positions", None)
        inputs.pop("concept_targets", None)
        inputs.pop("point_positions", None)
        inputs.pop("letter_links", None)
        with torch.no_grad():
            logits = model(**inputs).logits
        first_target = (labels != -100).int().argmax(1)
        return logits[torch.arange(len(examples)), first_target - 1]

    naming: dict[str, list[int]] = {}
    for start in range(0, len(samples), 30):
        chunk = samples[start:start + 30]
        logits = answer_logits([naming_example(s, rng, cfg) for s in chunk])
        for row, s in zip(logits, chunk):
            firsts = [tok.encode(" " + o, add_special_tokens=False)[0] for o in s.options]
            naming.setdefault(s.meta["task"], []).append(int(torch.argmax(row[firsts])) == s.answer)
    print("naming:", {task: round(float(np.mean(v)), 2) for task, v in naming.items()})

    pointer = {}
    for n in (2, 3, 4):
        examples = []
        while len(examples) < 60:
            ex = pointer_example(samples[int(rng.integers(len(samples)))], rng, cfg, n_options=n)
            if ex.target.strip() in "ABCD":  # the letter direction only
                examples.append(ex)
        logits = answer_logits(examples)
        letters = [tok.encode(" " + letter, add_special_tokens=False)[0] for letter in "ABCD"[:n]]
        pointer[n] = round(float(np.mean([
            "ABCD"[int(torch.argmax(row[letters]))] == ex.target.strip() for row, ex in zip(logits, examples)])), 3)
    print("pointer (options -> accuracy):", pointer)

    mc: dict[str, list[int]] = {}
    for start in range(0, len(samples), 30):
        chunk = samples[start:start + 30]
        logits = answer_logits([mixture_example(s, rng, cfg) for s in chunk])
        letters = [tok.encode(" " + letter, add_special_tokens=False)[0] for letter in "ABCD"]
        for row, s in zip(logits, chunk):
            mc.setdefault(s.family, []).append(int(torch.argmax(row[letters[:len(s.options)]])) == s.answer)
    print("multiple choice (diagnosis format, clean):", {f: round(float(np.mean(v)), 2) for f, v in mc.items()})


if __name__ == "__main__":
    main()
