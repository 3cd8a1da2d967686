"""Where does a demo-model checkpoint lose VQA? Probes of shape-to-colour/place binding:

    python scripts/probe_binding.py src/modint/assets/demo

1. per patch: how well a linear probe names the shape and the colour covering each patch of a
   VQA scene, from the tower's output and from the projector's (what the LM reads);
2. readout: a one-layer attention probe (a learned query per asked shape or side, keys and values
   from the frozen tower's patches) trained on training-split VQA: the accuracy that the tower's
   features allow for `colour_of` and `position` (the LM scores about half of it);
3. LM attention: at the answer position of `colour_of` questions, per LM layer and head, the share
   of attention on image tokens, and of that the share on the asked shape's patches (the asked
   shape covers about 40% of the object area: a share near it means no binding);
4. norms: image tokens against text embeddings as the LM's residual stream receives them.

The linear and attention probes overfit small data; read their figures as lower bounds."""

import argparse

import numpy as np
import torch


class Readout(torch.nn.Module):
    """One attention layer: a learned query per question (asked shape or side) over the patches."""

    def __init__(self, dim: int, n_queries: int, n_answers: int, n_patches: int):
        super().__init__()
        self.query, self.key = torch.nn.Embedding(n_queries, 64), torch.nn.Linear(dim, 64)
        self.pos = torch.nn.Parameter(torch.zeros(n_patches, 64))
        self.value, self.out = torch.nn.Linear(dim, 128), torch.nn.Linear(128, n_answers)

    def forward(self, feats: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        att = torch.softmax(torch.einsum("bd,bpd->bp", self.query(query), self.key(feats) + self.pos) / 8, -1)
        return self.out(torch.nn.functional.gelu(torch.einsum("bp,bpd->bd", att, self.value(feats))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--train", type=int, default=1200, help="training-split scenes per probe")
    parser.add_argument("--test", type=int, default=150, help="test-split scenes per probe")
    args = parser.parse_args()
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from modint.data import facts
    from modint.data.mini import make_sample
    from modint.data.sample import load_image
    from modint.models.adapter import VLMAdapter
    from modint.zoo.demo import asked_patches, scene_labels

    torch.manual_seed(0)
    model = LlavaForConditionalGeneration.from_pretrained(args.checkpoint, dtype=torch.float32,
                                                          attn_implementation="eager").eval()
    processor = AutoProcessor.from_pretrained(args.checkpoint)
    layer = model.config.vision_feature_layer

    @torch.no_grad()
    def patches(sample):
        pixels = processor.image_processor([sample.image()], return_tensors="pt")["pixel_values"]
        tower = model.model.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states[layer][0, 1:]
        return tower, model.model.multi_modal_projector(tower)

    def vqa(split, n, task=None):
        out, i = [], 0
        while len(out) < n:
            s = make_sample("vqa", split, i)
            i += 1
            if task is None or s.meta["task"] == task:
                out.append(s)
        return out

    def standardise(x, x_test):
        mu, sd = x.reshape(-1, x.shape[-1]).mean(0), x.reshape(-1, x.shape[-1]).std(0) + 1e-5
        return (x - mu) / sd, (x_test - mu) / sd

    def fit(head, inputs, y, inputs_test, steps=400):
        """Train ``head(*inputs)`` on labels ``y``; its logits on ``inputs_test``."""
        opt = torch.optim.Adam(head.parameters(), 3e-3)
        for _ in range(steps):
            idx = torch.randint(len(y), (256,))
            loss = torch.nn.functional.cross_entropy(head(*(t[idx] for t in inputs)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return head(*inputs_test)

    # 1. per patch
    grid = int(round(len(patches(vqa("test", 1)[0])[0]) ** 0.5))
    rows = {}
    for split, n in (("train", args.train // 3), ("test", args.test)):
        feats, shape, colour = ([], []), [], []
        for s in vqa(split, n):
            for where, f in zip(feats, patches(s)):
                where.append(f)
            labels = scene_labels(s.image.args[0], grid)
            shape.append(labels["shape"])
            colour.append(labels["colour"])
        rows[split] = ([torch.cat(f) for f in feats], torch.from_numpy(np.concatenate(shape)), torch.from_numpy(np.concatenate(colour)))
    print("1. per-patch linear probe on VQA scenes (accuracy on patches an object covers)")
    for k, where in enumerate(("tower", "projector")):
        for name, j in (("shape", 1), ("colour", 2)):
            y, y_test = rows["train"][j], rows["test"][j]
            x, x_test = standardise(rows["train"][0][k], rows["test"][0][k])
            pred = fit(torch.nn.Linear(x.shape[-1], int(y.max()) + 1), (x,), y, (x_test,)).argmax(-1)
            fg = y_test > 0
            print(f"   {where:9s} {name:6s} {(pred[fg] == y_test[fg]).float().mean():.3f}")

    # 2. readout by one attention layer
    print("2. one-layer attention readout from the frozen tower (4-option accuracy)")
    shapes, colours, sides = list(facts.SHAPES), list(facts.COLOURS), ["left", "right", "top", "bottom"]
    for task, queries, answers, key in (("colour_of", shapes, colours, "target"), ("position", sides, shapes, "side")):
        data = {}
        for split, n in (("train", args.train), ("test", args.test)):
            ss = vqa(split, n, task)
            data[split] = (torch.stack([patches(s)[0] for s in ss]), torch.tensor([queries.index(s.meta[key]) for s in ss]),
                           torch.tensor([answers.index(s.meta["concept"]) for s in ss]),
                           torch.tensor([[answers.index(o) for o in s.options] for s in ss]))
        x, q, y, _ = data["train"]
        xt, qt, yt, options = data["test"]
        x, xt = standardise(x, xt)
        logits = fit(Readout(x.shape[-1], len(queries), len(answers), x.shape[1]), (x, q), y, (xt, qt))
        choice = torch.gather(logits, 1, options).argmax(-1)
        print(f"   {task:9s} {(options[torch.arange(len(options)), choice] == yt).float().mean():.3f}")

    # 3. the LM's attention at the answer position
    print("3. LM attention at the answer position, colour_of (per head): image share | asked-shape share of it")
    adapter = VLMAdapter(model, processor)
    totals = None
    ss = vqa("test", 30, "colour_of")
    for s in ss:
        on_target = torch.from_numpy(asked_patches(s, grid))  # colour_of shapes always cover patches
        s = s.replace(image=load_image(s))
        inputs = processor(text=[adapter.prompt(s)], images=[s.image], return_tensors="pt")
        with torch.no_grad():
            att = model(**inputs, output_attentions=True).attentions
        image = inputs["input_ids"][0] == model.config.image_token_id
        per_layer = torch.stack([torch.stack([a[0, :, -1][:, image].sum(-1),
                                              a[0, :, -1][:, image][:, on_target].sum(-1) / a[0, :, -1][:, image].sum(-1).clamp_min(1e-9)])
                                 for a in att])
        totals = per_layer if totals is None else totals + per_layer
    for i, (image_share, target_share) in enumerate(totals / len(ss)):
        print(f"   layer {i}: " + "  ".join(f"{a:.2f}|{b:.2f}" for a, b in zip(image_share.tolist(), target_share.tolist())))

    # 4. norms
    tower, projected = patches(ss[0])
    embeddings = model.model.language_model.embed_tokens.weight
    print(f"4. mean L2 norm: image tokens {projected.norm(dim=-1).mean():.1f}, text embeddings {embeddings.norm(dim=-1).mean():.2f}")


if __name__ == "__main__":
    main()
