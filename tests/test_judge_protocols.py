"""Grading generated videos end to end: rule scores beside the judge's verdicts, VMEvalKit's
own judge protocol (its request, derived here by hand from its code), the agreement table
against a labelled set, judge answers cached so a re-grade sends nothing twice (counted on
a loopback server), a real served tiny judge, and VBVR-InferKit's output tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, read_jsonl
from fake_openai import FakeOpenAIServer

QUESTIONS = FIXTURES / "benchmarks" / "vmevalkit_questions"
pytest.importorskip("av")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    from vlm_bench.generation.labelled import make_labelled_set

    root = tmp_path_factory.mktemp("labelled") / "exp"
    make_labelled_set(QUESTIONS, root, domains=("maze", "sudoku"))
    return root


def grade(root: Path, out: Path, *args: str, cache: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = None
    if cache is not None:
        import os

        env = dict(os.environ, VLM_BENCH_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "evals"), "-p", "no:cacheprovider", "-q", "--dataset", "vmevalkit_outputs",
         "--dataset-root", str(root), "--min-pass-rate", "0", "--results-dir", str(out), *args],
        cwd=out.parent, capture_output=True, text=True, timeout=timeout, env=env,
    )


def vmevalkit_system(task_type: str, guidance: str) -> str:
    """VMEvalKit (ae2e8dc) vmevalkit/eval/internvl.py, InternVLEvaluator.create_prompt: an
    f-string whose continuation lines keep the method's 16-space indentation."""
    return f"""You are evaluating video generation models.
                Compare the final frame of the generated video with the expected ground truth final frame.

                Rate solution correctness on a 1-5 scale:
                1: Completely wrong - no understanding of task
                2: Mostly incorrect - minimal progress toward solution
                3: Partially correct - about half the expected solution
                4: Mostly correct - close to expected result with minor errors
                5: Perfect - matches expected result

                {guidance}

                Respond in JSON: {{"solution_correctness_score": <1-5>, "explanation": "<brief explanation>"}}
                """


class RatingServer(FakeOpenAIServer):
    """Answers as VMEvalKit's judge is asked to, deterministically by the task: every maze
    video rated 5, every other 2."""

    def answer(self, body):
        text = json.dumps(body["messages"][-1]["content"][0])
        return '{"solution_correctness_score": %d, "explanation": "by rule"}' % (5 if "maze_task" in text else 2)


def test_vmevalkit_protocol_sends_vmevalkits_request_and_reads_its_rating(labelled, tmp_path):
    with RatingServer(models=("judge",)) as server:
        done = grade(labelled, tmp_path / "out", "--backend", "openai", "--model", "tiny_internvl3",
                     "--base-url", server.url, "--judge-protocol", "vmevalkit", "--score", "judge", cache=tmp_path / "cache")
        assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
        requests = list(server.requests)
    maze = next(r for r in requests if "maze_task" in json.dumps(r["messages"][-1]["content"][0]))
    # InternVLEvaluator.evaluate_single_async: system, then text/image x 3, then the closing text
    assert maze["messages"][0] == {"role": "system", "content": vmevalkit_system(
        "maze_task", "Verify that the final frame shows a complete path from start to end that matches the expected solution.")}
    parts = maze["messages"][1]["content"]
    prompt = (QUESTIONS / "maze_task" / "maze_0003" / "prompt.txt").read_text()
    assert [p["type"] for p in parts] == ["text", "image_url"] * 3 + ["text"]
    assert parts[0]["text"] == f"Task: maze_task\nPrompt: {prompt}\n\n1. Input image:"
    assert (parts[2]["text"], parts[4]["text"], parts[6]["text"]) == (
        "\n2. Expected final frame:", "\n3. Actual final frame from video:", "\nProvide your evaluation.")
    records = [r for r in read_jsonl(tmp_path / "out" / "items.jsonl") if r["meta"]["check"] == "rating"]
    assert records and all(r["error"] is None for r in records)
    assert {r["meta"]["domain"]: r["extracted"] for r in records} == {"maze": "5", "sudoku": "2"}
    assert all(r["passed"] == (r["meta"]["domain"] == "maze") for r in records)  # 4-5 is a pass


