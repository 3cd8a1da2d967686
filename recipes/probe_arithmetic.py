"""Logit lens on the test split's 100 arithmetic questions under the noise image (the text-heavy
reference): does LM layer L, read through the final norm and the tied unembedding at the answer
position, already name the sum (as the deep supervision asks of layer 3)? And does the
multiple-choice answer pick the option that layer 3 names?

    python recipes/probe_arithmetic.py [MODEL]     # MODEL: demo (default) or a directory
"""
import sys
import torch, numpy as np
from modint.models.loading import load_adapter
from modint.data.mini import load_mini
from modint.data.sample import load_image
from modint.perturb import apply_condition, default_pools
ad = load_adapter(sys.argv[1] if len(sys.argv) > 1 else "demo"); m = ad.model; tok = ad.tokenizer
samples = [s for s in load_mini("test") if s.family == "text_heavy" and s.meta.get("task") == "arithmetic"]
pools = default_pools()
conv = [apply_condition(s.replace(image=load_image(s)), "noise_image", seed=0, pools=pools) for s in samples]
nums = [tok.encode(f" {n}", add_special_tokens=False)[0] for n in range(19)]
lm = m.model.language_model; norm = lm.norm; head = m.lm_head
res = {L: [0, 0] for L in range(1, 7)}; mc = 0; concept_in_opts = 0; agree = 0
with torch.no_grad():
    for i in range(0, len(conv), 25):
        batch = ad.encode(conv[i:i+25])
        out = m(**batch.inputs, output_hidden_states=True)
        scored = ad.score(conv[i:i+25])
        for j, s in enumerate(batch.samples):
            gold = int(s.options[s.answer]); pos = batch.answer_index[j]
            for L in range(1, 7):
                h = out.hidden_states[L][j, pos]
                logits = head(norm(h))[nums]
                pred = int(torch.argmax(logits))
                res[L][0] += pred == gold; res[L][1] += 1
            h = out.hidden_states[3][j, pos]; pred3 = int(torch.argmax(head(norm(h))[nums]))
            ok = scored[j].pred == s.answer; mc += ok
            opts = [int(o) for o in s.options]
            if pred3 in opts:
                concept_in_opts += 1; agree += scored[j].pred == opts.index(pred3)
print("sum named right at layer L:", {L: f"{a}/{b}" for L, (a, b) in res.items()})
print("multiple choice right:", mc, "/", len(conv))
print("layer 3 names one of the options:", concept_in_opts, "; the answer picks that option:", agree)
