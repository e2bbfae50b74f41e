"""The pytest plugin, driven through pytester. The test directory pytester makes has no
conftest: the plugin arrives through the pytest11 entry point, as in a user's checkout."""

import json

import pytest

from conftest import EVAL_TEST, SMOKE_JSONL, SQUARE_MP4, read_jsonl, untimed_line, without_timing
from vlm_bench.runners.mock_backend import MockEngine


RECORD_FIELDS = {
    "id", "dataset", "model", "backend", "quant", "category", "question", "answer", "prediction",
    "scorer", "score", "passed", "latency_ms", "truncated", "tokens", "error", "video", "decode",
    "categories", "cluster", "media", "meta", "prompt", "raw_response", "extracted", "missing_media", "timing", "warnings",
    "options", "scorer_args", "scorer_version", "judge", "preset", "context",
}
VIDEO_FIELDS = {"selected_indices", "num_frames_total", "strategy", "fps_used", "reader", "reader_version", "video_fps"}


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_items_in_suite=EVAL_TEST)
    return pytester


def run(suite, *args):
    return suite.runpytest_inprocess("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", *args)


def mock_yaml(suite, responses: dict, name="scripted.yaml"):
    path = suite.path / name
    path.write_text("family: mock\nresponses: " + json.dumps(responses) + "\n")
    return str(path)


@pytest.mark.smoke
def test_items_become_tests_with_full_records(suite):
    out = suite.path / "out"
    result = run(suite, "--dataset", str(SMOKE_JSONL), "--results-dir", str(out), "-v")
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["*test_video_qa[[]square_direction[]] PASSED*", "*test_video_qa[[]dots_image[]] PASSED*"])
    records = read_jsonl(out / "items.jsonl")
    assert [r["id"] for r in records] == [json.loads(line)["id"] for line in SMOKE_JSONL.read_text().splitlines()]
    for r in records:
        assert set(r) == RECORD_FIELDS
        assert set(r["video"]) == VIDEO_FIELDS
        assert set(r["decode"]) == {"temperature", "max_new_tokens", "stop"}
        assert r["model"] == "mock" and r["backend"] == "mock" and r["passed"] is True
        assert isinstance(r["latency_ms"], float)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass_rate"] == 1.0 and summary["total"] == 9
    manifest = summary["manifest"]
    assert manifest["seed"] == 0 and manifest["config"]["backend"] == "mock"
    assert manifest["versions"]["vlm-bench"] == "0.1.0" and manifest["versions"]["numpy"]
    assert manifest["config"]["datasets"][0]["sha256"]
    assert "git" in manifest


def test_summary_pass_rate_is_share_of_passed_tests(suite):
    out = suite.path / "out"
    model = mock_yaml(suite, {"square_direction": "left", "colour_last": "I think (A)", "dots_image": "2 dots"})
    result = run(suite, "--dataset", str(SMOKE_JSONL), "--model", model, "--results-dir", str(out))
    outcomes = result.parseoutcomes()
    assert outcomes == {"passed": 7, "failed": 2}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass_rate"] == round(outcomes["passed"] / (outcomes["passed"] + outcomes["failed"]), 6)
    assert summary["per_category"]["motion"]["pass_rate"] == 0.0
    assert summary["per_category"]["image"]["pass_rate"] == 1.0
    result.stdout.fnmatch_lines([
        "square_direction: scorer normalized gave 0.0 for prediction 'left' (answer 'right')",
        "*vlm-bench: scripted on mock (quant none)*",
        "overall * 7 * 9 * 77.8% * 0 * 0",
        "category temporal * 1 * 2 * 50.0%*",
    ])


