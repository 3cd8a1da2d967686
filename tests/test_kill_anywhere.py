"""Nothing lost, nothing doubled: SIGKILL at seeded random points of `modint diagnose`, `modint
attack` (an eps sweep) and `modint train --checkpoint-every`, each run then resumed until it
finishes, must end exactly where an uninterrupted run ends. Also: one writer per run directory,
and a full disk or a read-only --out give one clear line and leave a resumable run directory.

Commands run as real processes forked from a zygote that has the imports done (tests/zygote.py).
The kill seed is MODINT_KILL_SEED (default 0); a failure prints the kill points."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from modint.diagnose.rundir import LOCK, read_records
from zygote import Zygote

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("MODINT_KILL_SEED", "0"))
TINY = ["--model", "tiny-random-llava"]
DIAGNOSE = ["diagnose", *TINY, "--limit", "9", "--batch-size", "2", "--quiet"]
ATTACK = ["attack", *TINY, "--limit", "4", "--steps", "2", "--pixel-eps", "0,2,4", "--embed-eps", "0,0.1",
          "--batch-size", "2", "--quiet"]
TRAIN = ["train", *TINY, "--limit", "16", "--max-steps", "6", "--checkpoint-every", "2", "--recipe", "aug_kl",
         "--no-diagnose"]


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def _run_with_kills(zygote: Zygote, argv: list[str], out: Path, progress_file: str, total: int, kills: int,
                    rng: random.Random, log: Path, resume_flag: tuple[str, ...] = ()) -> list[dict]:
    """Start ``argv --out OUT``; SIGKILL it once ``progress_file`` has a random number of lines
    (plus a random delay; 0 lines: during start-up); start it again (with ``resume_flag``) and so
    on, ``kills`` times at increasing line counts; then let the last run finish. Returns the kill
    points."""
    points = []
    targets = sorted(rng.sample(range(total), kills))  # in order: each kill lands further into the work
    for k, target in enumerate(targets):
        # The first kill comes as soon as its line count is reached: a small run can finish
        # within any fixed delay, and at least one kill must land mid-run.
        delay = rng.uniform(0, 0.3) if k else 0.0
        pid = zygote.start([*argv, "--out", out, *(resume_flag if k else ())], log)
        deadline = time.time() + 600
        while _lines(out / progress_file) < target and time.time() < deadline and zygote.running(pid):
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        ended = zygote.wait(pid)
        point = {"kill": k + 1, "after_lines": target, "delay_s": round(delay, 3),
                 "lines_on_disk": _lines(out / progress_file), "killed": ended["signal"] == signal.SIGKILL}
        points.append(point)
        if (out / LOCK).exists() and point["killed"]:  # the dead writer's lock file stays: it must not block
            point["stale_lock"] = (out / LOCK).read_text().strip()[:80]
    assert any(p["killed"] and p["lines_on_disk"] < total for p in points), f"no kill landed mid-run: {points}"
    final = zygote.run([*argv, "--out", out, *resume_flag], log)
    assert final == {"signal": None, "code": 0}, f"resume failed ({points}): {log.read_text()[-2000:]}"
    return points


def _keys(records):
    return [(r["id"], r["condition"]) for r in records]


@pytest.mark.parametrize("name, argv, kills", [("diagnose", DIAGNOSE, 3), ("attack", ATTACK, 2)])
def test_diagnose_and_attack_killed_anywhere_equal_an_uninterrupted_run(tmp_path, zygote, name, argv, kills):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert zygote.run([*argv, "--out", straight], tmp_path / "straight.log")["code"] == 0
    expected = read_records(straight / "records.jsonl")
    rng = random.Random(f"{SEED}-{name}")
    points = _run_with_kills(zygote, argv, killed, "records.jsonl", len(expected), kills, rng, tmp_path / "k.log")
    got = read_records(killed / "records.jsonl")
    keys = _keys(got)
    assert len(keys) == len(set(keys)), f"duplicate (id, condition) after kills at {points}"
    assert set(keys) == set(_keys(expected)), f"lost records after kills at {points}"
    assert got == expected, f"records differ after kills at {points}"
    summary = json.loads((killed / "summary.json").read_text())
    assert summary == json.loads((straight / "summary.json").read_text()), f"summary differs after kills at {points}"


def test_train_killed_anywhere_ends_with_the_same_weights(tmp_path, zygote):
    from safetensors.torch import load_file

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert zygote.run([*TRAIN, "--out", straight], tmp_path / "straight.log")["code"] == 0
    rng = random.Random(f"{SEED}-train")
    points = _run_with_kills(zygote, TRAIN, killed, "train_log.jsonl", 6, 2, rng, tmp_path / "k.log",
                             resume_flag=("--resume",))
    a = load_file(straight / "model" / "model.safetensors")
    b = load_file(killed / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    different = [k for k in a if not (a[k] == b[k]).all()]
    assert not different, f"weights differ after kills at {points}: {different[:5]}"
    steps = [json.loads(line)["step"] for line in (killed / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7)), f"train log after kills at {points}: {steps}"


def test_a_second_writer_is_refused_at_once_naming_the_first(tmp_path, zygote):
    out = tmp_path / "run"
    first = zygote.start([*DIAGNOSE, "--limit", "30", "--out", out], tmp_path / "first.log")
    deadline = time.time() + 60
    while time.time() < deadline and f'"pid": {first}' not in ((out / LOCK).read_text() if (out / LOCK).exists()
                                                               else ""):
        time.sleep(0.02)
    started = time.time()
    second = zygote.run([*DIAGNOSE, "--limit", "30", "--out", out], tmp_path / "second.log")
    refused_in = time.time() - started
    message = (tmp_path / "second.log").read_text().strip()
    assert second == {"signal": None, "code": 1}, message
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert f"in use by pid {first} on host" in message and "started" in message
    assert refused_in < 30  # long before the first run ends: no model was loaded
    assert zygote.wait(first) == {"signal": None, "code": 0}
    keys = _keys(read_records(out / "records.jsonl"))
    assert len(keys) == len(set(keys)) and keys
    again = zygote.run([*TRAIN, "--out", out / "t"], tmp_path / "t.log")  # train claims its --out too
    assert again["code"] == 0
    holder = subprocess.Popen(["python3", "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
                               "os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); "
                               "os.write(fd, b'{\"pid\": 1, \"host\": \"h\", \"started\": \"then\"}'); "
                               "print('held', flush=True); time.sleep(60)", str(out / "t" / LOCK)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = zygote.run([*TRAIN, "--out", out / "t"], tmp_path / "t2.log")
        assert refused["code"] == 1 and "in use by pid 1 on host h" in (tmp_path / "t2.log").read_text()
    finally:
        holder.kill()
        holder.wait()


def test_full_disk_gives_one_line_and_the_run_resumes_from_what_was_written(tmp_path, zygote):
    straight, full = tmp_path / "straight", tmp_path / "full"
    assert zygote.run([*DIAGNOSE, "--out", straight], tmp_path / "s.log")["code"] == 0
    size = (straight / "records.jsonl").stat().st_size
    ended = zygote.run([*DIAGNOSE, "--out", full], tmp_path / "full.log", fsize=size // 2)
    message = (tmp_path / "full.log").read_text().strip()
    assert ended == {"signal": None, "code": 1}, message
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert "cannot write" in message and "records.jsonl" in message and "File too large" in message
    partial = (full / "records.jsonl").read_bytes()
    assert partial.endswith(b"\n") and 0 < len(partial) <= size // 2  # whole batches, no torn line
    assert zygote.run([*DIAGNOSE, "--out", full], tmp_path / "resume.log")["code"] == 0
    assert read_records(full / "records.jsonl") == read_records(straight / "records.jsonl")


def test_read_only_out_gives_one_line(tmp_path, zygote):
    out = tmp_path / "ro"
    out.mkdir()
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        ended = zygote.run([*DIAGNOSE, "--out", out], tmp_path / "ro.log")
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    message = (tmp_path / "ro.log").read_text().strip()
    assert ended == {"signal": None, "code": 1}, message
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert f"cannot write {out}" in message and "Operation not permitted" in message
