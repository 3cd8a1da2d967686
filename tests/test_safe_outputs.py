"""Outputs that cannot hurt their reader, and run directories that survive faults: spreadsheet
formulas neutralised without touching numbers, LaTeX escaped, checkpoints loaded without
unpickling code, torn record lines dropped, a failed batch write cut back, one writer per
directory with a stale lock that never blocks."""

import csv
import errno
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from modint.diagnose import rundir
from modint.report.safe import latex_escape, spreadsheet_cell
from modint.report.tables import csv_table, latex


@pytest.mark.parametrize("text", ["=1+2", "=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                                  "\tleading tab", "\rleading cr", "=", "-", "+", "@"])
def test_formula_cells_are_neutralised(text):
    assert spreadsheet_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-3.5, 3, 0, 1e-9, True, None, "-3.5", "+1.2", "-1e-3", "12%", "-0", "plain",
                                   "a=b", "x-y"])
def test_numbers_and_plain_text_are_unchanged(value):
    assert spreadsheet_cell(value) == value


def test_csv_table_neutralises_text_and_keeps_numbers():
    summary = {"conditions": [{"family": "=cmd|'/C calc'!A0", "condition": "@evil", "n": 4, "accuracy": 0.5,
                               "accuracy_ci95": [0.25, 0.75], "delta": -0.035, "delta_ci95": [-0.1, 0.02],
                               "flip_rate": 0.25, "followed_distractor_rate": None}]}
    rows = list(csv.reader(io.StringIO(csv_table(summary))))
    assert rows[1][:2] == ["'=cmd|'/C calc'!A0", "'@evil"]
    assert rows[1][7:10] == ["-3.5", "-10.0", "+2.0"]  # signed numbers stay numbers
    assert float(rows[1][7]) == -3.5


def test_latex_escapes_every_special_character():
    assert latex_escape(r"\ { } $ & # ^ _ % ~") == (r"\textbackslash{} \{ \} \$ \& \# \textasciicircum{} \_ \% "
                                                    r"\textasciitilde{}")
    summary = {"conditions": [{"family": r"\input{/etc/passwd}", "condition": "a_b&c", "n": "$x$", "accuracy": 0.5}]}
    table = latex(summary)
    assert r"\input" not in table and r"\textbackslash{}input\{/etc/passwd\}" in table
    assert r"a\_b\&c" in table and r"\$x\$" in table


def test_no_checkpoint_is_unpickled_with_code():
    src = Path(__file__).resolve().parents[1] / "src" / "modint"
    for path in src.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}:{number}"
            assert "pickle.load" not in line, f"{path}:{number}"


def test_trust_remote_code_is_opt_in():
    import inspect

    from modint.models.loading import load_adapter

    assert inspect.signature(load_adapter).parameters["trust_remote_code"].default is False


def test_torn_last_line_is_dropped_and_cut_before_appending(tmp_path):
    path = tmp_path / "records.jsonl"
    whole = b'{"id": "a", "condition": "clean"}\n'
    for torn in (b'{"id": "b", "cond', b'{"id": "b", "condition": "clean"}'):  # cut mid-record, or before its \n
        path.write_bytes(whole + torn)
        assert [r["id"] for r in rundir.read_records(path)] == ["a"]
        with rundir.RecordWriter(path) as writer:
            writer.write({"id": "c", "condition": "clean"})
        assert [r["id"] for r in rundir.read_records(path)] == ["a", "c"]
    path.write_bytes(whole + b"not json\n" + whole)
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        rundir.read_records(path)


def test_a_batch_that_does_not_fit_on_the_disk_is_cut_back(tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    writer = rundir.RecordWriter(path)
    writer.write_many([{"id": "a", "condition": "clean"}])
    real_write = os.write

    def half_then_full(fd, data):  # the disk fills up in the middle of the batch
        if len(data) > 10:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir.os, "write", half_then_full)
    with pytest.raises(OSError) as exc:
        writer.write_many([{"id": "b", "condition": "clean"}, {"id": "c", "condition": "clean"}])
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(path)
    monkeypatch.undo()
    writer.close()
    assert path.read_bytes() == b'{"id": "a", "condition": "clean"}\n'  # no half batch, no torn line


def test_a_live_writer_blocks_and_a_dead_ones_lock_does_not(tmp_path, tiny_llava_adapter):
    from modint.data.mini import load_mini
    from modint.diagnose.engine import DiagnoseConfig, run_diagnosis

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from modint.diagnose.rundir import RunLock; "
                               "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(out)],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  sys.path)})
    assert holder.stdout.readline().strip() == "held"
    samples = load_mini("test", limit=3)
    config = DiagnoseConfig(conditions=["clean"], n_boot=20)
    with pytest.raises(rundir.RunDirBusy, match=rf"in use by pid {holder.pid} on host .+, started 20"):
        run_diagnosis(tiny_llava_adapter, samples, out, config)
    assert not (out / rundir.RECORDS).exists()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / rundir.LOCK).exists()  # the killed writer's lock file stays behind...
    run_diagnosis(tiny_llava_adapter, samples, out, config)  # ...and does not block a resume
    assert len(rundir.read_records(out / rundir.RECORDS)) == 2  # clean: the image-heavy and VQA samples
    with rundir.RunLock(out):  # one process may claim its directory twice (CLI, then library)
        run_diagnosis(tiny_llava_adapter, samples, out, config)