def test_a_malformed_line_stops_the_session_with_file_and_line(suite, write_jsonl):
    path = write_jsonl([{"id": "a", "video": "a.mp4", "question": "q", "answer": "x"}, '{"id": "b", "question": 1}'])
    result = run(suite, "--dataset", str(path), "--results-dir", str(suite.path / "out"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*vlm-bench: {path}:2: missing 'answer'*"])
    assert not (suite.path / "out").exists()


def test_missing_media_fails_only_that_item(suite, write_jsonl):
    path = write_jsonl([
        {"id": "gone", "video": "missing.mp4", "question": "q", "answer": "x"},
        {"id": "here", "video": str(SQUARE_MP4), "question": "q", "answer": "x"},
    ])
    out = suite.path / "out"
    result = run(suite, "--dataset", str(path), "--results-dir", str(out))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["gone: video file not found: '*missing.mp4' (item 'gone', *data.jsonl:1); fix the path*"])
    gone, here = read_jsonl(out / "items.jsonl")
    assert "video file not found" in gone["error"] and gone["passed"] is False and gone["video"] is None
    assert here["passed"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-frames", "0"], "argument --max-frames: expected a whole number from 1 to 1024, got '0'"),
        (["--max-frames", "many"], "argument --max-frames: expected a whole number from 1 to 1024"),
        (["--backend", "onnx"], "argument --backend: invalid choice: 'onnx'"),
        (["--quant", "int3"], "argument --quant: invalid choice: 'int3'"),
        (["--frame-strategy", "random"], "argument --frame-strategy: invalid choice"),
        (["--fps", "-1"], "argument --fps: expected a finite number > 0"),
        (["--min-pass-rate", "80"], "argument --min-pass-rate: expected a rate between 0 and 1"),
        (["--seed", "x"], "argument --seed: expected a whole number"),
        (["--model", "internvl9_7b"], "vlm-bench: unknown model 'internvl9_7b'"),
        (["--dataset", "nope.jsonl"], "vlm-bench: dataset file not found: nope.jsonl"),
        (["--backend", "native", "--model", "mock"], "runs only with --backend=mock"),
        (["--frame-strategy", "stride"], "strategy 'stride' needs a stride"),
    ],
)
def test_bad_values_are_usage_errors(suite, args, message):
    result = run(suite, "--dataset", str(SMOKE_JSONL), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_min_pass_rate_fails_the_session_below_it(suite):
    model = mock_yaml(suite, {"square_direction": "left", "colour_last": "A", "dots_image": "7"})
    result = run(suite, "--dataset", str(SMOKE_JSONL), "--model", model, "--min-pass-rate", "0.8",
                 "--results-dir", str(suite.path / "a"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["min pass rate 80.0%: FAILED (overall 66.7%)"])
    assert json.loads((suite.path / "a" / "summary.json").read_text())["below_min_pass_rate"] is True


def test_min_pass_rate_met_passes_despite_failed_items(suite):
    model = mock_yaml(suite, {"square_direction": "left"})
    result = run(suite, "--dataset", str(SMOKE_JSONL), "--model", model, "--min-pass-rate", "0.8",
                 "--results-dir", str(suite.path / "b"))
    result.assert_outcomes(passed=8, failed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["min pass rate 80.0%: met (overall 88.9%)"])


def test_min_pass_rate_does_not_hide_other_failures(suite):
    suite.makepyfile(test_other="def test_broken():\n    assert False\n")
    result = run(suite, "--dataset", str(SMOKE_JSONL), "--min-pass-rate", "0.5", "--results-dir", str(suite.path / "c"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_results_dir_is_not_overwritten_silently(suite):
    out = suite.path / "out"
    run(suite, "--dataset", str(SMOKE_JSONL), "--results-dir", str(out)).assert_outcomes(passed=9)
    again = run(suite, "--dataset", str(SMOKE_JSONL), "--results-dir", str(out))
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    assert "already holds results" in again.stderr.str()
    assert len(read_jsonl(out / "items.jsonl")) == 9
    run(suite, "--dataset", str(SMOKE_JSONL), "--results-dir", str(out), "--overwrite").assert_outcomes(passed=9)
    assert len(read_jsonl(out / "items.jsonl")) == 9


def test_one_engine_load_for_all_items(suite):
    before = MockEngine.loads
    run(suite, "--dataset", str(SMOKE_JSONL), "--results-dir", str(suite.path / "o")).assert_outcomes(passed=9)
    assert MockEngine.loads - before == 1


@pytest.mark.smoke
def test_smoke_marker_selects_mock_items(suite):
    result = run(suite, "--dataset", str(SMOKE_JSONL), "-m", "smoke", "--results-dir", str(suite.path / "o"))
    result.assert_outcomes(passed=9)
    result = run(suite, "--dataset", str(SMOKE_JSONL), "-m", "not smoke", "--results-dir", str(suite.path / "p"))
    result.assert_outcomes(deselected=1)  # -m drops the whole function: one stand-in item is collected, not nine


def test_same_seed_gives_identical_items_apart_from_timing(suite):
    def strip(path):
        return [without_timing(r) for r in read_jsonl(path)]

    for name in ("r1", "r2"):
        run(suite, "--dataset", str(SMOKE_JSONL), "--seed", "7", "--results-dir", str(suite.path / name))
    assert strip(suite.path / "r1" / "items.jsonl") == strip(suite.path / "r2" / "items.jsonl")
    one = [untimed_line(line) for line in (suite.path / "r1" / "items.jsonl").read_text().splitlines()]
    two = [untimed_line(line) for line in (suite.path / "r2" / "items.jsonl").read_text().splitlines()]
    assert one == two  # byte-identical apart from the timing fields' values


def test_several_datasets_prefix_ids(suite, write_jsonl):
    other = write_jsonl([{"id": "square_direction", "video": str(SQUARE_MP4), "question": "q", "answer": "x"}], "other.jsonl")
    result = run(suite, "--dataset", str(SMOKE_JSONL), "--dataset", str(other), "--results-dir", str(suite.path / "o"), "-v")
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(["*[[]smoke/square_direction[]]*", "*[[]other/square_direction[]]*"])
    summary = json.loads((suite.path / "o" / "summary.json").read_text())
    assert set(summary["per_dataset"]) == {"smoke", "other"}


def test_no_dataset_is_a_collection_error(suite):
    result = run(suite)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*vlm-bench: no dataset; pass --dataset*"])


def test_engine_load_failure_fails_every_item_not_collection(suite, monkeypatch):
    def fail(self):
        raise RuntimeError("VLMEvalKit not installed")

    monkeypatch.setattr(MockEngine, "load", fail)
    out = suite.path / "o"
    result = run(suite, "--dataset", str(SMOKE_JSONL), "--results-dir", str(out))
    result.assert_outcomes(failed=9)
    assert all("VLMEvalKit not installed" in r["error"] for r in read_jsonl(out / "items.jsonl"))


def test_gpu_marker_skips_with_a_reason(suite, monkeypatch):
    import vlm_bench.pytest_plugin as plugin

    monkeypatch.setattr(plugin, "gpu_unavailable_reason", lambda: "needs a CUDA GPU: none is visible to torch")
    suite.makepyfile(test_gpu_marker_probe="import pytest\n@pytest.mark.gpu\ndef test_on_gpu():\n    assert False\n")
    result = run(suite, "test_gpu_marker_probe.py", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs a CUDA GPU: none is visible to torch*"])


def test_plugin_is_inert_without_vlm_items(suite):
    suite.makepyfile(test_plain="def test_ok():\n    assert 1\n")
    result = run(suite, "test_plain.py")
    result.assert_outcomes(passed=1)
    assert "vlm-bench:" not in result.stdout.str()
