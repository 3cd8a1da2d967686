"""Hugging Face copies of ScienceQA-IMG, MMBench, SEED-Bench and MMStar (lmms-lab layouts) as
Parquet shards and as datasets.save_to_disk folders."""

import io
import json

import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from conftest import make_image  # noqa: E402
from modint.data.formats import load_path  # noqa: E402
from modint.data.registry import load_benchmark  # noqa: E402


def png(seed):
    buf = io.BytesIO()
    make_image(seed, (24, 24)).save(buf, format="PNG")
    return buf.getvalue()


def image(seed):
    return {"bytes": png(seed), "path": None}


# Two good rows and one bad row of each layout, with the fields of the datasets' cards.
LAYOUTS = {
    "scienceqa": [
        {"image": image(1), "question": "Which is a mammal?", "choices": ["frog", "dog", "eel"], "answer": 1,
         "hint": "Look at the animals.", "task": "closed choice", "grade": "grade2", "subject": "natural science",
         "topic": "biology", "category": "Classification", "skill": "x", "lecture": "", "solution": ""},
        {"image": image(2), "question": "Which is hot?", "choices": ["ice", "fire"], "answer": 1, "hint": "",
         "task": "", "grade": "", "subject": "", "topic": "", "category": "", "skill": "", "lecture": "",
         "solution": ""},
        {"image": image(3), "question": "Bad answer", "choices": ["a", "b"], "answer": 5, "hint": "", "task": "",
         "grade": "", "subject": "", "topic": "", "category": "", "skill": "", "lecture": "", "solution": ""},
    ],
    "mmbench": [
        {"index": 11, "question": "What is shown?", "hint": None, "A": "cat", "B": "dog", "C": "cow", "D": None,
         "answer": "B", "category": "object_localization", "l2-category": "FP-S", "image": image(4), "source": "x",
         "comment": None, "split": "dev"},
        {"index": 12, "question": "Which colour?", "hint": "A flag.", "A": "red", "B": "blue", "C": None, "D": None,
         "answer": "A", "category": "attribute_recognition", "l2-category": "FP-C", "image": image(5),
         "source": "x", "comment": None, "split": "dev"},
        {"index": 13, "question": "Broken", "hint": None, "A": "x", "B": "y", "C": None, "D": None, "answer": "E",
         "category": "c", "l2-category": "c", "image": image(6), "source": "x", "comment": None, "split": "dev"},
    ],
    "seedbench": [
        {"answer": "C", "choice_a": "one", "choice_b": "two", "choice_c": "three", "choice_d": "four",
         "data_id": "a.jpg", "data_type": "image", "question": "How many?", "question_id": "101",
         "question_type_id": 5, "image": [image(7)], "segment": None},
        {"answer": "A", "choice_a": "day", "choice_b": "night", "choice_c": "dawn", "choice_d": "dusk",
         "data_id": "b.jpg", "data_type": "image", "question": "When?", "question_id": "102",
         "question_type_id": 1, "image": [image(8)], "segment": None},
        {"answer": "A", "choice_a": "x", "choice_b": "y", "choice_c": "z", "choice_d": "w", "data_id": "c.jpg",
         "data_type": "image", "question": "Two images", "question_id": "103", "question_type_id": 2,
         "image": [image(9), image(10)], "segment": None},
    ],
    "mmstar": [
        {"index": 0, "question": "Which option describes the object relationship correctly?\nOptions: A: The "
         "suitcase is on the book., B: The suitcase is beneath the cat., C: The suitcase is beneath the bed., D: "
         "The suitcase is beneath the book.", "image": image(11), "answer": "A", "category": "coarse perception",
         "l2_category": "image scene and topic", "meta_info": {"source": "x", "split": "val", "image_path": "0.jpg"}},
        {"index": 1, "question": "What is the main feature?\nOptions: A: a dog, B: a tree, C: a car, D: a boat",
         "image": image(12), "answer": "D", "category": "math", "l2_category": "geometry",
         "meta_info": {"source": "x", "split": "val", "image_path": "1.jpg"}},
        {"index": 2, "question": "No options here", "image": image(13), "answer": "A", "category": "math",
         "l2_category": "geometry", "meta_info": {"source": "x", "split": "val", "image_path": "2.jpg"}},
    ],
}
SHARDS = {"scienceqa": "ScienceQA-IMG/test-00000-of-00001.parquet", "mmbench": "en/dev-00000-of-00001.parquet",
          "seedbench": "data/test-00000-of-00001.parquet", "mmstar": "mmstar/val-00000-of-00001.parquet"}
BAD_ROW = {
    "scienceqa": "test-00000-of-00001.parquet row 3: answer index 5 is not among the 2 options",
    "mmbench": "dev-00000-of-00001.parquet row 3 (index 13): answer 'E' is not among the options (A, B)",
    "seedbench": "test-00000-of-00001.parquet row 3 (question_id 103): 2 images; multi-image questions are not "
                 "supported",
    "mmstar": "val-00000-of-00001.parquet row 3 (index 2): no 'Options:' in the question",
}


def write_parquet(root, layout):
    path = root / SHARDS[layout]
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(LAYOUTS[layout]), path)
    return root


