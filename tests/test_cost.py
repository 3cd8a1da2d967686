"""The cost counters behind benchmarks/diagnose_throughput.py, against hand counts; the
LLaVA-1.5-geometry tiny model; generate-and-parse's one retry."""

import pytest
import torch
from PIL import Image

from modint.data.sample import Sample
from modint.diagnose.cost import (DistinctPositions, PositionCounter, PrefixTrie, VisionCounter, count_flops,
                                  image_digest, row_keys)
from modint.diagnose.engine import DiagnoseConfig, Scorer

IMG = 99


def test_prefix_trie_counts_each_distinct_prefix_once():
    trie = PrefixTrie()
    for row in ([1, 2, 3], [1, 2, 4], [1, 2, 3], [5], [1, 2]):
        trie.add(row)
    # 1, 1-2, 1-2-3, 1-2-4, 5: the repeated row and the prefix row add nothing
    assert trie.nodes == 5
    assert trie.positions == 12
    # computed as a padded batch of the five rows: 5 x 3 positions -> redundancy 15 / 5
    assert 5 * 3 / trie.nodes == 3.0


def test_image_positions_are_keyed_by_the_image_not_the_placeholder():
    red, blue = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    assert image_digest(red) == image_digest(Image.new("RGB", (4, 4), (255, 0, 0)))
    assert image_digest(red) != image_digest(blue)
    assert row_keys([1, IMG, IMG, 7], IMG, "h") == [1, ("h", 0), ("h", 1), 7]
    trie = PrefixTrie()
    trie.add(row_keys([1, IMG, IMG, 7], IMG, image_digest(red)))
    trie.add(row_keys([1, IMG, IMG, 8], IMG, image_digest(red)))  # same image: shares 1 + 2 image positions
    assert trie.nodes == 5
    trie.add(row_keys([1, IMG, IMG, 7], IMG, image_digest(blue)))  # another image: only "1" is shared
    assert trie.nodes == 8


def _common_prefix(a: list, b: list) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_counters_on_a_tiny_model_match_a_hand_count(tiny_llava_adapter):
    adapter = tiny_llava_adapter
    image = Image.new("RGB", (40, 40), (10, 200, 30))
    clean = Sample("s", "image_heavy", "Which shape?", ("circle", "square"), 0, image)
    rows = [clean, clean.replace(context="The sky is green."), Sample("t", "text_heavy", "2+2?", ("4", "5"), 0)]
    singles = [adapter.encode([s]).inputs["input_ids"][0].tolist() for s in rows]  # unpadded, one at a time
    distinct, computed, vision = DistinctPositions(total=True), PositionCounter(), VisionCounter()
    with distinct.watch(adapter), computed.watch(adapter), vision.watch(adapter):
        adapter.score(rows)
    # one forward, right-padded to the longest row
    assert computed.calls == 1 and computed.positions == 3 * max(len(r) for r in singles)
    assert vision.images == 2  # the image-heavy rows encode their (same) image once each
    n_image = singles[0].count(adapter.image_token_id)
    assert n_image > 0
    shared = _common_prefix(singles[0], singles[1])
    assert shared > n_image  # the chat header and the image
    image_heavy = len(singles[0]) + len(singles[1]) - shared
    header = max(_common_prefix(singles[2], singles[0]), _common_prefix(singles[2], singles[1]))
    assert header > 0  # the text-only row shares the system header with the image rows
    assert distinct.counts() == {"image_heavy": image_heavy, "text_heavy": len(singles[2]),
                                 "all": image_heavy + len(singles[2]) - header}
    assert not hasattr(adapter.encode, "__wrapped__") and "encode" not in vars(adapter)  # unwrapped again


def test_the_trie_and_the_shared_scorer_count_the_same_distinct_images(tiny_llava_adapter):
    # Two decoded copies of one picture (separate objects, same pixels) are one prefix on both
    # sides; a picture that differs in one pixel is another, on both sides.
    from modint.models.sharing import PrefixCache, SharedScorer

    pixels = [(x * 7 % 256, x * 13 % 256, 90) for x in range(40 * 40)]
    first, copy, other = (Image.new("RGB", (40, 40)) for _ in range(3))
    first.putdata(pixels)
    copy.putdata(pixels)
    other.putdata(pixels[:-1] + [(0, 0, 0)])
    rows = [Sample(f"s{i}", "text_heavy", "2+2?", ("4", "5"), 0, image) for i, image in
            enumerate((first, copy, other, first))]
    distinct = DistinctPositions()
    distinct.add_batch(tiny_llava_adapter.encode(rows), tiny_llava_adapter.image_token_id)
    scorer = SharedScorer(tiny_llava_adapter, PrefixCache())
    computed = []
    compute = scorer._compute_prefixes
    scorer._compute_prefixes = lambda firsts: computed.extend(r.sample.id for r in firsts) or compute(firsts)
    scorer.score(rows)
    assert sorted(computed) == ["s0", "s2"]  # s1 and s3 reuse s0's prefix
    singles = [tiny_llava_adapter.encode([s]).inputs["input_ids"][0].tolist() for s in rows]
    assert singles[0].count(tiny_llava_adapter.image_token_id) > 0
    head = singles[0].index(tiny_llava_adapter.image_token_id)
    assert all(r == singles[0] for r in singles)  # same tokens: only the image keys tell the rows apart
    # the header, two images, and after each image the rest of the row once
    assert distinct.counts() == {"text_heavy": head + 2 * (len(singles[0]) - head)}


