"""Reliability, tried as an adversary would, each through a real pytest process (and a real
loopback server where a connection matters): one bad connection does not stop a run, no
item can hang it, nothing unbounded is written from a bounded input, no credential reaches
a file, a full disk and SIGTERM end it with one clear line and an honest summary."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from conftest import COLOUR_MP4, EVAL_TEST, FIXTURES, SMOKE_JSONL, SQUARE_MP4, read_jsonl
from fake_openai import FakeOpenAIServer
from vlm_bench.results import read_records

pytest.importorskip("openai")  # the serve extra (in the test extra)
CANARY = "sk-canary-7c3e91d04b"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def project(tmp_path):
    """A user's project: the evaluation test, a served-model YAML with quick retries, and
    fourteen items over the smoke clips, each asked with its own word."""
    (tmp_path / "test_items.py").write_text(EVAL_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "served.yaml").write_text(
        "family: internvl3\nengine: openai\nvision_args: {short_side: 64}\nvideo: {max_frames: 2}\n"
        "decode: {max_new_tokens: 16}\nserver: {retry_base_s: 0.0, max_retries: 2}\n"
    )
    lines = [json.dumps({"id": f"item{k:02d}", "video": str(SQUARE_MP4 if k % 2 else COLOUR_MP4),
                         "question": f"What happens in word{k:02d}?", "answer": "x"}) for k in range(14)]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def pytest_run(project: Path, *args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_items.py", *args],
        cwd=project, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def served(project: Path, url: str, out: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return pytest_run(project, "--model", str(project / "served.yaml"), "--dataset", str(project / "items.jsonl"),
                      "--base-url", url, "--results-dir", str(project / out), "--min-pass-rate", "0", *args, **kwargs)


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


# ---------------------------------------------------------------- one bad connection


def test_one_item_whose_connection_resets_is_an_error_record_and_the_run_goes_on(project):
    with FakeOpenAIServer() as srv:
        srv.per_item["word07"] = "reset"
        done = served(project, srv.url, "out")
        assert done.returncode == 0, done.stdout[-3000:]
        records = {r["id"]: r for r in read_jsonl(project / "out" / "items.jsonl")}
        assert len(records) == 14 and sum(r["error"] is None for r in records.values()) == 13
        error = records["item07"]["error"]
        assert "connection" in error and "while the server answers other requests" in error and srv.url in error
        summary = summary_of(project / "out")
        assert summary["complete"] is True and summary["errors"] == 1
        before = len(srv.requests)
        again = served(project, srv.url, "out", "--resume")  # only the errored item runs again, and the run ends
        assert again.returncode == 0 and len(srv.requests) - before == 3  # its 3 attempts
        assert summary_of(project / "out")["complete"] is True


def test_a_server_that_is_down_still_stops_the_run_at_once(project):
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    done = served(project, url, "out")
    assert done.returncode == pytest.ExitCode.INTERRUPTED and f"cannot reach the server at {url}" in done.stdout
    assert time.monotonic() - started < 60


# ---------------------------------------------------------------- no item hangs the run


def test_an_fps_of_a_billion_is_bounded_by_the_frames_kept(project):
    data = project / "fast.jsonl"
    video = {"path": str(SQUARE_MP4), "strategy": "fps", "fps": 1e9, "max_frames": 1024}
    data.write_text(json.dumps({"id": "greedy", "video": video, "question": "q", "answer": "a"}) + "\n")
    done = pytest_run(project, "--dataset", str(data), "--results-dir", str(project / "a"), timeout=60)
    assert done.returncode == 0, done.stdout[-2000:]
    (record,) = read_jsonl(project / "a" / "items.jsonl")
    assert record["error"] is None and record["video"]["strategy"] == "fps"
    assert len(record["video"]["selected_indices"]) == record["video"]["num_frames_total"]  # every frame, once
    done = pytest_run(project, "--dataset", str(SMOKE_JSONL), "--frame-strategy", "fps", "--fps", "1e9",
                      "--results-dir", str(project / "b"), timeout=60)
    assert done.returncode == 0 and summary_of(project / "b")["total"] == 9


def test_an_item_past_the_item_timeout_is_an_error_record_and_the_run_goes_on(project):
    with FakeOpenAIServer() as srv:
        srv.per_item["word03"] = "hang"  # accepts, never answers
        started = time.monotonic()
        done = served(project, srv.url, "out", "--item-timeout", "2", timeout=90)
        took = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:]
    records = {r["id"]: r for r in read_jsonl(project / "out" / "items.jsonl")}
    assert len(records) == 14 and "did not finish within --item-timeout 2 s" in records["item03"]["error"]
    assert sum(r["error"] is None for r in records.values()) == 13 and took < 60


def test_the_start_up_check_is_short_and_says_what_it_waits_for(project):
    with FakeOpenAIServer() as srv:
        srv.models_hang = True
        started = time.monotonic()
        done = served(project, srv.url, "out", "--request-timeout", "1", timeout=90)
        took = time.monotonic() - started
    assert done.returncode == pytest.ExitCode.INTERRUPTED
    assert f"vlm-bench: checking the server at {srv.url}: GET /models, at most 3 s" in done.stdout
    assert "did not answer GET /models" in done.stdout and took < 45


# ---------------------------------------------------------------- nothing unbounded


def test_a_yaml_alias_bomb_is_refused_before_anything_is_written(project):
    bomb = "\n".join(["name: bomb", "format: jsonl", "path: items.jsonl", "source:",
                      "  a: &a [x, x, x, x, x, x, x, x, x, x]"]
                     + [f"  {c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdefg", "bcdefgh")]) + "\n"
    (project / "bomb.yaml").write_text(bomb)
    assert len(bomb) < 600
    done = pytest_run(project, "--dataset", str(project / "bomb.yaml"), "--results-dir", str(project / "out"), timeout=60)
    assert done.returncode == 4 and "YAML aliases" in done.stderr and "expands to more than 100,000 values" in done.stderr
    assert not (project / "out").exists()


def test_a_huge_answer_is_cut_marked_and_flagged(project):
    with FakeOpenAIServer() as srv:
        srv.per_item["word05"] = 5_000_000  # five million characters for max_tokens 16
        done = served(project, srv.url, "out")
    assert done.returncode == 0
    assert (project / "out" / "items.jsonl").stat().st_size < 1_000_000
    record = {r["id"]: r for r in read_jsonl(project / "out" / "items.jsonl")}["item05"]
    assert len(record["raw_response"]) == 65536 and record["truncated"] is True
    assert set(record["warnings"]) == {"response_cut", "response_overlong"}
    assert "5,000,000 characters" in record["warnings"]["response_cut"]
    assert summary_of(project / "out")["warnings"] == {"response_cut": 1, "response_overlong": 1}


# ---------------------------------------------------------------- no credential in any file


def test_no_file_a_run_writes_holds_a_credential_from_the_url(project):
    with FakeOpenAIServer() as srv:
        url = srv.url.replace("http://", f"http://user:{CANARY}@")
        log = project / "run.log"
        done = served(project, url, "out", "--log-file", str(log), "--log-file-level", "DEBUG")
        assert done.returncode == 0, done.stdout[-2000:]
        report = subprocess.run([sys.executable, "-m", "vlm_bench.cli", "report", str(project / "out")],
                                capture_output=True, text=True, timeout=120)
        assert report.returncode == 0, report.stderr
    assert CANARY in url and CANARY not in done.stdout + done.stderr
    written = [p for p in project.rglob("*") if p.is_file()]
    assert log in written and (project / "out" / "report.html") in written
    leaked = [str(p) for p in written if p.name != "test_items.py" and CANARY.encode() in p.read_bytes()]
    assert not leaked, leaked
    manifest = summary_of(project / "out")["manifest"]
    assert manifest["config"]["model"]["server"]["base_url"] == srv.url and srv.url in " ".join(manifest["argv"])


# ---------------------------------------------------------------- smaller ones


@pytest.mark.parametrize("scorer", ["[mc]", "{name: numeric}"])
def test_a_scorer_given_as_a_list_or_a_mapping_is_a_usage_error(project, scorer):
    (project / "data.yaml").write_text(f"name: data\nformat: jsonl\npath: items.jsonl\nscorer: {scorer}\n")
    done = pytest_run(project, "--dataset", str(project / "data.yaml"), timeout=60)
    assert done.returncode == 4 and "scorer must be one of" in done.stderr and "INTERNALERROR" not in done.stdout + done.stderr


@pytest.mark.parametrize("answer, says", [("html", "text/html"), ("notjson", "upstream error: model not loaded")])
def test_a_200_that_is_not_an_openai_answer_says_so(project, answer, says):
    with FakeOpenAIServer() as srv:
        srv.per_item["word02"] = answer
        done = served(project, srv.url, "out")
    assert done.returncode == 0
    error = {r["id"]: r for r in read_jsonl(project / "out" / "items.jsonl")}["item02"]["error"]
    assert f"the server at {srv.url} answered item 'item02' with something that is not an OpenAI chat completion" in error
    assert says in error


def test_report_md_escapes_html_from_ids_and_predictions(tmp_path):
    from vlm_bench.report import build_report

    out = tmp_path / "run"
    out.mkdir()
    record = {"id": "<script>alert(1)</script>", "dataset": "d", "question": "q", "answer": "a", "passed": False,
              "prediction": "<img src=x onerror=alert(2)>", "error": None, "latency_ms": 1.0, "scorer": "exact"}
    (out / "items.jsonl").write_text(json.dumps(record) + "\n")
    from vlm_bench.results import summarize

    (out / "summary.json").write_text(json.dumps(summarize([record])))
    markdown, _ = build_report(out)
    assert "<script>" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown and "&lt;img src=x onerror=alert(2)&gt;" in markdown


def test_a_cut_faststart_mp4_is_sampled_from_what_decodes_and_says_so(project):
    av = pytest.importorskip("av")
    import numpy as np

    from vlm_bench.utils.synthetic import indexed_frame

    path = project / "fast.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt, stream.options = 96, 64, "yuv420p", {"g": "10"}
        for i in range(100):
            frame = av.VideoFrame.from_ndarray(indexed_frame(i, rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cut = project / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.4)])
    (project / "cut.jsonl").write_text(json.dumps({"id": "cut", "video": str(cut), "question": "q", "answer": "a"}) + "\n")
    pytest_run(project, "--dataset", str(project / "cut.jsonl"), "--results-dir", str(project / "out"), timeout=60)
    (record,) = read_jsonl(project / "out" / "items.jsonl")
    video = record["video"]
    assert video["num_frames_claimed"] == 100 and 0 < video["num_frames_total"] < 100
    assert max(video["selected_indices"]) < video["num_frames_total"]
    assert "the container claims 100 frames" in record["warnings"]["video_short"]
    assert summary_of(project / "out")["warnings"] == {"video_short": 1}


def test_resume_keeps_one_record_per_item_the_last_whole_one(project):
    out = project / "out"
    assert pytest_run(project, "--dataset", str(SMOKE_JSONL), "--results-dir", str(out)).returncode == 0
    lines = (out / "items.jsonl").read_text().splitlines()
    twin = json.loads(lines[2]) | {"prediction": "the later copy"}
    (out / "items.jsonl").write_text("\n".join(lines + [json.dumps(twin)]) + "\n")
    done = pytest_run(project, "--dataset", str(SMOKE_JSONL), "--results-dir", str(out), "--resume")
    assert done.returncode == 0 and "had more than one record; kept the last of each" in done.stdout + done.stderr
    records = read_jsonl(out / "items.jsonl")
    assert len(records) == 9 and len({r["id"] for r in records}) == 9
    assert {r["id"]: r for r in records}[twin["id"]]["prediction"] == "the later copy"


def small_filesystem(where: Path, force_limit: bool = False):
    """A 300 KB tmpfs at ``where`` (root can mount one), else a file-size limit of 300 KB for
    the child (RLIMIT_FSIZE: writes past it fail with EFBIG, as a full disk fails with
    ENOSPC; Python ignores the SIGXFSZ that comes with it). Returns the child's preexec_fn."""
    import resource

    where.mkdir()
    if not force_limit:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(where)], capture_output=True)
        if mounted.returncode == 0:
            return None
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


