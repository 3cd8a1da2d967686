"""The run directory contract: records.jsonl streamed and resumable,
summary.json, manifest.json."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

log = logging.getLogger(__name__)

RECORDS = "records.jsonl"
SUMMARY = "summary.json"
MANIFEST = "manifest.json"
REPORT = "report.html"
LOCK = ".modint.lock"


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSONL file. A torn last line (a run killed or out of disk mid-write: no
    final newline, or not valid JSON) is dropped, so a resumed run redoes that record; a bad
    line elsewhere is an error naming the line."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    complete, _, torn = data.rpartition(b"\n")
    if torn.strip():
        log.warning("%s: dropping a torn last line (an interrupted write)", path)
    records = []
    lines = complete.split(b"\n") if complete else []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if number == len(lines):
                log.warning("%s: dropping a torn last line (an interrupted write)", path)
                continue
            raise ValueError(f"{path}: line {number} is not valid JSON") from None
    return records


def repair_torn_tail(path: Path) -> None:
    """Cut what ``read_records`` drops (a partial or broken last line), so appended records
    start on a fresh line and the file holds exactly the records a resume counts as done."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    cut = len(data)
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
    else:
        body = data[:-1]
        last_start = body.rfind(b"\n") + 1
        try:
            json.loads(body[last_start:].decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            cut = last_start
    if cut < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(cut)


class RecordWriter:
    """Appends JSON lines and syncs them to disk as they are produced. A batch goes to disk in
    one write; if the write fails (a full disk), the file is cut back to where the batch began,
    so a resume sees whole batches only."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        self.write_many([record])

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        if not data:
            return
        size = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                pass  # what is left is a torn tail, which the next open cuts
            if exc.filename is None:
                exc.filename = str(self.path)
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), so a kill never leaves half a summary."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is None:
            exc.filename = str(path)
        raise


def iter_keys(records: Iterable[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for r in records:
        yield (r["id"], r["condition"])


class RunDirBusy(RuntimeError):
    """Another live process is writing the same run directory."""


class RunLock:
    """One writer per run directory: an exclusive ``flock`` on ``DIR/.modint.lock``, held while
    the run writes. The kernel drops the lock when its process dies, so a lock file left by a
    killed run never blocks a resume. The file holds the holder's pid, host, start time and
    command, for the message another process gets (``RunDirBusy``). ``part`` names a lock of
    its own (one per rank of a multi-process run, which share the directory by design)."""

    def __init__(self, directory: str | Path, part: str = ""):
        self.directory = Path(directory)
        self.path = self.directory / (LOCK if not part else f".modint.{part}.lock")
        self._fd = -1

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock, as before
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if self._held_by_this_process():  # the CLI claims --out before the library does
                return
            raise RunDirBusy(f"{self.directory} is in use by {self._holder()}; wait for it to finish, "
                             f"or use another --out") from None
        except OSError as exc:  # a file system without flock (some network mounts)
            log.warning("%s: cannot lock (%s); make sure no other process writes here", self.path, exc)
            os.close(fd)
            return
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode("utf-8"))
        self._fd = fd

    def _held_by_this_process(self) -> bool:
        """A flock held elsewhere in this process (a file written by a dead process cannot be
        held: the kernel dropped its lock)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return info.get("pid") == os.getpid() and info.get("host") == socket.gethostname()

    def _holder(self) -> str:
        """The other process as the lock file names it (it may not have written it yet)."""
        for _ in range(20):
            try:
                info = json.loads(self.path.read_text(encoding="utf-8"))
                return (f"pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')} "
                        f"({info.get('command')})")
            except (OSError, ValueError):
                time.sleep(0.05)
        return f"another process (holding {self.path})"

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1


def merge_rank_files(out: Path, world: int) -> None:
    """Fold every rank's records file into the run's records (a record once), then remove them."""
    final_path = out / RECORDS
    keys = set(iter_keys(read_records(final_path)))
    with RecordWriter(final_path) as writer:
        for r in range(world):
            shard = out / f"records.rank{r}.jsonl"
            fresh = [rec for rec in read_records(shard) if (rec["id"], rec["condition"]) not in keys]
            keys |= set(iter_keys(fresh))
            writer.write_many(fresh)
    for r in range(world):
        (out / f"records.rank{r}.jsonl").unlink(missing_ok=True)
