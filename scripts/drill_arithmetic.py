"""Can the demo model learn single-digit sums from a text-only drill? Trains a copy of MODEL on
"What is a + b?" / "What is a - b?" -> the result (the 155 facts of the benchmark's arithmetic
task, 48 per step, lr 3e-4) and prints how many it names right every 50 steps
(docs/demo-model.md, "Runs 11 and 12"):

    python scripts/drill_arithmetic.py MODEL_DIR [--steps 300] [--save DIR]

With --save, the drilled model is written to DIR (diagnose it to see what the drill alone costs).
"""

import argparse

import numpy as np
import torch
from transformers import AutoProcessor, LlavaForConditionalGeneration

from modint.zoo.demo import Example, encode_examples

TRAINING_ONLY = ("answer_positions", "concept_targets", "point_positions", "letter_links")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a demo-model directory (e.g. a stage checkpoint)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--save", default=None)
    args = parser.parse_args()
    model = LlavaForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(args.model)
    facts = [(f"What is {a} + {b}?", a + b) for a in range(10) for b in range(10)] + \
            [(f"What is {a} - {b}?", a - b) for a in range(10) for b in range(a + 1)]
    numbers = [processor.tokenizer.encode(f" {n}", add_special_tokens=False)[0] for n in range(19)]

    def batch(chosen):
        return encode_examples(processor, [Example(q, None, f" {v}", str(v)) for q, v in chosen])

    def named_right() -> float:
        model.eval()
        right = 0
        with torch.no_grad():
            for i in range(0, len(facts), 64):
                chunk = facts[i:i + 64]
                inputs = batch(chunk)
                at = inputs.pop("answer_positions")
                for key in TRAINING_ONLY[1:] + ("labels",):
                    inputs.pop(key)
                logits = model(**inputs).logits
                right += sum(int(torch.argmax(logits[j, at[j], numbers])) == v for j, (_, v) in enumerate(chunk))
        model.train()
        return right / len(facts)

    print(f"step 0: {named_right():.3f} of the {len(facts)} sums named right", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    rng = np.random.default_rng(0)
    for step in range(1, args.steps + 1):
        inputs = batch([facts[i] for i in rng.integers(len(facts), size=48)])
        for key in TRAINING_ONLY:
            inputs.pop(key)
        loss = model(**inputs).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.3f}, {named_right():.3f} named right", flush=True)
    if args.save:
        model.save_pretrained(args.save)
        processor.save_pretrained(args.save)


if __name__ == "__main__":
    main()