def good(samples):
    return [s for s in samples if not s.meta.get("load_error")]


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_parquet_layouts_load_with_one_line_per_bad_row(tmp_path, layout):
    root = write_parquet(tmp_path / layout, layout)
    samples = load_path(root, split="all")
    assert samples.format == "hf"
    assert len(good(samples)) == 2
    errors = samples.errors
    assert len(errors) == 1 and errors[0].endswith(BAD_ROW[layout]), errors
    for s in good(samples):
        assert s.family == "vqa" and s.image().size == (24, 24)


def test_fields_map_to_questions_options_and_answers(tmp_path):
    sqa = good(load_path(write_parquet(tmp_path / "s", "scienceqa"), split="all"))
    assert sqa[0].question == "Look at the animals.\nWhich is a mammal?" and sqa[0].options == ("frog", "dog", "eel")
    assert sqa[0].answer == 1 and sqa[0].meta["subject"] == "natural science"
    mmb = good(load_path(write_parquet(tmp_path / "m", "mmbench"), split="all"))
    assert [s.id for s in mmb] == ["11", "12"] and mmb[0].options == ("cat", "dog", "cow") and mmb[0].answer == 1
    assert mmb[1].question == "A flag.\nWhich colour?" and mmb[1].meta["task"] == "attribute_recognition"
    seed = good(load_path(write_parquet(tmp_path / "e", "seedbench"), split="all"))
    assert seed[0].id == "101" and seed[0].answer == 2 and seed[0].meta["task"] == "Instances Counting"
    star = good(load_path(write_parquet(tmp_path / "t", "mmstar"), split="all"))
    assert star[0].question == "Which option describes the object relationship correctly?"
    assert star[0].options == ("The suitcase is on the book.", "The suitcase is beneath the cat.",
                               "The suitcase is beneath the bed.", "The suitcase is beneath the book.")
    assert star[1].options == ("a dog", "a tree", "a car", "a boat") and star[1].answer == 3


def test_images_stored_as_paths_are_read_from_the_dataset_folder(tmp_path):
    root = tmp_path / "mmbench"
    (root / "img").mkdir(parents=True)
    (root / "img" / "x.png").write_bytes(png(20))
    rows = [dict(LAYOUTS["mmbench"][0], image={"bytes": None, "path": "img/x.png"})]
    (root / "en").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "en" / "dev-00000-of-00001.parquet")
    (sample,) = load_path(root, split="dev")
    assert sample.image().size == (24, 24)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_save_to_disk_folders_load_and_diagnose_runs(tmp_path, layout, tiny_llava_adapter):
    datasets = pytest.importorskip("datasets")
    from modint.diagnose.engine import DiagnoseConfig, run_diagnosis

    rows = LAYOUTS[layout]
    features = datasets.Dataset.from_list(rows).features
    features["image"] = datasets.List(datasets.Image()) if layout == "seedbench" else datasets.Image()
    ds = datasets.Dataset.from_list(rows, features=features)
    folder = tmp_path / layout
    datasets.DatasetDict({"test": ds}).save_to_disk(str(folder))
    samples = load_benchmark(str(folder), split="test")
    assert len(good(samples)) == 2
    summary = run_diagnosis(tiny_llava_adapter, samples, tmp_path / "run", DiagnoseConfig(conditions=["clean"],
                                                                                      n_boot=50))
    row = summary["conditions"][0]
    assert (row["family"], row["condition"], row["n"], row["errors"]) == ("vqa", "clean", 2, 1)
    errors = [json.loads(x)["error"] for x in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert sum(e is not None for e in errors) == 1


def test_a_parquet_folder_of_each_layout_diagnoses_as_one_benchmark(tmp_path, tiny_llava_adapter):
    from modint.diagnose.engine import DiagnoseConfig, run_diagnosis

    paths = [str(write_parquet(tmp_path / layout, layout)) for layout in LAYOUTS]
    samples = load_benchmark(",".join(paths), split="all")
    summary = run_diagnosis(tiny_llava_adapter, samples, tmp_path / "run",
                            DiagnoseConfig(conditions=["clean", "no_image"], n_boot=50))
    clean = next(r for r in summary["conditions"] if r["condition"] == "clean")
    assert clean["n"] == 8 and clean["errors"] == 4


def test_lmms_eval_doc_ids_count_the_rows_a_load_skips(tmp_path):
    from modint.predictions.readers import read_predictions
    from modint.predictions.score import score_predictions

    video = dict(LAYOUTS["seedbench"][0], question_id="100", data_type="video", image=[])
    root = tmp_path / "seed"
    (root / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([video] + LAYOUTS["seedbench"][:2]), root / "data" / "test-00000-of-00001.parquet")
    samples = load_benchmark(str(root), split="test")
    assert [(s.id, s.meta["doc_id"]) for s in samples] == [("101", 1), ("102", 2)]
    answers = tmp_path / "x_samples_seed@clean.jsonl"  # lmms-eval's doc_id: the row in the dataset
    answers.write_text('{"doc_id": 1, "target": "C", "filtered_resps": "C"}\n'
                       '{"doc_id": 2, "target": "A", "filtered_resps": "B"}\n')
    result = score_predictions(read_predictions(str(answers)), samples, tmp_path / "run", n_boot=50)
    records = [json.loads(x) for x in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert [(r["id"], r["correct"]) for r in records] == [("101", True), ("102", False)]
    assert result.summary["conditions"][0]["accuracy"] == 0.5