def test_rules_and_judge_side_by_side_with_agreement_and_no_request_twice(labelled, tmp_path):
    """Both verdicts per video, the rules-against-judge table with every disagreement, the
    agreement with the labels; grading again sends no chat request (the cache answers)."""
    with RatingServer(models=("judge",)) as server:
        first = grade(labelled, tmp_path / "one", "--backend", "openai", "--model", "tiny_internvl3", "--base-url", server.url,
                      "--judge-protocol", "vmevalkit", cache=tmp_path / "cache")
        sent = len(server.requests)
        second = grade(labelled, tmp_path / "two", "--backend", "openai", "--model", "tiny_internvl3", "--base-url", server.url,
                       "--judge-protocol", "vmevalkit", cache=tmp_path / "cache")
        assert first.returncode in (0, 1) and second.returncode in (0, 1), second.stdout[-3000:]
        assert sent == 5 * 2  # 5 generators x 2 tasks (these tasks have no ground-truth video to control with)
        assert len(server.requests) == sent  # the re-grade asked nothing
    again = read_jsonl(tmp_path / "two" / "items.jsonl")
    assert all(r["meta"].get("judge_cached") for r in again if r["meta"]["check"] == "rating")
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())["vmevalkit"]
    agreement = summary["agreement_with_labels"]
    assert agreement["rules"]["videos"] == 10 and agreement["rules"]["accuracy"] == 1.0
    # the server passes every maze video and fails every sudoku one: right on the 2 right mazes and the 3 wrong sudokus
    assert agreement["judge"]["accuracy"] == pytest.approx(0.5) and agreement["judge"]["videos"] == 10
    table = summary["rules_vs_judge"]["synthetic-static"]
    assert (table["both_fail"], table["judge_only"]) == (1, 1)
    assert any(d["video"] == "synthetic-static/maze_task/maze_0003" for d in summary["disagreements"])
    report = subprocess.run([sys.executable, "-m", "vlm_bench.cli", "report", str(tmp_path / "two")], capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    md = (tmp_path / "two" / "report.md").read_text()
    assert "rules against the judge" in md and "disagree: synthetic-static/maze_task/maze_0003: rules fail" in md
    assert "against the labelled set's truth" in md
    html = (tmp_path / "two" / "report.html").read_text()
    assert "rules against the judge" in html


def test_native_tiny_judge_runs_both_protocols_with_rules(labelled, tmp_path):
    pytest.importorskip("torch")
    for protocol in ("question", "vmevalkit"):
        out = tmp_path / protocol
        done = grade(labelled, out, "--backend", "native", "--model", "tiny_internvl3", "--judge-protocol", protocol,
                     "--max-new-tokens", "8", cache=tmp_path / "cache")
        assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
        records = read_jsonl(out / "items.jsonl")
        checks = {r["meta"]["check"] for r in records}
        assert {"rules", "goal" if protocol == "question" else "rating"} <= checks, checks
        assert all(r["error"] is None for r in records), [r["error"] for r in records if r["error"]]
        summary = json.loads((out / "summary.json").read_text())["vmevalkit"]
        assert set(summary["agreement_with_labels"]) == {"rules", "judge"}


def test_served_tiny_judge_grades_with_both_protocols(labelled, tmp_path, tiny_server):
    """VMEvalKit ran InternVL3 behind an OpenAI-compatible server; here a real one
    (transformers serve) with the tiny InternVL3 answers every rating and goal request."""
    pytest.importorskip("fastapi")
    for protocol, check, count in (("vmevalkit", "rating", 10), ("question", "goal", 10 + 2)):  # goal: + the static controls
        out = tmp_path / protocol
        done = grade(labelled, out, "--backend", "openai", "--model", "tiny-internvl3", "--base-url", tiny_server.url,
                     "--judge-protocol", protocol, "--max-new-tokens", "8", cache=tmp_path / "cache")
        assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
        judged = [r for r in read_jsonl(out / "items.jsonl") if r["meta"]["check"] == check]
        assert len(judged) == count and all(r["error"] is None and r["prediction"] is not None for r in judged)
        summary = json.loads((out / "summary.json").read_text())["vmevalkit"]
        assert set(summary["agreement_with_labels"]) == {"rules", "judge"}


def test_vbvr_inferkit_tree_is_graded_and_needs_the_questions_tree(labelled, tmp_path):
    """VBVR-InferKit's runner writes <generator>/<domain>_task/<task_id>.mp4 with no question copy."""
    tree = tmp_path / "vbvr" / "some-model" / "maze_task"
    tree.mkdir(parents=True)
    shutil.copy(labelled / "synthetic-solves" / "maze_task" / "maze_0003" / "video" / "video.mp4", tree / "maze_0003.mp4")
    missing = grade(tmp_path / "vbvr", tmp_path / "missing", "--score", "rules")
    assert missing.returncode == 4 and "--questions-root PATH" in missing.stdout + missing.stderr
    done = grade(tmp_path / "vbvr", tmp_path / "out", "--score", "rules", "--questions-root", str(QUESTIONS))
    assert done.returncode == 0, done.stdout[-3000:]
    (record,) = [r for r in read_jsonl(tmp_path / "out" / "items.jsonl") if r["meta"]["generator"] == "some-model"]
    assert record["prediction"] == "pass" and record["meta"]["rules"]["method"] == "grid"
