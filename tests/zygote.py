"""Fresh `modint` processes without paying the imports each time: a zygote process imports modint
and its heavy dependencies once, then forks one child per command. Each child is a real, separate
process running `modint.cli.main()` from a pristine copy of the zygote (which never runs a command
itself), so SIGKILL, exit codes and file-size limits behave as for `python -m modint.cli`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_CODE = r'''
import json, os, resource, signal, sys, traceback
import modint.cli, modint.diagnose.engine, modint.mitigate.train, modint.report.html, modint.attacks.vlm
from modint.models.loading import load_adapter
load_adapter("tiny-random-llava")  # imports every module a tiny model and its processor need
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "run":
        pid = os.fork()
        if pid == 0:
            try:
                fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                if cmd.get("fsize"):
                    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
                    resource.setrlimit(resource.RLIMIT_FSIZE, (cmd["fsize"], cmd["fsize"]))
                sys.argv = ["modint", *cmd["argv"]]
                code = 0
                try:
                    modint.cli.main()
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                except BaseException:
                    traceback.print_exc()
                    code = 3
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(locals().get("code", 3))
        print(json.dumps({"pid": pid}), flush=True)
    elif cmd["op"] == "wait":
        _, status = os.waitpid(cmd["pid"], 0)
        print(json.dumps({"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                          "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}), flush=True)
'''


class Zygote:
    def __init__(self, env: dict | None = None):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-c", _CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True)
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def _ask(self, cmd: dict) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def start(self, argv: list[str], log: Path, fsize: int | None = None) -> int:
        """Start ``modint ARGV`` (output to ``log``); returns its pid."""
        return self._ask({"op": "run", "argv": [str(a) for a in argv], "log": str(log), "fsize": fsize})["pid"]

    def wait(self, pid: int) -> dict:
        """{"code": exit code or None, "signal": the signal that ended it or None}."""
        return self._ask({"op": "wait", "pid": pid})

    def run(self, argv: list[str], log: Path, fsize: int | None = None) -> dict:
        return self.wait(self.start(argv, log, fsize))

    @staticmethod
    def running(pid: int) -> bool:
        """Whether a child still runs (an ended one stays a zombie until ``wait``)."""
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
