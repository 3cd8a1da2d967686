"""Five loader defects found on genuine files in each benchmark's native layout (issue 28), each on
a fixture laid out as the real dataset lays it out."""

import base64
import io
import json

from PIL import Image

from modint.data.formats import load_path
from modint.data.formats.common import row_error
from modint.data.formats.tools import convert_dataset, inspect_dataset
from modint.data.sample import load_image


def jpeg_bytes(colour=(200, 30, 30), size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def png_bytes(colour=(10, 200, 10), size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def test_convert_leaves_out_rows_whose_image_does_not_decode(tmp_path):
    # Caltech-101: 101_ObjectCategories/<class>/image_NNNN.jpg, one JPEG cut in half
    cats = tmp_path / "caltech101" / "101_ObjectCategories"
    for name in ("accordion", "airplanes", "camera"):
        (cats / name).mkdir(parents=True)
        (cats / name / "image_0001.jpg").write_bytes(jpeg_bytes())
    whole = jpeg_bytes(size=(64, 64))
    (cats / "camera" / "image_0002.jpg").write_bytes(whole[: len(whole) // 2])
    result = convert_dataset(str(tmp_path / "caltech101"), tmp_path / "caltech.jsonl")
    ids = [json.loads(line)["id"] for line in (tmp_path / "caltech.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["accordion/image_0001", "airplanes/image_0001", "camera/image_0001"]
    assert result["errors"] == 1 and "camera/image_0002" in result["error_messages"][0]

    # MMBench: a base64 cell cut off mid-image (it still starts like a PNG)
    good = base64.b64encode(png_bytes()).decode()
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "image"]
    rows = [["0", "Colour?", "", "red", "green", "", "", "B", "attribute", "fine", good],
            ["1", "Shape?", "", "round", "square", "", "", "A", "attribute", "fine", good[: len(good) // 2]]]
    tsv = tmp_path / "MMBench_DEV_EN.tsv"
    tsv.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    result = convert_dataset(str(tsv), tmp_path / "mmb.jsonl")
    kept = [json.loads(line) for line in (tmp_path / "mmb.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == ["0"] and result["errors"] == 1
    assert result["error_messages"][0].startswith("MMBench_DEV_EN.tsv row 2: ")
    assert len(list((tmp_path / "mmb_images").iterdir())) == 1  # no file written for the broken image


def make_authors_layout(repo):
    """The published code's layout: data/<set>/multiple_choice_data_<task>.json, whose image
    paths are relative to data/<set>/images/ (also written from the repository root, or with the
    images/ prefix)."""
    folder = repo / "data" / "mini-imagenet"
    (folder / "images" / "n02110063").mkdir(parents=True)
    for name in ("n02110063/a.jpg", "b.jpg", "c.jpg"):
        (folder / "images" / name).write_bytes(jpeg_bytes())
    choices = {"A": "malamute", "B": "robin", "C": "tench", "D": "goldfish"}
    recs = [{"id": "bare", "question": "What is the main object in the image?", "image": "n02110063/a.jpg",
             "multiple_choices": choices, "multiple_choices_answer": "A", "facts": {"robin": "A robin."}},
            {"id": "from-repo", "question": "What is the main object in the image?",
             "image": "data/mini-imagenet/images/b.jpg", "multiple_choices": choices,
             "multiple_choices_answer": "B", "facts": {"tench": "A tench."}},
            {"id": "in-images", "question": "What is the main object in the image?", "image": "images/c.jpg",
             "multiple_choices": choices, "multiple_choices_answer": "C", "facts": {"robin": "A robin."}},
            {"id": "gone", "question": "What is the main object in the image?", "image": "missing.jpg",
             "multiple_choices": choices, "multiple_choices_answer": "C"}]
    path = folder / "multiple_choice_data_test.json"
    path.write_text(json.dumps(recs))
    return path


def test_published_json_finds_its_images_from_any_working_directory(tmp_path, monkeypatch):
    path = make_authors_layout(tmp_path / "repo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for options in ({}, {"image_root": "images"}):
        samples = load_path(path, **options)
        ok = {s.id: s for s in samples if row_error(s) is None}
        assert sorted(ok) == ["bare", "from-repo", "in-images"], options
        assert all(load_image(s).size == (32, 32) for s in ok.values())
        (bad,) = [s for s in samples if row_error(s)]
        assert row_error(bad).startswith("multiple_choice_data_test.json row 4: image not found: missing.jpg")


def test_openbookqa_loads_additional_beside_main(tmp_path):
    data = tmp_path / "OpenBookQA-V1-Sep2018" / "Data"

    def rec(i, extra=None):
        return {"id": f"7-{i}", "question": {"stem": f"Question {i}", "choices": [
            {"text": t, "label": "ABCD"[j]} for j, t in enumerate(["w", "x", "y", "z"])]}, "answerKey": "B",
            **(extra or {})}

    for folder, suffix, extra in (("Main", "", None), ("Additional", "_complete", {"fact1": "Light is energy."})):
        (data / folder).mkdir(parents=True)
        for split, ids in (("train", (1, 2)), ("dev", (3,)), ("test", (4,))):
            (data / folder / f"{split}{suffix}.jsonl").write_text(
                "".join(json.dumps(rec(i, extra)) + "\n" for i in ids))
    root = tmp_path / "OpenBookQA-V1-Sep2018"
    every = load_path(root, split="all")
    assert every.splits == ["dev", "test", "train", "dev_complete", "test_complete", "train_complete"]
    assert sorted(s.id for s in every) == ["7-1", "7-2", "7-3", "7-4"]  # Additional repeats Main's questions
    complete = load_path(root, split="train_complete")
    assert [s.meta["fact"] for s in complete] == ["Light is energy."] * 2
    assert complete[0].meta["split"] == "train_complete"


def test_mini_imagenet_without_classnames_offers_names_and_warns_about_unknown_ids(tmp_path):
    mini = tmp_path / "mini-imagenet"
    (mini / "images").mkdir(parents=True)
    labels = ["n02110063", "n01532829", "n01558993", "n01749939", "n09999999"]  # the last is no ImageNet class
    for w in labels:
        (mini / "images" / f"{w}00000001.jpg").write_bytes(jpeg_bytes())
    (mini / "test.csv").write_text("filename,label\n" + "".join(f"{w}00000001.jpg,{w}\n" for w in labels))
    loaded = load_path(mini, split="test")
    malamute = next(s for s in loaded if s.id == "n0211006300000001")
    assert malamute.options[malamute.answer] == "malamute"
    options = {o for s in loaded for o in s.options}
    assert {"house finch", "robin", "green mamba"} <= options
    assert not any(o.startswith("n0") for o in options if o != "n09999999")
    (warning,) = loaded.warnings
    assert "n09999999" in warning and "classnames" in warning
    assert inspect_dataset(str(mini), images=False)["warnings"] == [warning]
    named = tmp_path / "names.txt"
    named.write_text("n09999999 unicorn\n")
    assert not load_path(mini, split="test", classnames=str(named)).warnings


def test_inspect_counts_scienceqa_samples_once_across_overlapping_splits(tmp_path):
    sqa = tmp_path / "ScienceQA" / "data" / "scienceqa"
    problems = {str(i): {"question": f"Q{i}?", "choices": ["a", "b"], "answer": 0, "hint": "", "image": None,
                         "split": split} for i, split in enumerate(["train"] * 4 + ["val"] * 2 + ["test"] * 2, 1)}
    sqa.mkdir(parents=True)
    (sqa / "problems.json").write_text(json.dumps(problems))
    (sqa / "pid_splits.json").write_text(json.dumps({
        "train": ["1", "2", "3", "4"], "val": ["5", "6"], "test": ["7", "8"],
        "trainval": ["1", "2", "3", "4", "5", "6"], "minitrain": ["1", "2"], "minival": ["5"], "minitest": ["7"]}))
    report = inspect_dataset(str(tmp_path / "ScienceQA"), images=False)
    assert report["samples"] == 8
    assert {name: sum(c["samples"] for c in fams.values()) for name, fams in report["splits"].items()} == \
        {"train": 4, "val": 2, "test": 2}
    assert report["skipped"] == {"sample already counted in an earlier split (trainval)": 6,
                                 "sample already counted in an earlier split (minitrain)": 2,
                                 "sample already counted in an earlier split (minival)": 1,
                                 "sample already counted in an earlier split (minitest)": 1}
