"""Classification sets as image-heavy multiple choice: class-folder trees (Caltech-101, ImageNet-
style ``root/<class>/<image>``, optionally under ``train/``, ``val/``, ``test/``) and mini-ImageNet's
CSV split files (``filename,label`` with the images in ``images/``).

Each image becomes "What is the main object in the image?" with its class and 3 distinct other
classes of the same split, drawn and placed from the sample id alone, so a
sample's options never depend on which other samples were loaded.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from modint.data.formats.common import (IMAGE_EXTENSIONS, ImageFile, LoadReport, RowError, Where, bad_row, clean_text,
                                        guarded, humanise, image_file, not_a_file)
from modint.data.formats.textfiles import read_delimited
from modint.data.sample import IMAGE_HEAVY, Sample
from modint.seeding import rng_for

QUESTION = "What is the main object in the image?"
N_OPTIONS = 4
SPLIT_DIRS = ("train", "val", "validation", "dev", "test")
SKIPPED_CLASSES = {"BACKGROUND_Google"}  # Caltech-101's clutter class is not an object
MINI_SPLITS = ("train", "val", "test")

WORDNET_ID = re.compile(r"^n\d{8}$")
# ImageNet-1k's WordNet ids and names (from timm's imagenet_synsets.txt and synset-to-lemma table,
# Apache-2.0); it holds every mini-ImageNet class.
BUNDLED_CLASSNAMES = Path(__file__).resolve().parents[2] / "assets" / "imagenet_classnames.txt"

OPTIONS = {
    "classnames": "a file naming classes: JSON {folder or label: name}, or lines 'n01440764 tench, Tinca tinca' "
                  "(default: ImageNet-1k names for WordNet ids)",
    "n_options": "options per question (default 4)",
    "facts": "a JSON file {class name: misleading sentence} used by misleading_text instead of the template",
}


def class_question(where: Where, sample_id: str, label: str, names: dict[str, str], pool: list[str],
                   image, n_options: int, facts: dict[str, str] | None, split: str) -> Sample:
    """The question for one image of class ``label``; ``pool`` holds every class name of the split."""
    true = names[label]
    others = [p for p in pool if p != true]
    if not others:
        raise RowError("the split has a single class: no wrong option to offer")
    rng = rng_for("class-distractors", sample_id)
    k = min(n_options - 1, len(others))
    wrong = [others[int(i)] for i in rng.choice(len(others), size=k, replace=False)]
    pos = int(rng.integers(k + 1))
    options = tuple(wrong[:pos] + [true] + wrong[pos:])
    meta = {"task": "classification", "label": label, "split": split}
    if facts:
        known = {o: facts[o] for o in options if o in facts}
        if known:
            meta["facts"] = known
    return Sample(id=sample_id, family=IMAGE_HEAVY, question=QUESTION, options=options, answer=pos, image=image,
                  meta=meta)


def _settings(options: dict) -> tuple[dict[str, str], int, dict[str, str] | None]:
    from modint.data.sample import BenchmarkError

    names = read_classnames(Path(options["classnames"])) if options.get("classnames") else {}
    try:
        n = int(options.get("n_options", N_OPTIONS))
    except ValueError:
        raise BenchmarkError(f"n_options must be a whole number, got {options['n_options']!r}") from None
    if n < 2:
        raise BenchmarkError("n_options must be at least 2")
    facts = None
    if options.get("facts"):
        try:
            facts = json.loads(Path(options["facts"]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BenchmarkError(f"facts file {options['facts']}: {exc}") from None
        if not isinstance(facts, dict):
            raise BenchmarkError(f"facts file {options['facts']}: expected a JSON object {{class name: sentence}}")
        facts = {humanise(str(k)): str(v) for k, v in facts.items()}
    return names, n, facts


def read_classnames(path: Path) -> dict[str, str]:
    """Folder/label -> readable class name, from JSON or from 'id name' lines (ImageNet's
    LOC_synset_mapping.txt and words.txt: the first comma-separated name is kept)."""
    from modint.data.sample import BenchmarkError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"classnames file {path}: {exc}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BenchmarkError(f"classnames file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise BenchmarkError(f"classnames file {path}: expected a JSON object {{label: name}}")
        return {str(k): humanise(str(v[0] if isinstance(v, list) and v else v)) for k, v in data.items()}
    names = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([^\s,:]+)\s*[\s,:]\s*(.+?)\s*$", line)
        if m:
            names[m.group(1)] = humanise(m.group(2).split(",")[0])
    return names


def class_names(labels: list[str], names: dict[str, str], report: LoadReport) -> dict[str, str]:
    """Label -> the name offered as an option: the classnames file's, else the bundled ImageNet
    name of a WordNet id, else the label made readable. A WordNet id that stays an id (a
    classnames file without it, or an id outside ImageNet-1k) gets a warning: options such as
    ``n02110063`` test nothing about the picture."""
    bundled: dict[str, str] | None = None
    out, raw = {}, []
    for label in dict.fromkeys(labels):
        name = names.get(label)
        if name is None and WORDNET_ID.match(label):
            if bundled is None:
                bundled = read_classnames(BUNDLED_CLASSNAMES)
            name = bundled.get(label)
            if name is None:
                raw.append(label)
        out[label] = name or humanise(label)
    if raw:
        shown = ", ".join(raw[:5]) + (f" and {len(raw) - 5} more" if len(raw) > 5 else "")
        report.warn(f"{len(raw)} class(es) have no name, so their WordNet ids are the answer options ({shown}): "
                    f"pass -o classnames=FILE (e.g. ImageNet's LOC_synset_mapping.txt)")
    return out


# ---------------------------------------------------------------- class-folder trees

def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _class_dirs(base: Path) -> list[str]:
    out = []
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        try:
            if entry.is_dir() and not entry.name.startswith(".") and any(
                    _is_image(e.name) for e in os.scandir(entry.path)):
                out.append(entry.name)
        except OSError:  # a looping link or an unreadable folder holds no class
            continue
    return out


def _tree_root(path: Path) -> Path:
    inner = path / "101_ObjectCategories"  # the Caltech-101 archive's folder
    return inner if inner.is_dir() else path


def _tree_splits(root: Path) -> list[str]:
    return [s for s in SPLIT_DIRS if len(_class_dirs(root / s)) >= 2]


def detect_tree(path: Path) -> bool:
    if not path.is_dir():
        return False
    root = _tree_root(path)
    return bool(_tree_splits(root)) or len(_class_dirs(root)) >= 2


def splits_tree(path: Path, options: dict) -> list[str]:
    return _tree_splits(_tree_root(path)) or ["all"]


def load_tree(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    names, n_options, facts = _settings(options)
    root = _tree_root(path)
    base = root / split if split in _tree_splits(root) else root
    prefix = f"{split}/" if base != root else ""
    classes = [c for c in _class_dirs(base) if c not in SKIPPED_CLASSES]
    if len(classes) < len(_class_dirs(base)):
        report.skip("Caltech-101 background class (BACKGROUND_Google)")
    label_names = class_names(classes, names, report)
    pool = sorted(set(label_names.values()))
    out: list[Sample] = []
    for c in classes:
        for entry in sorted(os.scandir(base / c), key=lambda e: e.name):
            if not _is_image(entry.name):
                continue
            where = Where(f"{prefix}{c}/{entry.name}")
            sample_id = f"{prefix}{c}/{Path(entry.name).stem}"
            try:
                is_file = entry.is_file()
            except OSError as exc:  # a looping symbolic link
                out.append(bad_row(where, sample_id, IMAGE_HEAVY, f"cannot open the image ({exc.strerror})"))
                continue
            if not is_file:
                out.append(bad_row(where, sample_id, IMAGE_HEAVY, not_a_file(entry.path, entry.name)
                                   or "not a file"))
                continue
            out.append(guarded(where, sample_id, IMAGE_HEAVY, lambda: class_question(
                where, sample_id, c, label_names, pool, ImageFile(entry.path, where), n_options, facts,
                split)))
    return out


# ---------------------------------------------------------------- mini-ImageNet CSV splits

def _mini_root(path: Path) -> Path:
    return path.parent if path.is_file() else path


def _is_split_csv(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.readline().decode("utf-8", "replace").lstrip("\ufeff").strip().lower()
    except OSError:
        return False
    return [h.strip() for h in head.split(",")] == ["filename", "label"]


def detect_mini(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".csv" and _is_split_csv(path)
    return (path / "images").is_dir() and any(_is_split_csv(path / f"{s}.csv") for s in MINI_SPLITS)


def splits_mini(path: Path, options: dict) -> list[str]:
    if path.is_file():
        return [path.stem]
    return [s for s in MINI_SPLITS if (path / f"{s}.csv").is_file()]


def load_mini(path: Path, split: str, options: dict, report: LoadReport) -> list[Sample]:
    names, n_options, facts = _settings(options)
    root = _mini_root(path)
    csv_path = path if path.is_file() else root / f"{split}.csv"
    display = csv_path.name
    rows: list[tuple[Where, str, list[str] | None, str | None]] = []
    for row in read_delimited(csv_path, display, ","):
        if row.number == 0:
            continue
        where = Where(display, row.number)
        fallback = f"{split}-row{row.number}"
        if row.fields is None:
            rows.append((where, fallback, None, row.problem))
            continue
        rows.append((where, fallback, row.fields, None))
    labels = []
    for _, _, fields, _ in rows:
        if fields and len(fields) == 2:
            try:
                labels.append(clean_text(fields[1], "label"))
            except RowError:
                pass
    label_names = class_names([lab for lab in labels if lab], names, report)
    pool = sorted(set(label_names.values()))
    out = []
    for where, fallback, fields, problem in rows:
        def build(where=where, fields=fields, problem=problem) -> Sample:
            if fields is None:
                raise RowError(problem or "unreadable row")
            if len(fields) != 2:
                raise RowError(f"expected 2 columns (filename, label), got {len(fields)}")
            filename = clean_text(fields[0], "filename", required=True)
            label = clean_text(fields[1], "label", required=True)
            image = image_file(root / "images", filename, where)
            return class_question(where, Path(filename).stem, label, label_names, pool, image, n_options, facts,
                                  split)

        ident = fallback
        if fields and fields[0].strip():
            ident = Path(fields[0].strip()).stem
        out.append(guarded(where, ident, IMAGE_HEAVY, build))
    return out