@pytest.mark.parametrize("limit", [False, True], ids=["tmpfs", "file-size-limit"])
def test_a_full_disk_ends_the_run_with_one_line_and_resume_recovers(project, limit):
    many = project / "many.jsonl"
    many.write_text("".join(json.dumps({"id": f"i{k:04d}", "frames": [str(FIXTURES / "smoke" / "frames" / "dots_1.png")],
                                        "question": "How many dots? " + "pad " * 60, "answer": "1"}) + "\n"
                            for k in range(1500)))
    disk = project / "disk"
    preexec = small_filesystem(disk, force_limit=limit)
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_items.py",
                               "--dataset", str(many), "--results-dir", str(disk / "out"), "--progress", "never"],
                              cwd=project, capture_output=True, text=True, timeout=300, preexec_fn=preexec)
        text = done.stdout + done.stderr
        assert done.returncode != 0 and "INTERNALERROR" not in text and "Traceback" not in text, text[-3000:]
        assert "vlm-bench: cannot write" in text and "finish the run with --resume" in text
        with warnings.catch_warnings():  # the line the disk cut short, if it was cut inside a line
            warnings.simplefilter("ignore")
            kept = read_records(disk / "out" / "items.jsonl")
        assert 0 < len(kept) < 1500
        roomy = project / "roomy"
        subprocess.run(["cp", "-r", str(disk / "out"), str(roomy)], check=True)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    again = pytest_run(project, "--dataset", str(many), "--results-dir", str(roomy), "--resume", timeout=300)
    assert again.returncode == 0, again.stdout[-2000:]
    assert len(read_jsonl(roomy / "items.jsonl")) == 1500 and summary_of(roomy)["complete"] is True


def test_sigterm_ends_the_run_like_ctrl_c_with_an_incomplete_summary(project):
    slow = project / "slow.yaml"
    slow.write_text("family: mock\ndelay_ms: 400\n")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_items.py",
                             "--dataset", str(SMOKE_JSONL), "--model", str(slow), "--results-dir", str(project / "out")],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ((project / "out" / "items.jsonl").exists()
                                               and (project / "out" / "items.jsonl").read_text().count("\n") >= 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode not in (0, 1), out[-2000:]
    summary = summary_of(project / "out")
    assert summary["complete"] is False and summary["stopped"] == "stopped by SIGTERM"
    assert "INCOMPLETE" in out and "finish the run with --resume" in out