def test_left_padding_counts_the_same_distinct_positions(tiny_llava_adapter):
    rows = [Sample("t", "text_heavy", "2+2?", ("4", "5"), 0), Sample("u", "text_heavy", "What is 12 + 30?", ("42", "41"), 0)]
    right, left = DistinctPositions(), DistinctPositions()
    right.add_batch(tiny_llava_adapter.encode(rows), tiny_llava_adapter.image_token_id)
    left.add_batch(tiny_llava_adapter.encode(rows, padding_side="left"), tiny_llava_adapter.image_token_id)
    assert right.counts() == left.counts()


def test_flop_count_includes_cpu_attention():
    q = torch.randn(2, 4, 10, 8)
    a, b = torch.randn(6, 5), torch.randn(5, 3)
    with count_flops() as mode:
        torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(2, 1, 10, 10, dtype=torch.bool))
        torch.mm(a, b)
    # attention: two batched matmuls of 2*4 heads, each 2 * 10 * 10 * 8; the mm: 2 * 6 * 5 * 3
    assert mode.get_total_flops() == 2 * (2 * 2 * 4 * 10 * 10 * 8) + 2 * 6 * 5 * 3


def test_llava_geometry_model_has_576_image_tokens_before_a_wide_lm():
    from modint.models import load_adapter

    adapter = load_adapter("tiny-random-llava-1.5-geometry")
    sample = Sample("s", "image_heavy", "Which shape?", ("circle", "square"), 0, Image.new("RGB", (128, 128)))
    batch = adapter.encode([sample])
    assert int(batch.image_token_mask.sum()) == 576
    assert tuple(batch.inputs["pixel_values"].shape[-2:]) == (336, 336)
    assert adapter.model.config.text_config.hidden_size >= 512
    assert adapter.model.config.vision_config.patch_size == 14


class _ScriptedGenerator:
    """generate() answers from a script keyed by (question, max_new_tokens); records its calls."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    def generate(self, samples, max_new_tokens, repetition_penalty):
        self.calls.append(([s.id for s in samples], max_new_tokens))
        return [self.script[(s.id, max_new_tokens)] for s in samples]

    def parse(self, text, sample):
        from modint.models.prompts import parse_answer

        return parse_answer(text, sample.options)


def test_generate_retries_an_unparsed_answer_once_with_room_to_run_on():
    samples = [Sample(i, "text_heavy", "q?", ("red", "blue"), 1) for i in ("ok", "late", "never")]
    fake = _ScriptedGenerator({("ok", 10): "B", ("late", 10): "Well, the", ("never", 10): "Hmm",
                               ("late", 20): "Well, the answer is B", ("never", 20): "Hmm, hmm"})
    records = Scorer(fake, DiagnoseConfig(scoring="generate"))._score([(s, "noise_image") for s in samples])
    assert fake.calls == [(["ok", "late", "never"], 10), (["late", "never"], 20)]
    assert [r["pred"] for r in records] == [1, 1, None]
    assert [r.get("retried", False) for r in records] == [False, True, True]
    assert records[1]["response"] == "Well, the answer is B" and records[1]["correct"]


@pytest.mark.parametrize("texts", [{("ok", 10): "A"}])
def test_generate_does_not_retry_when_every_answer_parses(texts):
    fake = _ScriptedGenerator(texts)
    records = Scorer(fake, DiagnoseConfig(scoring="generate"))._score(
        [(Sample("ok", "text_heavy", "q?", ("red", "blue"), 0), "noise_image")])
    assert len(fake.calls) == 1 and records[0]["pred"] == 0 and "retried" not in records[0]


def _benchmark_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "diagnose_throughput.py"
    spec = importlib.util.spec_from_file_location("diagnose_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_compares_paths_record_by_record():
    bench = _benchmark_script()
    reference = [{"id": "a", "condition": "clean", "probs": [0.6, 0.4], "pred": 0},
                 {"id": "a", "condition": "unrelated_text", "probs": [0.3, 0.7], "pred": 1}]
    shared = [{"id": "a", "condition": "unrelated_text", "probs": [0.30003, 0.69997], "pred": 1},
              {"id": "a", "condition": "clean", "probs": [0.59999, 0.40001], "pred": 0}]  # another order
    diff, same = bench.compare_records(shared, reference)
    assert diff == pytest.approx(3e-5) and same
    flipped = [dict(shared[0]), dict(shared[1], pred=1)]
    assert bench.compare_records(flipped, reference)[1] is False
    assert bench.compare_records(shared[:1], reference)[1] is False  # a record missing on one side


def test_benchmark_redundancy_is_computed_over_distinct_per_family():
    bench = _benchmark_script()
    path = {"llm_positions_by_family": {"image_heavy": 300, "vqa": 50}, "llm_positions_computed": 400}
    distinct = {"image_heavy": 100, "vqa": 50, "all": 140}
    assert bench.redundancy(path, distinct) == {"image_heavy": 3.0, "vqa": 1.0, "all": round(400 / 140, 3)}
    assert bench.redundancy({"llm_positions_computed": 400}, distinct) is None  # no per-family counts
