"""Every item gets exactly one record and every session that claimed its results folder
writes a summary: exceptions anywhere in the item pipeline, an evaluator that cannot be
built, empty selections, and runs stopped early (-x, --maxfail, Ctrl-C)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import QUIET, SMOKE_JSONL, read_jsonl, run_items
from vlm_bench.scheduling import in_shard

SMOKE_IDS = [json.loads(line)["id"] for line in SMOKE_JSONL.read_text().splitlines()]
VLM_BENCH = str(Path(sys.executable).with_name("vlm-bench"))


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# ---------------------------------------------------------------- exceptions become records


def test_a_scorer_that_raises_gives_its_item_an_error_record(suite, monkeypatch):
    import vlm_bench.scoring as scoring

    original = scoring.score_prediction

    def scorer(name, prediction, answer, *args, **kwargs):
        if answer == "right":  # square_direction's answer
            raise ZeroDivisionError("the scorer divided by zero")
        return original(name, prediction, answer, *args, **kwargs)

    monkeypatch.setattr(scoring, "score_prediction", scorer)
    out = suite.path / "o"
    run_items(suite, "--results-dir", str(out)).assert_outcomes(passed=len(SMOKE_IDS) - 1, failed=1)
    records = {r["id"]: r for r in read_jsonl(out / "items.jsonl")}
    assert sorted(records) == sorted(SMOKE_IDS)
    assert records["square_direction"]["error"] == (
        "scorer error on item 'square_direction': ZeroDivisionError: the scorer divided by zero"
    )
    assert records["square_direction"]["prediction"] == "right" and records["square_direction"]["passed"] is False
    assert summary_of(out)["errors"] == 1


def test_prompt_and_record_building_errors_become_records(suite, monkeypatch):
    from vlm_bench.registry.model_adapters.base import ModelAdapter
    import vlm_bench.evaluate as evaluate

    build = ModelAdapter.build_prompt
    monkeypatch.setattr(ModelAdapter, "build_prompt", lambda self, sample, *a: 1 / 0 if sample.id == "dots_image" else build(self, sample, *a))
    real_record = evaluate.item_record

    def record(run, sample, media, gen, decode, error, *rest):
        if sample.id == "colour_count" and gen is not None:
            raise KeyError("meta")
        return real_record(run, sample, media, gen, decode, error, *rest)

    monkeypatch.setattr(evaluate, "item_record", record)
    out = suite.path / "o"
    run_items(suite, "--results-dir", str(out)).assert_outcomes(passed=len(SMOKE_IDS) - 2, failed=2)
    errors = {r["id"]: r["error"] for r in read_jsonl(out / "items.jsonl")}
    assert len(errors) == len(SMOKE_IDS)
    assert errors["dots_image"] == "prompt error on item 'dots_image': ZeroDivisionError: division by zero"
    assert errors["colour_count"] == "record error on item 'colour_count': KeyError: 'meta'"


def test_an_evaluator_that_cannot_be_built_still_leaves_records_and_a_summary(suite, monkeypatch):
    import vlm_bench.evaluate as evaluate  # the plugin imports it when a session starts evaluating

    def broken(*args, **kwargs):
        raise PermissionError("cannot create /cache/frames")

    monkeypatch.setattr(evaluate, "Evaluator", broken)
    out = suite.path / "o"
    result = run_items(suite, "--results-dir", str(out))
    result.assert_outcomes(failed=len(SMOKE_IDS))
    assert result.stdout.str().count("Traceback") == 0
    records = read_jsonl(out / "items.jsonl")
    assert sorted(r["id"] for r in records) == sorted(SMOKE_IDS)
    message = "vlm-bench could not set up the evaluation: PermissionError: cannot create /cache/frames"
    assert all(r["error"] == message for r in records)
    summary = summary_of(out)
    assert summary["total"] == len(SMOKE_IDS) and summary["errors"] == len(SMOKE_IDS) and summary["engine_error"] == message
    result.stdout.fnmatch_lines([f"*the engine did not load: {message}"])


def test_a_frame_cache_that_fails_is_every_items_error(suite, monkeypatch):
    import vlm_bench.evaluate as evaluate

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(evaluate, "FrameCache", broken)
    out = suite.path / "o"
    run_items(suite, "--results-dir", str(out), "--frame-cache", str(suite.path / "cache")).assert_outcomes(failed=len(SMOKE_IDS))
    records = read_jsonl(out / "items.jsonl")
    assert len(records) == len(SMOKE_IDS) and all("No space left on device" in r["error"] for r in records)
    assert "frame cache" in summary_of(out)["engine_error"]


def test_a_test_failing_before_it_evaluates_still_records_its_item(suite):
    suite.makepyfile(test_run_items="""
import pytest

@pytest.fixture
def broken_fixture(vlm_item):
    if vlm_item.id == "dots_image":
        raise RuntimeError("fixture exploded")

def test_video_qa(vlm_item, vlm_evaluate, broken_fixture):
    record = vlm_evaluate(vlm_item)
    assert record.passed
