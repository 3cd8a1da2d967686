"""Reliance measures: every family runs them, forced attention reads as forced, a modality the
model never attends to has a zero knockout, spans are the context and question text, the lens at
the last layer is the model's own answer, and the aggregates match hand-computed values."""

import json

import numpy as np
import pytest
import torch

from conftest import make_image
from modint.data.sample import Sample
from modint.diagnose.engine import DiagnoseConfig, run_diagnosis
from modint.diagnose.reliance import REGIONS, lens_logits, measure, text_stack, token_spans
from modint.diagnose.reliance_metrics import auroc, reliance_summary
from modint.models.adapter import VLMAdapter
from modint.models.tiny import TINY_BUILDERS, build_tiny

SHAPES = ("circle", "square", "star", "cross")


def _samples():
    return [Sample("img-1", "image_heavy", "What shape is shown?", SHAPES, 1, make_image(1)),
            Sample("txt-1", "text_heavy", "What is 2 + 2?", ("4", "5", "6"), 0, None)]


@pytest.fixture(scope="module")
def llava():
    model, processor = build_tiny("llava", seed=0)
    return VLMAdapter(model.float().eval(), processor)


@pytest.mark.parametrize("family", sorted(TINY_BUILDERS))
def test_every_family_runs_diagnose_with_reliance(family, tmp_path):
    model, processor = build_tiny(family, seed=0)
    adapter = VLMAdapter(model.float().eval(), processor)
    config = DiagnoseConfig(conditions=["clean", "misleading_text", "no_image"], n_boot=20, reliance=True)
    summary = run_diagnosis(adapter, _samples(), tmp_path, config)
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert {r["condition"] for r in records} == {"clean", "misleading_text", "no_image"}
    assert all(r["error"] is None for r in records)
    plain = {s.id: s for s in _samples()}
    for r in records:
        rel = r["reliance"]
        for layer in range(rel["layers"]):  # the answer row's attention is a distribution over the input
            assert sum(rel["attention_by_layer"][k][layer] for k in REGIONS) == pytest.approx(1, abs=1e-4)
        assert rel["lens_answer_layer"] is not None  # the last layer's lens is the model's own answer
        if r["condition"] == "no_image":
            assert rel["attention"]["image"] == 0 and rel["knockout_image"] == 0 and rel["tokens"]["image"] == 0
        if r["condition"] == "misleading_text":
            assert rel["tokens"]["context"] > 0 and rel["knockout_context"] != 0
        if r["condition"] == "clean":  # the scores are the reference path's
            assert r["probs"] == pytest.approx(adapter.score([plain[r["id"]]])[0].probs.tolist(), abs=1e-5)
    assert {(row["family"], row["condition"]) for row in summary["reliance"]} == \
        {(r["family"], r["condition"]) for r in records}
    stack = text_stack(adapter)
    batch = adapter.encode(_samples()[:1])
    seen = []
    handle = stack.layers[-1].register_forward_hook(lambda m, a, out: seen.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        logits = adapter.answer_logits(batch)
        handle.remove()
        position = 0 if adapter.encoder_decoder else int(batch.answer_index[0])
        assert torch.allclose(lens_logits(stack, seen[0][0, position]), logits[0], atol=1e-4)


def _bias_attention(adapter, rows_image_mask, toward_image: bool):
    """Pre-hooks adding -1e4 to the attention scores of every non-image key (toward the image) or
    of every image key (away from it), in every layer: a model forced one way."""
    def pre_hook(module, args, kwargs):
        mask = kwargs["attention_mask"]
        keys = rows_image_mask[:, None, None, : mask.shape[-1]].to(mask.device)
        kwargs["attention_mask"] = mask + torch.where(keys if not toward_image else ~keys, -1e4, 0.0)
        return args, kwargs

    return [layer.register_forward_pre_hook(pre_hook, with_kwargs=True) for layer in text_stack(adapter).layers]


def test_attention_forced_toward_the_image_reads_as_image_mass_one(llava):
    sample = Sample("img-1", "image_heavy", "What shape is shown?", SHAPES, 1, make_image(1), context="A star.")
    handles = _bias_attention(llava, llava.encode([sample]).image_token_mask, toward_image=True)
    try:
        (_, _, forced), = measure(llava, [sample])
    finally:
        for h in handles:
            h.remove()
    (_, _, free), = measure(llava, [sample])
    assert all(v > 0.999 for v in forced["attention_by_layer"]["image"]) and forced["attention"]["image"] > 0.999
    assert free["attention"]["image"] < 0.5  # the untouched model spreads its attention


def test_knockout_of_a_modality_the_model_never_attends_to_is_zero(llava):
    sample = Sample("img-1", "image_heavy", "What shape is shown?", SHAPES, 1, make_image(1), context="A star.")
    (_, _, free), = measure(llava, [sample])
    handles = _bias_attention(llava, llava.encode([sample]).image_token_mask, toward_image=False)
    try:
        (_, _, blind), = measure(llava, [sample])
    finally:
        for h in handles:
            h.remove()
    assert blind["attention"]["image"] < 1e-6
    assert abs(blind["knockout_image"]) < 1e-5
    assert abs(free["knockout_image"]) > 1e-4 and abs(blind["knockout_context"]) > 1e-4  # knockouts do act


def test_text_only_rows_have_zero_image_measures(llava):
    (_, _, m), = measure(llava, [Sample("t", "text_heavy", "What is 2 + 2?", ("4", "5"), 0, None)])
    assert m["attention"]["image"] == 0 and m["knockout_image"] == 0 and m["knockout_context"] == 0


def test_spans_are_the_context_and_the_question_text(llava):
    sample = Sample("img-1", "image_heavy", "What shape is shown?", SHAPES, 1, make_image(1),
                    context="The picture seems to describe a star.")
    ids = llava.encode([sample]).inputs["input_ids"][0].tolist()
    spans = token_spans(llava, sample)
    assert llava.tokenizer.decode(ids[slice(*spans["context"])]).strip() == sample.context
    question = llava.tokenizer.decode(ids[slice(*spans["question"])]).strip()
    assert question.startswith("What shape is shown?") and question.endswith("D: cross")


def test_lens_overtake_layer_is_where_the_distractor_stays_ahead(llava):
    from modint.diagnose.reliance import _first_layer_for_good

    assert _first_layer_for_good([False, True, False, True, True]) == 4
    assert _first_layer_for_good([True, True]) == 1
    assert _first_layer_for_good([True, False]) is None


def test_auroc_against_hand_computed_values():
    assert auroc([0.9, 0.8, 0.3, 0.5], [True, False, False, True]) == 0.75  # 3 of 4 pairs ordered
    assert auroc([0.5, 0.5, 0.2], [True, False, False]) == 0.75  # a tie counts half: (0.5 + 1) / 2
    assert auroc([0.1, 0.2], [True, True]) is None


def _rec(i, condition, pred, gold, attn_context, knockout=0.0):
    rel = {"attention": {"image": 0.1, "context": attn_context, "question": 0.2, "other": 0.7 - attn_context},
           "knockout_image": knockout, "knockout_context": 0.0, "lens_answer_layer": 2, "lens_overtake_layer": None}
    return {"id": i, "family": "image_heavy", "condition": condition, "gold": gold, "pred": pred,
            "correct": pred == gold, "error": None, "reliance": rel}


def test_paired_shift_flip_split_and_auroc_against_hand_computed_values():
    records = [_rec(i, "clean", 0, 0, 0.0, knockout=k) for i, k in zip("abcd", (-1.0, -2.0, -3.0, -4.0))]
    records.append(_rec("e", "clean", 1, 0, 0.0))  # wrong under the reference: not at risk
    for i, pred, mass, k in (("a", 1, 0.6, 0.0), ("b", 0, 0.2, -1.0), ("c", 2, 0.4, -1.0), ("d", 0, 0.5, -5.0),
                             ("e", 1, 0.3, 0.0)):
        records.append(_rec(i, "misleading_text", pred, 0, mass, knockout=k))
    rows = reliance_summary(records, {"image_heavy": "clean"}, n_boot=200, seed=0)
    assert [r["condition"] for r in rows] == ["clean", "misleading_text"]
    ctx = rows[1]["measures"]["attn_context"]
    assert ctx["mean"] == pytest.approx(2.0 / 5) and ctx["shift"] == pytest.approx(2.0 / 5)
    assert ctx["n_flipped"] == 2 and ctx["flipped_mean"] == pytest.approx(0.5)  # a and c
    assert ctx["n_kept"] == 3 and ctx["kept_mean"] == pytest.approx((0.2 + 0.5 + 0.3) / 3)
    # at risk: a, b, c, d; harmful: a (0.6), c (0.4) against b (0.2), d (0.5): 3 of 4 pairs ordered
    assert ctx["n_at_risk"] == 4 and ctx["n_harmful"] == 2 and ctx["auroc_harmful"] == 0.75
    lo, hi = ctx["auroc_ci95"]
    assert 0 <= lo <= 0.75 <= hi <= 1
    ko = rows[1]["measures"]["knockout_image"]
    # shifts: a +1, b +1, c +2, d -1 (e: 0 - 0) -> mean 3 / 5
    assert ko["shift"] == pytest.approx(3.0 / 5) and ko["n_paired"] == 5
    assert "shift" not in rows[0]["measures"]["attn_context"]


def test_reliance_needs_letter_scoring():
    with pytest.raises(ValueError, match="letters"):
        DiagnoseConfig(scoring="generate", reliance=True).check()


def test_measure_keeps_the_input_order(llava):
    samples = [Sample("t", "text_heavy", "What is 2 + 2?", ("4", "5"), 0, None),
               Sample("i", "image_heavy", "What shape is shown?", SHAPES, 1, make_image(3))]
    results = measure(llava, samples)
    assert [m["tokens"]["image"] > 0 for _, _, m in results] == [False, True]
    assert np.allclose(results[1][0], llava.score(samples[1:])[0].probs, atol=1e-5)


def test_compare_pairs_records_and_runs_a_wilcoxon_test():
    from modint.report.compare_reliance import reliance_changes, wilcoxon_p

    assert wilcoxon_p([1, 2, 3, 4, 5]) == pytest.approx(2 / 32)  # exact: only the all-positive signing is as extreme
    assert wilcoxon_p([0, 0]) == 1.0 and wilcoxon_p([]) is None
    before = [_rec(i, "misleading_text", 0, 0, 0.1 * k) for k, i in enumerate("abcde", start=1)]
    after = [_rec(i, "misleading_text", 0, 0, 0.1 * k - 0.05 * k) for k, i in enumerate("abcdf", start=1)]
    rows = {r["measure"]: r for r in reliance_changes([before, after], n_boot=100)}
    ctx = rows["attn_context"]
    # paired on a..d (e and f are in one run only): differences -0.05, -0.10, -0.15, -0.20
    assert ctx["n"] == 4 and ctx["diff"] == pytest.approx(-0.125) and ctx["first"] == pytest.approx(0.25)
    assert ctx["p"] == pytest.approx(2 / 16)
    assert rows["attn_image"]["diff"] == 0 and rows["attn_image"]["p"] == 1.0
    assert "lens_overtake_layer" not in rows  # None in both runs: nothing to pair


def test_report_has_a_reliance_panel_and_per_sample_values(llava, tmp_path):
    from modint.report.html import write_report

    samples = [Sample("img-1", "image_heavy", "What shape is shown?", SHAPES, 1, make_image(1))]
    run_diagnosis(llava, samples, tmp_path, DiagnoseConfig(conditions=["clean", "misleading_text"], n_boot=20,
                                                           reliance=True))
    html = write_report(tmp_path, samples=samples).read_text()
    assert 'id="reliance"' in html and "AUROC harmful" in html
    assert '"rel":"attention image ' in html  # the sample browser's data
