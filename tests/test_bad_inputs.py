"""Bad input, generated: each case writes a small dataset in a benchmark's native layout with good
rows and one defect. A defect gives one clear line naming the file and the row (no traceback) and
the good rows still load; inputs that are odd but valid (BOMs, CRLF, RTL text, huge rows) load
whole; a file that is not a dataset at all stops with one line naming it."""

from __future__ import annotations

import base64
import builtins
import errno
import io
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from modint.data.formats.tools import inspect_dataset
from modint.data.registry import BenchmarkError


def png(colour=(200, 30, 30), size=(8, 8), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def bomb() -> bytes:
    """A PNG that claims 40000 x 40000 pixels (PIL refuses it before decoding: a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------- MMBench TSV

HEADER = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "image"]


def mmbench(root: Path, bad: list[str] | None = None, *, drop: str = "", newline="\n", bom="",
            encoding="utf-8", question="What colour?") -> Path:
    rows = [[str(i), question, "", "red", "green", "blue", "grey", "B", "attribute", "fine", b64(png())]
            for i in range(3)]
    if bad is not None:
        rows.append(bad)
    keep = [i for i, h in enumerate(HEADER) if h != drop]
    header = [HEADER[i] for i in keep]
    rows = [[r[i] for i in keep] if len(r) == len(HEADER) else r for r in rows]
    text = bom + "\t".join(header) + newline + "".join("\t".join(r) + newline for r in rows)
    path = root / "MMBench_DEV_EN.tsv"
    path.write_bytes(text.encode(encoding, "surrogateescape"))
    return path


def mmb_row(**kw) -> list[str]:
    row = dict(zip(HEADER, ["9", "Which?", "", "a", "b", "c", "d", "A", "ocr", "x", b64(png())]))
    row.update(kw)
    return [row[h] for h in HEADER]


# ---------------------------------------------------------------- generic JSONL / published JSON

GOOD = [{"id": f"g{i}", "family": "text_heavy", "question": f"{i} + 1?", "options": [str(i + 1), str(i + 2)],
         "answer": 0} for i in range(3)]


def jsonl(root: Path, bad: str | bytes, name="mc.jsonl", prefix=b"", newline=b"\n") -> Path:
    lines = [json.dumps(r).encode() for r in GOOD]
    lines.append(bad.encode() if isinstance(bad, str) else bad)
    path = root / name
    path.write_bytes(prefix + newline.join(lines) + newline)
    return path


def rec(**kw) -> str:
    return json.dumps({"id": "bad", "family": "text_heavy", "question": "Which?", "options": ["x", "y", "z"],
                       "answer": 0, **kw})


def with_image(root: Path, make) -> Path:
    """A generic JSONL whose 4th record's image is ``pics/p.png``, which ``make(path)`` creates."""
    (root / "pics").mkdir()
    make(root / "pics" / "p.png")
    return jsonl(root, rec(family="vqa", image="pics/p.png"))


def published(root: Path, bad: dict) -> Path:
    recs = [{"id": f"p{i}", "question": "2 + 2 = ?", "multiple_choices": {"A": "3", "B": "4"},
             "multiple_choices_answer": "B"} for i in range(3)]
    recs.append({"id": "bad", "question": "Which?", "multiple_choices": {"A": "x", "B": "y"},
                 "multiple_choices_answer": "A", **bad})
    path = root / "mc_test.json"
    path.write_text(json.dumps(recs))
    return path


# ---------------------------------------------------------------- folders

def caltech(root: Path, make) -> Path:
    cats = root / "caltech101" / "101_ObjectCategories"
    for i, name in enumerate(("accordion", "airplanes", "camera")):
        (cats / name).mkdir(parents=True)
        (cats / name / "image_0001.jpg").write_bytes(png((40 * i, 20, 20), fmt="JPEG"))
    make(cats / "camera" / "image_0002.jpg")
    return root / "caltech101"


def mmlu(root: Path, make) -> Path:
    test = root / "mmlu" / "data" / "test"
    test.mkdir(parents=True)
    (test / "astronomy_test.csv").write_text("Closest star?,Sun,Sirius,Vega,Rigel,A\nRed planet?,Venus,Mars,Earth,"
                                             "Moon,B\n")
    make(test / "anatomy_test.csv")
    return root / "mmlu"


def scienceqa(root: Path, bad: dict, pid_splits: dict | None = None, make_image=None) -> Path:
    sqa = root / "ScienceQA"
    problems = {str(i): {"question": f"Q{i}?", "choices": ["a", "b"], "answer": 0, "hint": "", "image": None,
                         "split": "test"} for i in range(1, 4)}
    problems["4"] = {"question": "Bad?", "choices": ["a", "b"], "answer": 0, "hint": "", "image": None,
                     "split": "test", **bad}
    sqa.mkdir(parents=True)
    (sqa / "problems.json").write_text(json.dumps(problems))
    (sqa / "pid_splits.json").write_text(json.dumps(pid_splits or {"test": ["1", "2", "3", "4"]}))
    if make_image:
        make_image(sqa / "images" / "test" / "4" / "image.png")
    return sqa


def obqa(root: Path, bad: dict) -> Path:
    main = root / "OpenBookQA-V1-Sep2018" / "Data" / "Main"
    main.mkdir(parents=True)
    good = [{"id": f"7-{i}", "question": {"stem": f"Q{i}", "choices": [{"text": t, "label": L} for t, L in
                                                                      zip("wxyz", "ABCD")]}, "answerKey": "B"}
            for i in range(3)]
    broken = {**good[0], "id": "7-bad", **bad}
    (main / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*good, broken]))
    return root / "OpenBookQA-V1-Sep2018"