""")
    out = suite.path / "o"
    run_items(suite, "--results-dir", str(out)).assert_outcomes(passed=len(SMOKE_IDS) - 1, errors=1)
    records = {r["id"]: r for r in read_jsonl(out / "items.jsonl")}
    assert sorted(records) == sorted(SMOKE_IDS)
    assert records["dots_image"]["error"].startswith("the test failed in setup before evaluating the item")
    assert "fixture exploded" in records["dots_image"]["error"]
    assert summary_of(out)["complete"] is True


# ---------------------------------------------------------------- empty selections


def first_empty_shard(count: int) -> int | None:
    uids = [f"smoke/{i}" for i in SMOKE_IDS]
    return next((i for i in range(count) if not any(in_shard(u, (i, count)) for u in uids)), None)


@pytest.mark.parametrize("case", ["empty_file", "blank_lines", "categories", "shard"])
def test_an_empty_selection_ends_cleanly_with_an_empty_run(suite, tmp_path, case):
    dataset, extra = SMOKE_JSONL, []
    if case == "empty_file":
        dataset = tmp_path / "empty.jsonl"
        dataset.write_text("")
        message = f"dataset 'empty' holds no items ({dataset})"
    elif case == "blank_lines":
        dataset = tmp_path / "blank.jsonl"
        dataset.write_text("\n  \n\n")
        message = "dataset 'blank' holds no items"
    elif case == "categories":
        extra = ["--categories", "nothing_like_this"]
        message = f"--categories nothing_like_this matched none of the {len(SMOKE_IDS)} items of dataset 'smoke' (its categories: appearance"
    else:
        shard = first_empty_shard(40)
        extra = ["--shard", f"{shard}/40"]
        message = f"shard {shard}/40 holds none of the {len(SMOKE_IDS)} items of dataset 'smoke'"
    out = tmp_path / "o"
    result = run_items(suite, "--results-dir", str(out), *extra, dataset=dataset)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([f"no items selected: {message}*"])
    assert (out / "items.jsonl").read_text() == ""
    summary = summary_of(out)
    assert summary["total"] == 0 and summary["complete"] is True and message in summary["note"]
    assert json.loads((out / "run.json").read_text())["fingerprint"]


def test_all_shards_of_a_plan_with_empty_ones_merge(suite, tmp_path):
    count = 5
    assert first_empty_shard(count) is not None
    for i in range(count):
        assert run_items(suite, "--shard", f"{i}/{count}", "--results-dir", str(tmp_path / f"s{i}")).ret == 0
    merged = subprocess.run([VLM_BENCH, "merge", *(str(tmp_path / f"s{i}") for i in range(count)), "--out", str(tmp_path / "all")],
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stderr
    summary = summary_of(tmp_path / "all")
    assert summary["total"] == len(SMOKE_IDS) and summary["complete"] is True


# ---------------------------------------------------------------- runs that stop early


def failing_model(suite, ids=("dots_sequence",)) -> str:
    path = suite.path / "failing.yaml"
    path.write_text("family: mock\nresponses: " + json.dumps({i: "wrong" for i in ids}) + "\n")
    return str(path)


@pytest.mark.parametrize("stop", [["-x"], ["--maxfail", "1"]])
def test_a_run_stopped_early_is_incomplete_and_never_passes_the_threshold(suite, stop):
    out = suite.path / "o"
    result = run_items(suite, "--model", failing_model(suite), "--min-pass-rate", "0.5", "--results-dir", str(out), *stop)
    assert result.ret != pytest.ExitCode.OK
    summary = summary_of(out)
    ran = SMOKE_IDS.index("dots_sequence") + 1
    assert summary["total"] == ran and summary["complete"] is False
    assert summary["items_expected"] == len(SMOKE_IDS) and summary["items_not_run"] == len(SMOKE_IDS) - ran
    assert summary["pass_rate"] >= 0.5  # the rate alone would meet the threshold
    result.stdout.fnmatch_lines([
        "min pass rate 50.0%: FAILED (run incomplete*",
        f"INCOMPLETE: {ran} of {len(SMOKE_IDS)} items ran (stopping after 1 failures); finish the run with --resume",
    ])


STUCK_AT_THIRD = """
import pathlib, time

started = []

def test_video_qa(vlm_item, vlm_evaluate):
    started.append(vlm_item.id)
    if len(started) == 3:  # two items done: wait here for the Ctrl-C
        pathlib.Path("stuck").touch()
        while True:
            time.sleep(0.05)
    assert vlm_evaluate(vlm_item).passed
"""


def test_ctrl_c_leaves_an_incomplete_summary_and_a_failing_exit(tmp_path):
    (tmp_path / "test_run_items.py").write_text(STUCK_AT_THIRD)
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "pytest", *QUIET[:2], "test_run_items.py", "--dataset", str(SMOKE_JSONL),
           "--results-dir", str(out), "--min-pass-rate", "0.5"]
    # A suite started in the background (`pytest &`) inherits SIGINT ignored, and so would
    # the child: give it the default back, so Ctrl-C reaches it as it would a user's run.
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (tmp_path / "stuck").exists() and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)
        stdout, _ = proc.communicate(timeout=120)
    finally:  # no test leaves a process behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED
    summary = summary_of(out)
    assert summary["complete"] is False and summary["stopped"] and summary["total"] == 2
    assert summary["pass_rate"] == 1.0  # every finished item passed, and still no pass
    assert f"INCOMPLETE: 2 of {len(SMOKE_IDS)} items ran" in stdout
