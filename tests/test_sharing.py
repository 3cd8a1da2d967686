"""Prefix sharing (modint.models.sharing): every family scores as the reference path does within
1e-4 while computing each distinct header + image once, families where it cannot apply fall
back and say why, the prefix cache keeps to its bound, suffix buckets are the cheapest cut, and
a diagnosis run writes the same records run after run."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import make_image
from modint.data.sample import Sample
from modint.diagnose.engine import DiagnoseConfig, run_diagnosis
from modint.models.adapter import VLMAdapter
from modint.models.sharing import (ENCODER_DECODER_REASON, PrefixCache, PrefixEntry, SharedScorer, bucket_by_length,
                                   sharing_blocker)
from modint.models.tiny import TINY_BUILDERS, build_tiny

FAMILIES = sorted(TINY_BUILDERS)
# tiny family -> why sharing does not apply (the Flan-T5 variants: their encoder-decoder LM)
NO_SHARING = {"paligemma": "both directions", "instructblip": "Q-Former reads the instruction",
              "blip-2-t5": ENCODER_DECODER_REASON, "instructblip-t5": ENCODER_DECODER_REASON}


def _conditions_of_three_samples():
    """What a diagnosis batch holds: one image-heavy sample under three text conditions (one
    image), two text-heavy samples on the same black canvas and text only, a VQA sample."""
    photo, black = make_image(1), Image.new("RGB", (50, 40))
    shape = ("What shape is shown?", ("circle", "square", "star", "cross"), 1)
    return [
        Sample("img", "image_heavy", *shape, photo),
        Sample("img", "image_heavy", *shape, photo, context="All odd numbers are prime numbers. Cats sleep a lot."),
        Sample("img", "image_heavy", *shape, photo, context="The picture seems to describe a star."),
        Sample("sum", "text_heavy", "What is 2 + 2?", ("4", "5", "6"), 0, black),
        Sample("pet", "text_heavy", "Which animal is a mammal?", ("cat", "fish"), 0, black),
        Sample("sum", "text_heavy", "What is 2 + 2?", ("4", "5", "6"), 0, None),
        Sample("pet", "text_heavy", "Which animal is a mammal?", ("cat", "fish"), 0, None, context="Rain is wet."),
        Sample("vqa", "vqa", "How many circles?", ("1", "2", "3", "4", "5"), 4, make_image(2, (64, 64))),
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_shared_scores_equal_the_reference_path(family):
    model, processor = build_tiny(family, seed=0)
    adapter = VLMAdapter(model.float().eval(), processor)
    samples = _conditions_of_three_samples()
    reference = adapter.score(samples)
    scorer = SharedScorer(adapter, PrefixCache(), batch_size=3)
    first, again = scorer.score(samples[:5]) + scorer.score(samples[5:]), scorer.score(samples)
    for got in (first, again):
        assert [g.pred for g in got] == [r.pred for r in reference]
        for g, r in zip(got, reference):
            np.testing.assert_allclose(g.probs, r.probs, atol=1e-4, rtol=0)
    stats = scorer.cache.stats()
    if family in NO_SHARING:
        assert NO_SHARING[family] in scorer.blocker and stats["misses"] == stats["positions_computed"] == 0
        return
    assert scorer.blocker is None
    # Three distinct images (the photo, the canvas, the VQA picture) and the text-only header,
    # each computed once; the second call finds them all (a canvas across calls too).
    assert stats["vision_encodings"] == 3 and stats["misses"] == 4
    assert stats["hits"] == 2 * len(samples) - 4


def test_every_family_where_sharing_cannot_apply_names_the_reason():
    for family in FAMILIES:
        model, processor = build_tiny(family, seed=0)
        reason = sharing_blocker(VLMAdapter(model, processor))
        assert (reason is not None) == (family in NO_SHARING), family
        if reason:
            assert NO_SHARING[family] in reason


def _entry(nbytes):
    return PrefixEntry(cache=None, length=1, nbytes=nbytes)


def test_prefix_cache_evicts_the_least_recently_used_within_its_bound():
    cache = PrefixCache(max_bytes=100)
    cache.put(("a",), _entry(40))
    cache.put(("b",), _entry(40))
    assert cache.get(("a",)) is not None  # a is now the most recent
    cache.put(("c",), _entry(40))  # 120 bytes: b goes
    assert cache.get(("b",)) is None and cache.get(("a",)) and cache.get(("c",))
    assert (cache.nbytes, cache.evictions, len(cache)) == (80, 1, 2)
    cache.put(("huge",), _entry(101))  # larger than the bound: not kept, nothing evicted for it
    assert len(cache) == 2 and cache.get(("huge",)) is None
    assert (cache.hits, cache.misses) == (3, 2)


def test_a_small_cache_evicts_and_still_scores_right(tiny_llava_adapter):
    samples = _conditions_of_three_samples()
    reference = tiny_llava_adapter.score(samples)
    scorer = SharedScorer(tiny_llava_adapter, PrefixCache(max_bytes=60_000), batch_size=4)
    got = scorer.score(samples) + scorer.score(samples)
    for g, r in zip(got, reference + reference):
        np.testing.assert_allclose(g.probs, r.probs, atol=1e-4, rtol=0)
    stats = scorer.cache.stats()
    assert stats["evictions"] > 0 and 0 < stats["bytes"] <= 60_000


def test_buckets_are_the_cheapest_cut_of_sorted_lengths():
    # one batch: 5 x 60 + 32 = 332; [1, 2, 3] + [50, 60]: 9 + 32 + 120 + 32 = 193;
    # [1, 2, 3] + [50] + [60]: 9 + 32 + 50 + 32 + 60 + 32 = 215
    assert bucket_by_length([1, 2, 3, 50, 60], max_rows=16, forward_cost=32) == [(0, 3), (3, 5)]
    # a forward costs more than the padding: one batch (4 x 10 + 100 = 140 against 2 x 100 + 10 + 10 = 220)
    assert bucket_by_length([8, 9, 10, 10], max_rows=16, forward_cost=100) == [(0, 4)]
    cuts = bucket_by_length([5] * 5, max_rows=2, forward_cost=32)
    assert len(cuts) == 3 and all(b - a <= 2 for a, b in cuts) and cuts[-1][1] == 5
    assert bucket_by_length([], max_rows=4) == []


def _records(folder):
    return (folder / "records.jsonl").read_bytes()


def test_a_shared_run_writes_the_same_records_twice_and_matches_no_share(tiny_llava_adapter, tmp_path):
    from modint.api import load_benchmark

    samples = load_benchmark("mini", split="test", limit=6)
    config = dict(batch_size=5, n_boot=20)  # small batches: canvases and photos recur across batches
    run_diagnosis(tiny_llava_adapter, samples, tmp_path / "a", DiagnoseConfig(**config))
    run_diagnosis(tiny_llava_adapter, samples, tmp_path / "b", DiagnoseConfig(**config))
    run_diagnosis(tiny_llava_adapter, samples, tmp_path / "ref", DiagnoseConfig(share=False, **config))
    assert _records(tmp_path / "a") == _records(tmp_path / "b")
    shared = [json.loads(line) for line in _records(tmp_path / "a").splitlines()]
    reference = [json.loads(line) for line in _records(tmp_path / "ref").splitlines()]
    assert [(r["id"], r["condition"], r["pred"]) for r in shared] == [(r["id"], r["condition"], r["pred"])
                                                                      for r in reference]
    for s, r in zip(shared, reference):
        np.testing.assert_allclose(s["probs"], r["probs"], atol=1e-4, rtol=0)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())["prefix_sharing"]
    images = sum(1 for r in shared if r["condition"] != "no_image")
    assert manifest["used"] and manifest["hits"] > 0 and manifest["vision_encodings"] < images
    assert json.loads((tmp_path / "ref" / "manifest.json").read_text())["prefix_sharing"]["requested"] is False


def test_a_family_without_sharing_runs_the_reference_path_and_says_why(tmp_path, caplog):
    model, processor = build_tiny("paligemma", seed=0)
    adapter = VLMAdapter(model.float().eval(), processor)
    samples = _conditions_of_three_samples()[:1]
    with caplog.at_level("INFO", logger="modint.diagnose.engine"):
        run_diagnosis(adapter, samples, tmp_path, DiagnoseConfig(conditions=["clean"], n_boot=10))
    manifest = json.loads((tmp_path / "manifest.json").read_text())["prefix_sharing"]
    assert manifest["used"] is False and "both directions" in manifest["reason"]
    assert "prefix sharing does not apply" in caplog.text


def test_cli_no_share_selects_the_reference_path_and_the_cache_size_is_an_option(tmp_path):
    from typer.testing import CliRunner

    from modint.cli import app

    result = CliRunner().invoke(app, ["diagnose", "--model", "tiny-random-llava", "--limit", "2", "--no-share",
                                      "--conditions", "clean", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["share"] is False and manifest["prefix_sharing"]["used"] is False
    args = ["diagnose", "--model", "tiny-random-llava", "--limit", "2", "--conditions", "clean,black_image",
            "--prefix-cache-mb", "0", "--out", str(tmp_path / "nocache"), "--quiet"]
    assert CliRunner().invoke(app, args).exit_code == 0
    manifest = json.loads((tmp_path / "nocache" / "manifest.json").read_text())["prefix_sharing"]
    assert manifest["used"] and manifest["entries"] == manifest["bytes"] == 0 and manifest["misses"] > 0


def test_a_prefix_longer_than_a_sliding_window_continues_right():
    model, processor = build_tiny("gemma3", seed=0)  # sliding + full attention layers
    model.config.text_config.sliding_window = 16  # shorter than every header + image prefix
    for module in model.modules():
        if getattr(module, "sliding_window", None):
            module.sliding_window = 16
    adapter = VLMAdapter(model.float().eval(), processor)
    samples = _conditions_of_three_samples()
    scorer = SharedScorer(adapter, batch_size=3)
    for got, ref in zip(scorer.score(samples), adapter.score(samples)):
        np.testing.assert_allclose(got.probs, ref.probs, atol=1e-4, rtol=0)
    assert min(entry.length for entry in scorer.cache._entries.values()) > 16


def test_a_prefix_has_the_same_bits_alone_or_beside_others_and_the_header_is_computed_once(tiny_llava_adapter):
    import torch

    rows = [Sample(f"s{i}", "text_heavy", "What is 2 + 2?", ("4", "5"), 0, make_image(i)) for i in range(3)]
    alone, together = SharedScorer(tiny_llava_adapter, PrefixCache()), SharedScorer(tiny_llava_adapter, PrefixCache())
    alone.score(rows[:1])
    together.score(rows)
    (key, entry), = alone.cache._entries.items()
    beside = together.cache._entries[key]
    for mine, theirs in zip(entry.cache.layers, beside.cache.layers):
        assert torch.equal(mine.keys, theirs.keys) and torch.equal(mine.values, theirs.values)
    ids = tiny_llava_adapter.encode(rows[:1]).inputs["input_ids"][0].tolist()
    head = ids.index(tiny_llava_adapter.image_token_id)  # the chat header before the image
    split = len(ids) - ids[::-1].index(tiny_llava_adapter.image_token_id)
    assert head > 0 and entry.length == split
    # the header once, each image and what follows it up to the split, then three equal suffixes
    assert together.cache.positions_computed == head + 3 * (split - head) + 3 * (len(ids) - split)


def test_prefixes_other_calls_use_get_a_forward_of_their_own_and_the_rest_share_one(tiny_llava_adapter):
    from modint.models.sharing import use_key

    rows = [Sample(f"s{i}", "text_heavy", "What is 2 + 2?", ("4", "5"), 0, make_image(i)) for i in range(4)]
    scorer = SharedScorer(tiny_llava_adapter, PrefixCache(), batch_size=8)
    scorer.reused = {use_key(rows[2].image)}  # as the engine's plan says: a canvas other calls use
    forwards = []
    compute = scorer._compute_prefixes
    scorer._compute_prefixes = lambda firsts: forwards.append([r.sample.id for r in firsts]) or compute(firsts)
    scorer.score(rows)
    assert sorted(forwards) == [["s0", "s1", "s3"], ["s2"]]
