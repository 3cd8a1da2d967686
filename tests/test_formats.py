"""Real benchmark formats from local files: every loader on a small fixture in its native layout
(written here, with malformed rows), the one-line row errors, path escapes, the CLI's inspect and
convert, and diagnosis runs on two formats."""

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from modint.data.formats import FORMATS, load_path, parse_spec
from modint.data.formats.common import DelimitedCell, ImageFile, row_error
from modint.data.formats.parquet import rows_to_samples
from modint.data.registry import BenchmarkError, load_benchmark
from modint.data.sample import SampleError, load_image, validate_sample

MODINT = [sys.executable, "-m", "modint.cli"]
ENV = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
       **{k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ}}  # the checkout's code when on the path


# ---------------------------------------------------------------- fixtures in native layouts

def png_bytes(colour=(200, 30, 30), size=(8, 8), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def write_png(path: Path, colour=(200, 30, 30), fmt="PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(colour, fmt=fmt))
    return path


def make_caltech(root: Path) -> Path:
    cats = root / "caltech101" / "101_ObjectCategories"
    for i, name in enumerate(["accordion", "airplanes", "Faces_easy", "camera", "dolphin", "BACKGROUND_Google"]):
        write_png(cats / name / "image_0001.jpg", (40 * i, 20, 20), fmt="JPEG")
        write_png(cats / name / "image_0002.jpg", (40 * i, 90, 20), fmt="JPEG")
    (cats / "camera" / "image_0003.jpg").write_bytes(b"not an image at all")  # unreadable
    (cats / "camera" / "notes.txt").write_text("not an image file, ignored")
    return root / "caltech101"


def make_mini_imagenet(root: Path) -> Path:
    mini = root / "mini-imagenet"
    wnids = ["n01532829", "n01558993", "n01704323", "n01749939", "n01770081"]
    for i, w in enumerate(wnids):
        write_png(mini / "images" / f"{w}00000001.jpg", (50 * i, 0, 0), fmt="JPEG")
    rows = ["filename,label"] + [f"{w}00000001.jpg,{w}" for w in wnids]
    rows += ["n0999999900000001.jpg,n01532829",  # row 6: missing image
             "../../etc/passwd,n01532829",  # row 7: escape
             "n0153282900000001.jpg"]  # row 8: one column
    (mini / "test.csv").write_text("\n".join(rows) + "\n")
    (mini / "train.csv").write_text("filename,label\n" + f"{wnids[0]}00000001.jpg,{wnids[0]}\n"
                                    + f"{wnids[1]}00000001.jpg,{wnids[1]}\n")
    (root / "wnids.txt").write_text("n01532829 house_finch, Carpodacus mexicanus\nn01558993 robin\n")
    return mini


def make_obqa(root: Path) -> Path:
    main = root / "OpenBookQA-V1-Sep2018" / "Data" / "Main"
    main.mkdir(parents=True)

    def rec(i, stem, texts, key):
        return {"id": f"7-{i}", "question": {"stem": stem, "choices": [
            {"text": t, "label": "ABCD"[j]} for j, t in enumerate(texts)]}, "answerKey": key}

    good = rec(1, "The sun is the source of", ["water", "light", "soil", "wind"], "B")
    lines = [json.dumps(good),
             json.dumps(rec(2, "Frogs are", ["mammals", "amphibians", "birds", "fish"], "B")),
             json.dumps({k: v for k, v in rec(3, "Missing key", ["a", "b"], "A").items() if k != "answerKey"}),
             json.dumps(rec(4, "Bad key", ["a", "b", "c", "d"], "E")),
             json.dumps(rec(5, "One option", ["only"], "A"))]
    data = ("\n".join(lines) + "\n").encode()
    data += b'{"id": "7-6", "question": {"stem": "caf\xe9 au lait", "choices": [{"text": "a", "label": "A"}, ' \
            b'{"text": "b", "label": "B"}]}, "answerKey": "A"}\n'
    data += b'{"id": "7-7", "question": {"stem": "cut off'  # truncated last line
    (main / "test.jsonl").write_bytes(data)
    (main / "train.jsonl").write_text(json.dumps(good) + "\n")
    return root / "OpenBookQA-V1-Sep2018"


def make_mmlu(root: Path) -> Path:
    data = root / "mmlu" / "data"
    (data / "test").mkdir(parents=True)
    (data / "dev").mkdir(parents=True)
    (data / "test" / "abstract_algebra_test.csv").write_text(
        '"Find the order of the group Z_4.",2,4,"8, maybe",16,B\n'
        "Two plus two?,3,4,5,6,B\n"
        "Only five columns,1,2,3,A\n"
        "Answer out of range,1,2,3,4,F\n")
    (data / "test" / "astronomy_test.csv").write_text("Closest star?,Sun,Sirius,Vega,Rigel,A\n")
    (data / "dev" / "astronomy_dev.csv").write_text("Red planet?,Venus,Mars,Earth,Moon,B\n")
    return root / "mmlu"


def make_scienceqa(root: Path) -> Path:
    sqa = root / "ScienceQA"
    problems = {
        "1": {"question": "Which animal is shown?", "choices": ["cat", "dog"], "answer": 1, "hint": "Look closely.",
              "image": "image.png", "split": "test", "subject": "natural science", "grade": "grade2"},
        "2": {"question": "What is 3 x 3?", "choices": ["6", "9", "12"], "answer": 1, "hint": "", "image": None,
              "split": "test", "subject": "language science"},
        "3": {"question": "Out of range", "choices": ["a", "b"], "answer": 5, "hint": "", "image": None,
              "split": "test"},
        "4": {"question": "Image gone", "choices": ["a", "b"], "answer": 0, "hint": "", "image": "image.png",
              "split": "test"},
        "5": {"question": "Escape", "choices": ["a", "b"], "answer": 0, "hint": "",
              "image": "../../../../../etc/passwd", "split": "test"},
        "6": {"question": "Train only", "choices": ["a", "b"], "answer": 0, "hint": "", "image": None,
              "split": "train"},
    }
    sqa.mkdir(parents=True)
    (sqa / "problems.json").write_text(json.dumps(problems))
    (sqa / "pid_splits.json").write_text(json.dumps({"trainval": ["6", "1"], "train": ["6"],
                                                         "test": ["1", "2", "3", "4", "5"]}))
    write_png(sqa / "images" / "test" / "1" / "image.png")
    return sqa


MMBENCH_HEADER = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "image"]


def make_mmbench(root: Path) -> Path:
    good = base64.b64encode(png_bytes((10, 200, 10))).decode()
    not_image = base64.b64encode(b"these bytes are no picture" * 20).decode()
    rows = [
        ["0", "What colour dominates?", "", "red", "green", "blue", "grey", "B", "attribute", "fine", good],
        ["1", "Is it bright?", "The picture was taken at noon.", "yes", "no", "", "", "A", "reasoning", "logic", good],
        ["2", "Answer points at an empty option", "", "yes", "no", "", "", "C", "reasoning", "logic", good],
        ["3", "Same picture as question 0", "", "red", "green", "", "", "B", "attribute", "fine", "0"],
        ["4", "Not a picture", "", "a", "b", "c", "d", "A", "ocr", "x", not_image],
        ["5", "Missing answer", "", "a", "b", "c", "d", "", "ocr", "x", good],
        ["6", "Broken base64", "", "a", "b", "c", "d", "A", "ocr", "x", "@@@not*base64!!" * 10],
    ]
    text = "\t".join(MMBENCH_HEADER) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
    text += "7\tTruncated row\t\ta\tb"  # cut off mid-row
    path = root / "MMBench_DEV_EN.tsv"
    path.write_text(text)
    return path


def make_seed(root: Path) -> Path:
    seed = root / "SEED-Bench"
    write_png(seed / "SEED-Bench-image" / "1454426_2591111986.jpg", fmt="JPEG")
    write_png(seed / "SEED-Bench-image" / "noext_image.png")
    q = lambda i, **kw: {"question_id": str(100 + i), "question": f"Question {i}?", "choice_a": "one",
                         "choice_b": "two", "choice_c": "three", "choice_d": "four", "answer": "C ",
                         "data_id": "1454426_2591111986.jpg", "data_type": "image", "question_type_id": 1, **kw}
    doc = {"questions": [q(1), q(2, data_id="noext_image"), q(3, data_type="video", data_id="v.mp4"),
                         q(4, data_id="../../etc/passwd"), q(5, answer="Z"), q(6, data_id="missing.jpg")],
           "question_type": {"Scene Understanding": 1}}
    (seed / "SEED-Bench.json").write_text(json.dumps(doc, indent=1))
    return seed


def make_published(root: Path) -> Path:
    folder = root / "published"
    write_png(folder / "img" / "a.png")
    b64 = base64.b64encode(png_bytes((0, 0, 200))).decode()
    recs = [
        {"id": "cal-1", "question": "What is the main object in the image?", "image": "img/a.png",
         "multiple_choices": {"A": "dolphin", "B": "camera", "C": "airplane", "D": "piano"},
         "multiple_choices_answer": "B", "facts": {"dolphin": "The picture seems to show a dolphin at sea."}},
        {"id": "mmb-1", "question": "Which colour?", "image": b64,
         "multiple_choices": {"A": "red", "B": "blue"}, "multiple_choices_answer": "B"},
        {"id": "txt-1", "question": "2 + 2 = ?", "multiple_choices": {"A": "3", "B": "4"},
         "multiple_choices_answer": "B"},
        {"id": "bad-1", "question": "No answer", "multiple_choices": {"A": "x", "B": "y"}},
    ]
    path = folder / "caltech_mc.json"
    path.write_text(json.dumps(recs))
    return path


def make_generic(root: Path) -> tuple[Path, Path]:
    folder = root / "generic"
    write_png(folder / "pics" / "p1.png")
    recs = [
        {"id": "g1", "family": "vqa", "question": "How many?", "options": ["1", "2", "3"], "answer": 2,
         "image": "pics/p1.png", "split": "test"},
        {"id": "g2", "family": "text_heavy", "question": "Capital of France?", "options": ["Rome", "Paris"],
         "answer": "Paris", "context": "Think.", "split": "test"},
        {"id": "g3", "family": "image_heavy", "question": "What is shown?", "options": ["cat", "dog"], "answer": "A",
         "image": "pics/p1.png", "facts": {"dog": "The picture seems to describe a dog."}, "split": "train"},
        {"id": "g4", "family": "vqa", "question": "Escape", "options": ["a", "b"], "answer": 0,
         "image": "../../../etc/passwd", "split": "test"},
        {"id": "g5", "family": "toy", "question": "Bad family", "options": ["a", "b"], "answer": 0, "split": "test"},
        {"id": "g6", "family": "text_heavy", "question": "Answer not there", "options": ["a", "b"],
         "answer": "c", "split": "test"},
    ]
    jsonl = folder / "mc.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in recs))
    csv_path = folder / "mc.csv"
    csv_path.write_text("id,family,question,options,answer,image\n"
                        "c1,text_heavy,Pick two,one|two|three,two,\n"
                        'c2,vqa,How many?,"[""1"", ""2""]",1,pics/p1.png\n'
                        "c3,text_heavy,Too few,only,0,\n")
    return jsonl, csv_path


def errors_of(samples) -> list[str]:
    """The one-line message of every sample that cannot run (load errors and validation)."""
    out = []
    for s in samples:
        try:
            validate_sample(s)
        except SampleError as exc:
            out.append(str(exc))
    return out


def good(samples):
    return [s for s in samples if row_error(s) is None]


# ---------------------------------------------------------------- loaders

def test_caltech_tree_image_heavy_with_seeded_distractors(tmp_path):
    root = make_caltech(tmp_path)
    samples = load_benchmark(str(root), split="test")  # no splits on disk: any split loads the tree
    assert {s.family for s in samples} == {"image_heavy"}
    assert len(samples) == 11 and not any("background" in o for s in samples for o in s.options)
    s = next(s for s in samples if s.id == "Faces_easy/image_0001")
    assert s.question == "What is the main object in the image?"
    assert len(s.options) == 4 and len(set(s.options)) == 4 and s.options[s.answer] == "faces easy"
    assert isinstance(s.image, ImageFile) and load_image(s).size == (8, 8)
    # the options depend on the sample id alone: a load of every split gives the same ones
    again = {x.id: x for x in load_path(root, split="all")}
    assert again[s.id].options == s.options and again[s.id].answer == s.answer
    positions = {x.answer for x in samples}
    assert len(positions) > 1  # the answer moves around
    broken = next(s for s in samples if s.id == "camera/image_0003")
    with pytest.raises(SampleError, match=r"^camera/image_0003\.jpg: unreadable image"):
        load_image(broken)


def test_mini_imagenet_csv_splits_and_classnames(tmp_path):
    root = make_mini_imagenet(tmp_path)
    assert FORMATS["miniimagenet"].detect(root)
    samples = load_path(root, split="test", classnames=str(tmp_path / "wnids.txt"))
    ok = good(samples)
    assert len(ok) == 5 and all(s.family == "image_heavy" for s in ok)
    first = ok[0]
    assert first.id == "n0153282900000001" and first.options[first.answer] == "house finch"
    assert "triceratops" in {o for s in ok for o in s.options}  # ids the file lacks: the bundled ImageNet name
    assert errors_of(samples) == [
        "test.csv row 6: image not found: n0999999900000001.jpg",
        "test.csv row 7: image path '../../etc/passwd' escapes the dataset folder",
        "test.csv row 8: expected 2 columns (filename, label), got 1",
    ]
    train = load_path(root, split="train")
    assert len(train) == 2 and all(len(s.options) == 2 for s in train)  # two classes: 2 options
    with pytest.raises(BenchmarkError, match="no split 'dev'"):
        load_path(root, split="dev")


def test_openbookqa_jsonl(tmp_path):
    root = make_obqa(tmp_path)
    samples = load_benchmark(str(root), split="test")
    ok = good(samples)
    assert [s.id for s in ok] == ["7-1", "7-2"]
    assert ok[0].family == "text_heavy" and ok[0].options == ("water", "light", "soil", "wind") and ok[0].answer == 1
    assert ok[0].image is None
    assert errors_of(samples)[:4] == [
        "Data/Main/test.jsonl row 3: missing answer",
        "Data/Main/test.jsonl row 4: answer 'E' is not among the options (A-D)",
        "Data/Main/test.jsonl row 5: needs at least 2 options, has 1",
        "Data/Main/test.jsonl row 6: non-UTF-8 text in question",
    ]
    assert errors_of(samples)[4].startswith("Data/Main/test.jsonl row 7: truncated JSON")
    assert load_path(root, split="all").splits == ["test", "train"]


def test_mmlu_csv(tmp_path):
    root = make_mmlu(tmp_path)
    samples = load_benchmark(str(root), split="test")
    ok = good(samples)
    assert [s.id for s in ok] == ["abstract_algebra-test-1", "abstract_algebra-test-2", "astronomy-test-1"]
    assert ok[0].options == ("2", "4", "8, maybe", "16") and ok[0].answer == 1 and ok[0].family == "text_heavy"
    assert ok[0].meta["subject"] == "abstract_algebra"
    assert errors_of(samples) == [
        "data/test/abstract_algebra_test.csv row 3: expected 6 columns (question, A, B, C, D, answer), got 5",
        "data/test/abstract_algebra_test.csv row 4: answer 'F' is not among the options (A-D)",
    ]
    dev = load_benchmark(str(root), split="dev")
    assert [s.options[s.answer] for s in dev] == ["Mars"]
    one_file = load_path(root / "data" / "test" / "astronomy_test.csv")
    assert len(one_file) == 1 and one_file.format == "mmlu"


def test_parquet_rows_and_missing_engine(tmp_path):
    rows = [{"question": "1 + 1?", "subject": "math", "choices": ["1", "2", "3", "4"], "answer": 1},
            {"question": "bad", "subject": "math", "choices": ["1", "2"], "answer": 7},
            {"id": "o1", "question_stem": "Sky?", "choices": {"text": ["blue", "green"], "label": ["A", "B"]},
             "answerKey": "A"}]
    samples = rows_to_samples(rows, "test-00000-of-00001.parquet", "test", "math")
    assert samples[0].options[samples[0].answer] == "2" and samples[0].family == "text_heavy"
    assert errors_of(samples) == ["test-00000-of-00001.parquet row 2: answer index 7 is not among the 2 options"]
    assert samples[2].id == "o1" and samples[2].answer == 0
    file = tmp_path / "mmlu" / "all" / "test-00000-of-00001.parquet"
    file.parent.mkdir(parents=True)
    file.write_bytes(b"PAR1")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(BenchmarkError, match="reading Parquet needs pyarrow"):
            load_benchmark(str(tmp_path / "mmlu"), split="test")


def test_scienceqa_families_and_imageless_option(tmp_path):
    root = make_scienceqa(tmp_path)
    samples = load_benchmark(str(root), split="test")
    by_id = {s.id: s for s in samples}
    assert by_id["1"].family == "vqa" and by_id["1"].question == "Look closely.\nWhich animal is shown?"
    assert by_id["1"].options == ("cat", "dog") and by_id["1"].answer == 1 and load_image(by_id["1"]).size == (8, 8)
    assert by_id["2"].family == "text_heavy" and by_id["2"].image is None
    assert errors_of(samples) == [
        "problems.json row 3 (pid 3): answer index 5 is not among the 2 options",
        "problems.json row 4 (pid 4): image not found: images/test/4/image.png",
        "problems.json row 5 (pid 5): image path 'images/test/5/../../../../../etc/passwd' escapes the dataset folder",
    ]
    skipped = load_benchmark(f"{root}?scienceqa_imageless=skip", split="test")
    assert "2" not in {s.id for s in skipped} and "1" in {s.id for s in skipped}
    assert load_path(root, split="test", scienceqa_imageless="skip").skipped
    with pytest.raises(BenchmarkError, match="scienceqa_imageless must be text or skip"):
        load_path(root, split="test", scienceqa_imageless="maybe")
    assert [s.id for s in load_benchmark(str(root), split="train")] == ["6"]
    every = load_path(root, split="all")  # trainval overlaps train and test: each sample once
    assert every.splits == ["train", "test", "trainval"] and sorted(s.id for s in every) == list("123456")
    assert every.skipped == {"sample already loaded from an earlier split": 2}


def test_mmbench_tsv(tmp_path):
    path = make_mmbench(tmp_path)
    samples = load_benchmark(str(path), split="test")  # one file is one split ("dev")
    by_id = {s.id: s for s in samples}
    assert all(s.family == "vqa" for s in samples)
    assert by_id["0"].options == ("red", "green", "blue", "grey") and by_id["0"].answer == 1
    one = by_id["1"]
    assert one.options == ("yes", "no") and one.question == "The picture was taken at noon.\nIs it bright?"
    assert one.meta["category"] == "reasoning" and one.meta["split"] == "dev"
    # images stay on disk: a sample holds byte offsets, never the base64 text
    assert isinstance(one.image, DelimitedCell) and not hasattr(one.image, "text")
    assert load_image(one).getpixel((0, 0)) == (10, 200, 10)
    assert load_image(by_id["3"]).getpixel((0, 0)) == (10, 200, 10)  # image given as another row's index
    assert errors_of(samples) == [
        "MMBench_DEV_EN.tsv row 3: answer 'C' is not among the options (A, B)",
        "MMBench_DEV_EN.tsv row 6: missing answer",
        "MMBench_DEV_EN.tsv row 8: truncated row: 5 of 11 columns",
    ]
    with pytest.raises(SampleError, match=r"^MMBench_DEV_EN\.tsv row 7: broken base64 image$"):
        load_image(by_id["6"])
    with pytest.raises(SampleError, match=r"^MMBench_DEV_EN\.tsv row 5: unreadable image"):
        load_image(by_id["4"])


def test_seedbench_json(tmp_path):
    root = make_seed(tmp_path)
    loaded = load_path(root)
    by_id = {s.id: s for s in loaded}
    assert by_id["101"].family == "vqa" and by_id["101"].options == ("one", "two", "three", "four")
    assert by_id["101"].answer == 2 and by_id["101"].meta["task"] == "Scene Understanding"
    assert load_image(by_id["102"]).size == (8, 8)  # data_id without its extension
    assert "103" not in by_id and sum(loaded.skipped.values()) == 1  # the video question
    assert errors_of(loaded) == [
        "SEED-Bench.json row 4 (question_id 104): image path '../../etc/passwd' escapes the dataset folder",
        "SEED-Bench.json row 5 (question_id 105): answer 'Z' is not among the options (A-D)",
        "SEED-Bench.json row 6 (question_id 106): image not found: missing.jpg",
    ]


def test_truncated_json_keeps_the_records_before_the_break(tmp_path):
    root = make_seed(tmp_path)
    file = root / "SEED-Bench.json"
    text = file.read_text()
    file.write_text(text[: text.index('"question_id": "104"')])  # cut inside the 4th question
    samples = load_path(root)
    assert [s.id for s in good(samples)] == ["101", "102"]
    (message,) = errors_of(samples)
    assert message.startswith("SEED-Bench.json row 4: truncated JSON")
    sqa = make_scienceqa(tmp_path / "s")
    raw = (sqa / "problems.json").read_text()
    (sqa / "problems.json").write_text(raw[: raw.index('"3"') + 10])
    samples = load_path(sqa, split="test")
    assert [s.id for s in good(samples)] == ["1", "2"]
    assert errors_of(samples)[-1].startswith("problems.json row 3: truncated JSON")


def test_published_json_families_facts_and_base64(tmp_path):
    path = make_published(tmp_path)
    samples = load_benchmark(str(path))
    by_id = {s.id: s for s in samples}
    cal = by_id["cal-1"]
    assert cal.family == "image_heavy" and cal.answer == 1 and cal.meta["facts"]["dolphin"].startswith("The picture")
    assert by_id["mmb-1"].family == "vqa" and load_image(by_id["mmb-1"]).getpixel((0, 0)) == (0, 0, 200)
    assert by_id["txt-1"].family == "text_heavy"
    assert errors_of(samples) == ["caltech_mc.json row 4: missing answer"]
    forced = load_benchmark(f"{path}?family=image_heavy")
    assert {s.family for s in good(forced)} == {"image_heavy"}

    # misleading_text uses the record's fact for that option, the template for the others
    from modint.perturb import apply_condition, default_pools

    pools = default_pools([], switch_source="photos")
    texts = {apply_condition(cal, "misleading_text", seed, pools).context for seed in range(30)}
    assert "The picture seems to show a dolphin at sea." in texts
    assert "The picture seems to describe a piano." in texts


def test_generic_jsonl_and_csv(tmp_path):
    jsonl, csv_path = make_generic(tmp_path)
    assert load_path(jsonl, split="all").splits == ["test", "train"]
    test = load_path(jsonl, split="test")
    by_id = {s.id: s for s in test}
    assert by_id["g1"].answer == 2 and by_id["g1"].family == "vqa" and load_image(by_id["g1"]).size == (8, 8)
    assert by_id["g2"].answer == 1 and by_id["g2"].context == "Think."
    assert errors_of(test) == [
        "mc.jsonl row 4: image path '../../../etc/passwd' escapes the dataset folder",
        "mc.jsonl row 5: unknown family 'toy' (expected image_heavy, text_heavy, vqa)",
        "mc.jsonl row 6: answer 'c' is not among the options (A, B)",
    ]
    train = load_path(jsonl, split="train")
    assert [s.id for s in train] == ["g3"] and train[0].meta["facts"] == {"dog": "The picture seems to describe a dog."}
    rows = load_path(csv_path)
    assert rows[0].options == ("one", "two", "three") and rows[0].answer == 1
    assert rows[1].options == ("1", "2") and rows[1].answer == 0  # "1" is the option's text
    assert errors_of(rows) == ["mc.csv row 3: needs at least 2 options, has 1"]


def test_bad_rows_fail_validation_with_their_line_and_survive_copies(tmp_path):
    import copy
    import pickle

    samples = load_benchmark(str(make_mmbench(tmp_path)))
    bad = next(s for s in samples if s.id == "2")
    assert bad.options == () and row_error(bad).startswith("MMBench_DEV_EN.tsv row 3")
    for copied in (pickle.loads(pickle.dumps(bad)), copy.deepcopy(bad), bad.replace(id="x")):
        with pytest.raises(SampleError, match=r"^MMBench_DEV_EN\.tsv row 3: answer 'C'"):
            validate_sample(copied)


def test_engine_turns_bad_rows_into_error_records(tmp_path):
    from modint.diagnose.engine import DiagnoseConfig, plan

    samples = load_benchmark(str(make_mmbench(tmp_path)))
    groups, errors = plan(samples, DiagnoseConfig(conditions=["clean"]))
    assert {e["id"]: e["error"] for e in errors} == {
        "2": "MMBench_DEV_EN.tsv row 3: answer 'C' is not among the options (A, B)",
        "5": "MMBench_DEV_EN.tsv row 6: missing answer",
        "7": "MMBench_DEV_EN.tsv row 8: truncated row: 5 of 11 columns",
    }
    assert len(groups) == 5


def test_several_benchmarks_at_once_and_options_in_the_name(tmp_path):
    mmb = make_mmbench(tmp_path)
    mmlu = make_mmlu(tmp_path)
    both = load_benchmark(f"{mmb},{mmlu},mini", split="test", limit=9)
    ids = [s.id for s in both]
    assert len(ids) == len(set(ids)) == 9
    assert {i.split(":")[0] for i in ids} == {"MMBench_DEV_EN", "mmlu", "mini"}
    assert {s.family for s in both} == {"vqa", "text_heavy", "image_heavy"}
    twice = load_benchmark(f"{mmlu},{mmlu}", split="test")
    assert {s.id.split(":")[0] for s in twice} == {"mmlu", "mmlu-2"}
    assert parse_spec("x/y?format=mmbench&family=vqa") == ("x/y", {"format": "mmbench", "family": "vqa"})
    with pytest.raises(BenchmarkError, match="takes no option colour"):
        load_benchmark(f"{mmb}?colour=red")
    with pytest.raises(BenchmarkError, match="unknown format 'nope'"):
        load_benchmark(str(mmb), format="nope")
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_benchmark("no/such/dir")
    with pytest.raises(BenchmarkError, match="unknown benchmark 'nope'"):
        load_benchmark("nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkError, match="cannot tell the format"):
        load_benchmark(str(tmp_path / "empty"))
    assert len(load_benchmark(str(mmlu), limit=2)) == 2


def test_limit_spreads_over_families(tmp_path):
    samples = load_benchmark(str(make_scienceqa(tmp_path)), split="test", limit=2)
    assert {s.family for s in samples} == {"vqa", "text_heavy"}


# ---------------------------------------------------------------- CLI

def run(*args, cwd=None):
    return subprocess.run(MODINT + [str(a) for a in args], capture_output=True, text=True, env=ENV, cwd=cwd)


def test_cli_inspect(tmp_path):
    path = make_mmbench(tmp_path)
    result = run("data", "inspect", path, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == "mmbench" and report["samples"] == 8
    assert report["splits"] == {"dev": {"vqa": {"samples": 8, "errors": 5, "with_image": 5}}}
    assert report["options_histogram"] == {"2": 2, "4": 1}
    assert report["images_decoded"] == 5 - 2
    assert "MMBench_DEV_EN.tsv row 7: broken base64 image" in report["error_messages"]
    text = run("data", "inspect", make_scienceqa(tmp_path), "--show", "2")
    assert text.returncode == 0, text.stderr
    assert "text_heavy" in text.stdout and "errors: 3" in text.stdout and "... 1 more" in text.stdout
    assert "problems.json row 3 (pid 3): answer index 5 is not among the 2 options" in text.stdout
    bad = run("data", "inspect", tmp_path / "nothing")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "no such file" in bad.stderr
    forced = run("data", "inspect", make_published(tmp_path), "--format", "generic")
    assert forced.returncode == 0 and "errors: 4" in forced.stdout


def test_cli_convert_round_trip(tmp_path):
    path = make_mmbench(tmp_path)
    out = tmp_path / "out" / "mmbench.jsonl"
    result = run("data", "convert", path, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "wrote 3 samples" in result.stdout and "left out 5 rows" in result.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["0", "1", "3"]
    assert all(os.path.isabs(r["image"]) and Path(r["image"]).parent == tmp_path / "out" / "mmbench_images"
               for r in records)
    assert Path(records[0]["image"]).suffix == ".png"
    back = {s.id: s for s in load_path(out)}
    orig = {s.id: s for s in load_path(path)}
    for key in back:
        assert (back[key].question, back[key].options, back[key].answer, back[key].family) == \
            (orig[key].question, orig[key].options, orig[key].answer, orig[key].family)
        assert load_image(back[key]).tobytes() == load_image(orig[key]).tobytes()
    # a path-based set keeps its image paths, every split written with its name
    sqa = make_scienceqa(tmp_path)
    out2 = tmp_path / "sqa.jsonl"
    converted = run("data", "convert", sqa, "--out", out2)
    assert converted.returncode == 0 and "left out 2 samples already written" in converted.stdout
    rows = [json.loads(line) for line in out2.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == list("126")
    assert {r["split"] for r in rows} == {"train", "test"}
    assert next(r for r in rows if r["id"] == "1")["image"] == str(sqa / "images" / "test" / "1" / "image.png")
    assert not (tmp_path / "sqa_images").exists()


@pytest.mark.slow
@pytest.mark.parametrize("make", [make_mmbench, make_scienceqa])
def test_cli_diagnose_on_real_formats(tmp_path, make):
    path = make(tmp_path)
    out = tmp_path / "run"
    result = run("diagnose", "--benchmark", path, "--limit", 5, "--model", "tiny-random-llava",
                 "--conditions", "clean,noise_image", "--out", out, "--quiet",
                 "--max-error-rate", 1)  # the fixtures carry bad rows on purpose: recorded, not fatal here
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert records and {r["condition"] for r in records} <= {"clean", "noise_image"}
    scored = [r for r in records if r["error"] is None]
    failed = [r for r in records if r["error"]]
    assert scored and failed
    assert all(" row " in r["error"] for r in failed)
    assert json.loads((out / "summary.json").read_text())["conditions"]


@pytest.mark.parametrize("make", [make_caltech, make_mini_imagenet, make_obqa, make_mmlu, make_scienceqa,
                                  make_mmbench, make_seed, make_published, lambda root: make_generic(root)[0]])
def test_every_format_runs_through_a_diagnosis(tmp_path, make, tiny_llava_adapter):
    from modint.diagnose.engine import DiagnoseConfig, run_diagnosis

    path = make(tmp_path)
    samples = load_benchmark(str(path), split="all", limit=5)
    summary = run_diagnosis(tiny_llava_adapter, samples, tmp_path / "run",
                            DiagnoseConfig(conditions=["clean", "noise_image"], n_boot=20))
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert records and any(r["error"] is None for r in records), path
    assert summary["conditions"]