def seed(root: Path, bad: dict) -> Path:
    folder = root / "SEED-Bench"
    (folder / "SEED-Bench-image").mkdir(parents=True)
    (folder / "SEED-Bench-image" / "a.jpg").write_bytes(png(fmt="JPEG"))
    q = lambda i, **kw: {"question_id": str(i), "question": "Which?", "choice_a": "1", "choice_b": "2",
                         "choice_c": "3", "choice_d": "4", "answer": "A", "data_id": "a.jpg", "data_type": "image",
                         **kw}
    (folder / "SEED-Bench.json").write_text(json.dumps({"questions": [q(1), q(2), q(3), q(4, **bad)]}))
    return folder


def mini_imagenet(root: Path, rows: bytes, newline=b"\n", bom=b"") -> Path:
    mini = root / "mini-imagenet"
    (mini / "images").mkdir(parents=True)
    wnids = ["n01532829", "n01558993", "n01704323"]
    for w in wnids:
        (mini / "images" / f"{w}_1.jpg").write_bytes(png(fmt="JPEG"))
    lines = [b"filename,label"] + [f"{w}_1.jpg,{w}".encode() for w in wnids] + ([rows] if rows else [])
    (mini / "test.csv").write_bytes(bom + newline.join(lines) + newline)
    return mini


