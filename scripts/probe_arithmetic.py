"""Logit lens on the test split's 100 arithmetic questions under the noise image (the text-heavy
reference): does LM layer L, read through the final norm and the tied unembedding at the answer
position, already name the sum (as the deep supervision asks of layer 3)? And does the
multiple-choice answer pick the option that layer 3 names?

    python scripts/probe_arithmetic.py [MODEL]     # MODEL: demo (default) or a directory
"""

import sys

import torch

from modint.data.mini import load_mini
from modint.data.sample import load_image
from modint.models.loading import load_adapter
from modint.perturb import apply_condition, default_pools

CONCEPT_LAYER = 3  # DemoConfig.concept_layer: half the LM's depth


def main() -> None:
    adapter = load_adapter(sys.argv[1] if len(sys.argv) > 1 else "demo")
    model, tok = adapter.model, adapter.tokenizer
    pools = default_pools()
    samples = [apply_condition(s.replace(image=load_image(s)), "noise_image", seed=0, pools=pools)
               for s in load_mini("test") if s.family == "text_heavy" and s.meta.get("task") == "arithmetic"]
    numbers = [tok.encode(f" {n}", add_special_tokens=False)[0] for n in range(19)]  # sums 0..18
    lm = model.model.language_model
    layers = range(1, len(lm.layers) + 1)
    named = {layer: 0 for layer in layers}
    right = concept_is_option = follows_concept = 0
    with torch.no_grad():
        for i in range(0, len(samples), 25):
            batch = adapter.encode(samples[i:i + 25])
            hidden = model(**batch.inputs, output_hidden_states=True).hidden_states
            scored = adapter.score(batch.samples)
            for j, sample in enumerate(batch.samples):
                at = batch.answer_index[j]
                lens = {layer: int(torch.argmax(model.lm_head(lm.norm(hidden[layer][j, at]))[numbers]))
                        for layer in layers}
                gold = int(sample.options[sample.answer])
                for layer in layers:
                    named[layer] += lens[layer] == gold
                right += scored[j].pred == sample.answer
                options = [int(o) for o in sample.options]
                if lens[CONCEPT_LAYER] in options:
                    concept_is_option += 1
                    follows_concept += scored[j].pred == options.index(lens[CONCEPT_LAYER])
    n = len(samples)
    print("sum named right at layer L:", {layer: f"{named[layer]}/{n}" for layer in layers})
    print(f"multiple choice right: {right}/{n}")
    print(f"layer {CONCEPT_LAYER} names one of the options: {concept_is_option}; "
          f"the answer picks that option: {follows_concept}")


if __name__ == "__main__":
    main()
