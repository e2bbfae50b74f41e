"""One run per results folder: a lock taken before any item runs (held by the xdist
controller for its workers), stale locks of killed runs named and taken over, a second
run refused at once, naming the holder. Process boundaries use real subprocesses."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import QUIET, SMOKE_JSONL, read_jsonl, run_items
from vlm_bench.results import lock as results_lock
from vlm_bench.results import LOCK_FILE, ResultsDirError, RunLock, lock_holder, merge_results
from vlm_bench.runners.mock_backend import MockEngine
from vlm_bench.scheduling import in_shard

SMOKE_IDS = [json.loads(line)["id"] for line in SMOKE_JSONL.read_text().splitlines()]
SMOKE_COUNT = len(SMOKE_IDS)


def pytest_cmd(tmp_path: Path, out: Path, model: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *QUIET[:2], "test_run_items.py", "--dataset", str(SMOKE_JSONL),
            "--model", model, "--results-dir", str(out), "-q", *extra]


GATED_TEST = """
import pathlib, time

def test_video_qa(vlm_item, vlm_evaluate):
    while not pathlib.Path("go").exists():  # the test opens the gate once it has checked the lock
        time.sleep(0.02)
    assert vlm_evaluate(vlm_item).passed
"""


def test_two_runs_started_together_one_owns_the_folder(tmp_path):
    """Two real pytest processes started together on one folder: one takes it, the other
    is refused while the first waits at its first item (so the refusal cannot depend on
    how fast either starts)."""
    (tmp_path / "test_run_items.py").write_text(GATED_TEST)
    out = tmp_path / "out"
    procs = {}
    for name in ("model_a", "model_b"):
        (tmp_path / f"{name}.yaml").write_text("family: mock\n")
        cmd = pytest_cmd(tmp_path, out, str(tmp_path / f"{name}.yaml"))
        procs[name] = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while all(proc.poll() is None for proc in procs.values()) and time.time() < deadline:
            time.sleep(0.02)
        loser = next(name for name, proc in procs.items() if proc.poll() is not None)
        winner = next(name for name in procs if name != loser)
        assert procs[winner].poll() is None  # still holding the folder at its gate
    finally:
        (tmp_path / "go").touch()
    _, message = procs[loser].communicate(timeout=60)
    winner_out, winner_err = procs[winner].communicate(timeout=300)
    assert procs[loser].returncode == pytest.ExitCode.USAGE_ERROR, message
    assert procs[winner].returncode == 0, winner_out + winner_err
    assert f"is in use by another vlm-bench run (pid {procs[winner].pid} on {socket.gethostname()}" in message
    assert "Traceback" not in message
    records = read_jsonl(out / "items.jsonl")
    assert len(records) == SMOKE_COUNT and len({r["id"] for r in records}) == SMOKE_COUNT
    assert {r["model"] for r in records} == {winner}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["manifest"]["config"]["model"]["name"] == winner and summary["total"] == SMOKE_COUNT
    assert (out / LOCK_FILE).read_text() == ""  # released at the end
    assert lock_holder(out) is None


def test_xdist_controller_holds_the_lock_for_its_workers(tmp_path):
    (tmp_path / "test_run_items.py").write_text(GATED_TEST)
    out = tmp_path / "out"
    xdist = subprocess.Popen(pytest_cmd(tmp_path, out, "mock", "-n", "2"), cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while lock_holder(out) is None and xdist.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        holder = lock_holder(out)
        assert holder and holder["pid"] == xdist.pid  # the controller, not a worker
        # a second xdist run, even one whose shard holds no item, is refused by its controller
        empty = next(i for i in range(40) if not any(in_shard(f"smoke/{u}", (i, 40)) for u in SMOKE_IDS))
        second = subprocess.run(pytest_cmd(tmp_path, out, "mock", "-n", "1", "--shard", f"{empty}/40"), cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == pytest.ExitCode.USAGE_ERROR, second.stdout + second.stderr
        assert f"in use by another vlm-bench run (pid {xdist.pid} on" in second.stderr
    finally:
        (tmp_path / "go").touch()
    stdout, stderr = xdist.communicate(timeout=300)
    assert xdist.returncode == 0, stdout + stderr
    records = read_jsonl(out / "items.jsonl")
    assert sorted(r["id"] for r in records) == sorted(SMOKE_IDS)  # each once, none lost


def test_a_lock_names_its_holder_and_is_taken_over_when_stale(tmp_path):
    first = RunLock.acquire(tmp_path / "out")
    assert first.stale is None
    with pytest.raises(ResultsDirError, match=rf"in use by another vlm-bench run \(pid {os.getpid()} on "):
        RunLock.acquire(tmp_path / "out")
    assert lock_holder(tmp_path / "out")["pid"] == os.getpid()
    first.release()
    assert lock_holder(tmp_path / "out") is None
    RunLock.acquire(tmp_path / "out").release()  # a clean release leaves no stale lock
    # a run killed with the lock held leaves its name behind, but no lock
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "out" / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started_at": "then"}))
    taken = RunLock.acquire(tmp_path / "out")
    assert taken.stale["pid"] == dead.pid
    taken.release()


def test_without_flock_the_holder_pid_is_checked(tmp_path, monkeypatch):
    """Some cluster file systems refuse flock: the named holder is checked instead."""
    monkeypatch.setattr(results_lock, "_try_flock", lambda fd: None)
    lock_file = tmp_path / "out" / LOCK_FILE
    lock_file.parent.mkdir()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_file.write_text(json.dumps({"pid": alive.pid, "host": socket.gethostname(), "started_at": "now"}))
        with pytest.raises(ResultsDirError, match=f"pid {alive.pid} .*if that run is gone, delete .*{LOCK_FILE}"):
            RunLock.acquire(tmp_path / "out")
        lock_file.write_text(json.dumps({"pid": 1, "host": "another-node", "started_at": "now"}))
        with pytest.raises(ResultsDirError, match="pid 1 on another-node"):  # cannot be checked from here
            RunLock.acquire(tmp_path / "out")
    finally:
        alive.kill()
        alive.wait()
    lock_file.write_text(json.dumps({"pid": alive.pid, "host": socket.gethostname(), "started_at": "now"}))
    assert RunLock.acquire(tmp_path / "out").stale["pid"] == alive.pid


def refused_before_collection(suite, target: Path, message: str) -> None:
    before = MockEngine.loads
    result = run_items(suite, "--results-dir", str(target))
    assert result.ret == pytest.ExitCode.USAGE_ERROR, message
    assert message in result.stderr.str() and "Traceback" not in result.stderr.str() + result.stdout.str()
    result.stdout.no_fnmatch_line("*collected*")  # refused while settings are checked
    assert MockEngine.loads == before


def test_results_dir_that_is_or_lies_below_a_file_is_a_usage_error(suite, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    refused_before_collection(suite, a_file, "is a file")
    refused_before_collection(suite, a_file / "sub" / "out", f"lies below a file ({a_file})")


def test_unwritable_results_dir_is_a_usage_error(suite, tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # root: chmod does not stop it, the immutable flag does
            if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
                pytest.skip("this machine cannot make a folder unwritable for this user (root without chattr)")
        refused_before_collection(suite, locked / "out", "is not writable")
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True)
        locked.chmod(0o755)


def test_resume_with_overwrite_is_refused(suite, tmp_path):
    result = run_items(suite, "--results-dir", str(tmp_path / "o"), "--resume", "--overwrite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--resume and --overwrite contradict each other" in result.stderr.str()


def test_merge_refuses_a_folder_a_run_still_writes(tmp_path):
    src = tmp_path / "s"
    src.mkdir()
    (src / "run.json").write_text(json.dumps({"fingerprint": {}}))
    lock = RunLock.acquire(src)
    try:
        with pytest.raises(ResultsDirError, match=f"still being written by a run \\(pid {os.getpid()}"):
            merge_results([src], tmp_path / "m")
    finally:
        lock.release()