def write(data: bytes):
    def make(path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return make


def loop(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(path.name, path)


def folder(path: Path):
    path.mkdir(parents=True)


# ---------------------------------------------------------------- the cases
# (name, build(root) -> dataset path, expected): expected is
#   ("error", good rows, "message fragment naming the file and row"), ("ok", rows), or ("fatal", "fragment").

JPEG = png(fmt="JPEG", size=(64, 64))
_noise = io.BytesIO()
Image.effect_noise((64, 64), 80).convert("RGB").save(_noise, format="PNG")
NOISE_PNG = _noise.getvalue()


def cut_last_byte(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:-1])
    return path


def utf16(path: Path) -> Path:
    path.write_bytes(("".join(json.dumps(x) + "\n" for x in GOOD)).encode("utf-16"))
    return path
CASES = [
    # MMBench TSV
    ("mmb broken base64", lambda r: mmbench(r, mmb_row(image="@@not*base64!!" * 8)),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: broken base64 image")),
    ("mmb truncated base64 png", lambda r: mmbench(r, mmb_row(image=b64(png(size=(64, 64)))[:120])),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: unreadable image")),
    ("mmb decompression bomb", lambda r: mmbench(r, mmb_row(image=b64(bomb()))),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: unreadable image (DecompressionBombError")),
    ("mmb answer beyond options", lambda r: mmbench(r, mmb_row(answer="E")),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: answer 'E' is not among the options (A-D)")),
    ("mmb nan answer", lambda r: mmbench(r, mmb_row(answer="nan")),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: answer 'nan' is not among the options")),
    ("mmb missing answer", lambda r: mmbench(r, mmb_row(answer="")),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: missing answer")),
    ("mmb one option", lambda r: mmbench(r, mmb_row(B="", C="", D="")),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: needs at least 2 options, has 1")),
    ("mmb truncated row", lambda r: mmbench(r, ["9", "Cut", "", "a"]),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: truncated row: 4 of 11 columns")),
    ("mmb extra columns", lambda r: mmbench(r, mmb_row() + ["surplus"]),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: 12 columns, the header has 11")),
    ("mmb duplicate index", lambda r: mmbench(r, mmb_row(index="1")),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: duplicate id '1'")),
    ("mmb latin-1 question", lambda r: mmbench(r, mmb_row(question="caf\udce9")),
     ("error", 3, "MMBench_DEV_EN.tsv row 4: non-UTF-8 text in question")),
    ("mmb missing column", lambda r: mmbench(r, drop="question"),
     ("fatal", "cannot tell the format of the file")),
    ("mmb crlf", lambda r: mmbench(r, newline="\r\n"), ("ok", 3)),
    ("mmb bom", lambda r: mmbench(r, bom="\ufeff"), ("ok", 3)),
    ("mmb rtl and emoji", lambda r: mmbench(r, question="ما لون الصورة؟ 🎨 \u202eevil"), ("ok", 3)),
    ("mmb huge row", lambda r: mmbench(r, mmb_row(question="word " * 400_000)), ("ok", 4)),
    ("mmb numeric options", lambda r: mmbench(r, mmb_row(A="1", B="2", C="3", D="4")), ("ok", 4)),
    ("mmb zero bytes", lambda r: (r / "MMBench_DEV_EN.tsv").write_bytes(b"") or r / "MMBench_DEV_EN.tsv",
     ("fatal", "MMBench_DEV_EN.tsv")),
    # generic JSONL
    ("jsonl invalid json", lambda r: jsonl(r, '{"id": "bad", "question": '),
     ("error", 3, "mc.jsonl row 4: invalid JSON")),
    ("jsonl truncated last line", lambda r: cut_last_byte(jsonl(r, '{"id": "bad"')),
     ("error", 3, "mc.jsonl row 4: truncated JSON")),
    ("jsonl NaN answer", lambda r: jsonl(r, rec(answer=float("nan"))), ("error", 3, "mc.jsonl row 4: missing answer")),
    ("jsonl missing answer", lambda r: jsonl(r, rec(answer=None)), ("error", 3, "mc.jsonl row 4: missing answer")),
    ("jsonl answer index beyond options", lambda r: jsonl(r, rec(answer=7)),
     ("error", 3, "mc.jsonl row 4: answer index 7 is not among the 3 options")),
    ("jsonl answer letter beyond options", lambda r: jsonl(r, rec(answer="F")),
     ("error", 3, "mc.jsonl row 4: answer 'F' is not among the options (A-C)")),
    ("jsonl empty options", lambda r: jsonl(r, rec(options=[])),
     ("error", 3, "mc.jsonl row 4: needs at least 2 options, has 0")),
    ("jsonl empty option text", lambda r: jsonl(r, rec(options=["x", " ", "z"])),
     ("error", 3, "mc.jsonl row 4: option B is empty")),
    ("jsonl numeric options", lambda r: jsonl(r, rec(options=[1, 2.5, 3], answer=1)), ("ok", 4)),
    ("jsonl missing question", lambda r: jsonl(r, rec(question=None)),
     ("error", 3, "mc.jsonl row 4: missing question")),
    ("jsonl list not object", lambda r: jsonl(r, "[1, 2]"),
     ("error", 3, "mc.jsonl row 4: expected a JSON object, got list")),
    ("jsonl duplicate id", lambda r: jsonl(r, rec(id="g1")), ("error", 3, "mc.jsonl row 4: duplicate id 'g1'")),
    ("jsonl latin-1 bytes", lambda r: jsonl(r, rec(question="XX").encode().replace(b"XX", b"caf\xe9")),
     ("error", 3, "mc.jsonl row 4: non-UTF-8 text in question")),
    ("jsonl lone surrogate", lambda r: jsonl(r, rec(question="\ud800")),
     ("error", 3, "mc.jsonl row 4: invalid Unicode text in question")),
    ("jsonl utf-16 file", lambda r: utf16(r / "mc.jsonl"), ("fatal", "mc.jsonl")),
    ("jsonl bom", lambda r: jsonl(r, rec(), prefix="\ufeff".encode()), ("ok", 4)),
    ("jsonl crlf", lambda r: jsonl(r, rec(), newline=b"\r\n"), ("ok", 4)),
    ("jsonl rtl text", lambda r: jsonl(r, rec(question="איזו צורה? \u200f", options=["עיגול", "ריבוע"])), ("ok", 4)),
    ("jsonl image is a folder", lambda r: with_image(r, folder),
     ("error", 3, "mc.jsonl row 4: image path pics/p.png is a folder, not a file")),
    ("jsonl image symlink loop", lambda r: with_image(r, loop),
     ("error", 3, "mc.jsonl row 4: image path pics/p.png is a looping symbolic link")),
    ("jsonl image zero bytes", lambda r: with_image(r, write(b"")), ("error", 3, "mc.jsonl row 4: unreadable image")),
    ("jsonl image truncated", lambda r: with_image(r, write(NOISE_PNG[: len(NOISE_PNG) // 2])),
     ("error", 3, "mc.jsonl row 4: unreadable image")),
    ("jsonl image unreadable", lambda r: with_image(r, unreadable),
     ("error", 3, "mc.jsonl row 4: unreadable image (PermissionError")),
    ("jsonl file is a folder", lambda r: (r / "mc.jsonl").mkdir() or r / "mc.jsonl", ("fatal", "mc.jsonl")),
    ("jsonl file unreadable", lambda r: unreadable_dataset(jsonl(r, rec())), ("fatal", "mc.jsonl: cannot read")),
    # published JSON
    ("published choices not an object", lambda r: published(r, {"multiple_choices": ["x", "y"]}),
     ("error", 3, "mc_test.json row 4: multiple_choices must be an object")),
    ("published answer beyond options", lambda r: published(r, {"multiple_choices_answer": "D"}),
     ("error", 3, "mc_test.json row 4: answer 'D' is not among the options (A, B)")),
    ("published image missing", lambda r: published(r, {"image": "images/gone.jpg"}),
     ("error", 3, "mc_test.json row 4: image not found: images/gone.jpg")),
    # class folders
    ("caltech truncated jpeg", lambda r: caltech(r, write(JPEG[: len(JPEG) // 2])),
     ("error", 3, "camera/image_0002.jpg: unreadable image")),
    ("caltech zero-byte jpeg", lambda r: caltech(r, write(b"")),
     ("error", 3, "camera/image_0002.jpg: unreadable image")),
    ("caltech decompression bomb", lambda r: caltech(r, write(bomb())),
     ("error", 3, "camera/image_0002.jpg: unreadable image (DecompressionBombError")),
    ("caltech symlink loop", lambda r: caltech(r, loop), ("error", 3, "camera/image_0002.jpg: cannot open the image")),
    ("caltech folder named like an image", lambda r: caltech(r, folder),
     ("error", 3, "camera/image_0002.jpg: image path image_0002.jpg is a folder, not a file")),
    ("mini one column", lambda r: mini_imagenet(r, b"n01532829_1.jpg"),
     ("error", 3, "test.csv row 4: expected 2 columns (filename, label), got 1")),
    ("mini crlf and bom", lambda r: mini_imagenet(r, b"", newline=b"\r\n", bom=b"\xef\xbb\xbf"), ("ok", 3)),
    # MMLU
    ("mmlu zero-byte subject", lambda r: mmlu(r, write(b"")), ("error", 2, "data/test/anatomy_test.csv: empty file")),
    ("mmlu five columns", lambda r: mmlu(r, write(b"Q?,1,2,3,A\n")),
     ("error", 2, "data/test/anatomy_test.csv row 1: expected 6 columns")),
    ("mmlu answer beyond options", lambda r: mmlu(r, write(b"Q?,1,2,3,4,F\n")),
     ("error", 2, "data/test/anatomy_test.csv row 1: answer 'F' is not among the options (A-D)")),
    ("mmlu multi-line quoted question", lambda r: mmlu(r, write(b'"Line one\r\nline two?",1,2,3,4,A\n')), ("ok", 3)),
    # ScienceQA, OpenBookQA, SEED-Bench
    ("sqa choices not a list", lambda r: scienceqa(r, {"choices": "a|b"}),
     ("error", 3, "problems.json row 4 (pid 4): choices must be a list")),
    ("sqa NaN answer", lambda r: scienceqa(r, {"answer": float("nan")}),
     ("error", 3, "problems.json row 4 (pid 4): missing answer")),
    ("sqa pid missing from problems", lambda r: scienceqa(r, {}, {"test": ["1", "2", "3", "4", "99"]}),
     ("error", 4, "pid_splits.json (pid 99): pid not in problems.json")),
    ("sqa image is a folder", lambda r: scienceqa(r, {"image": "image.png"}, make_image=folder),
     ("error", 3, "problems.json row 4 (pid 4): image path images/test/4/image.png is a folder, not a file")),
    ("obqa choices not a list", lambda r: obqa(r, {"question": {"stem": "Q", "choices": "A|B"}}),
     ("error", 3, "Data/Main/test.jsonl row 4: question.choices must be a list")),
    ("obqa answer beyond options", lambda r: obqa(r, {"answerKey": "E"}),
     ("error", 3, "Data/Main/test.jsonl row 4: answer 'E' is not among the options (A-D)")),
    ("seed answer beyond options", lambda r: seed(r, {"answer": "E"}),
     ("error", 3, "SEED-Bench.json row 4 (question_id 4): answer 'E' is not among the options (A-D)")),
    ("seed multi-image", lambda r: seed(r, {"data_id": ["a.jpg", "a.jpg"]}),
     ("error", 3, "SEED-Bench.json row 4 (question_id 4): multi-image questions are not supported")),
]

DENIED: set[str] = set()


def unreadable(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png())
    deny(path)


def unreadable_dataset(path: Path) -> Path:
    deny(path)
    return path


def deny(path: Path) -> None:
    """No read permission: chmod for a normal user; for root (whom chmod does not stop), what the
    OS would then say, at the same place (open)."""
    path.chmod(0)
    DENIED.add(os.path.abspath(path))


@pytest.fixture(autouse=True)
def permission_denied(monkeypatch):
    DENIED.clear()
    if os.geteuid() != 0:
        return
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in DENIED:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40 and len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("name, build, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, name, build, expected):
    path = build(tmp_path)
    kind = expected[0]
    if kind == "fatal":
        with pytest.raises(BenchmarkError) as exc:
            inspect_dataset(str(path))
        message = str(exc.value)
        assert expected[1] in message and "\n" not in message and "Traceback" not in message
        return
    report = inspect_dataset(str(path))
    good = report["samples"] - report["errors"]
    if kind == "ok":
        assert report["errors"] == 0, report["error_messages"]
        assert good == expected[1]
        return
    _, n_good, fragment = expected
    assert report["errors"] == 1, report["error_messages"]
    (message,) = report["error_messages"]
    assert fragment in message, message
    assert "\n" not in message and "Traceback" not in message
    assert good == n_good
