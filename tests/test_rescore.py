"""Scores you can re-derive: ``vlm-bench rescore`` applies today's rules to a finished run's
recorded answers with no engine loaded (real ``vlm-bench`` processes here), the held-out
corpus measures the rules on responses never used to tune them, and a judge model reads
what the rules cannot, cached so a second rescore sends nothing (counted on its server)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SMOKE_JSONL, read_jsonl
from fake_openai import FakeOpenAIServer
from tests.answer_corpus.agreement import heldout_accuracy, heldout_table
from vlm_bench.scoring import SCORER_VERSION

RATE_KEYS = ("passed", "total", "scored", "unscored", "errors", "pass_rate", "ci95", "per_dataset", "per_category",
             "breakdowns", "complete")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlm_bench.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture
def finished(tmp_path):
    """A finished run with answers in the styles the rules read: a mock model answering
    the smoke set."""
    model = tmp_path / "talky.yaml"
    model.write_text("family: mock\nresponses:\n"
                     "  colour_count: \"I see 2 at first and 3 later, so 3 in total.\"\n"
                     "  square_colour_mc: \"Let me look... The answer is (A).\"\n")
    run = tmp_path / "run"
    done = cli("run", "--dataset", "smoke", "--model", str(model), "--results-dir", str(run), "-q")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return run


def test_a_rescore_with_unchanged_rules_reproduces_the_summary(finished):
    done = cli("rescore", str(finished))
    assert done.returncode == 0, done.stderr
    out = finished.with_name("run-rescored")
    assert "0 verdict(s) flipped" in done.stdout and str(out / "items.jsonl") in done.stdout
    before, after = summary(finished), summary(out)
    assert {k: before[k] for k in RATE_KEYS} == {k: after[k] for k in RATE_KEYS}
    assert after["manifest"]["rescore"]["scorer_version"] == SCORER_VERSION and after["manifest"]["rescore"]["from"] == str(finished)
    records = read_jsonl(out / "items.jsonl")
    assert all(r["scorer_version"] == SCORER_VERSION for r in records if r["answer"] is not None)
    compared = cli("compare", str(finished), str(out))  # a rescored run reads like any run
    assert compared.returncode == 0 and "items in both: 9" in compared.stdout
    assert "flips: 0 passed in A and failed in B, 0 failed in A and passed in B" in compared.stdout
    again = cli("rescore", str(finished))  # never over an earlier rescore without being told
    assert again.returncode == 1 and "already holds results" in again.stderr
    assert cli("rescore", str(finished), "--out", str(finished)).returncode == 1


def test_a_rule_change_is_reported_as_flips(finished, tmp_path):
    """Records as the earlier rules scored them (scorer_version 2026.11 read the first
    count of "2 at first and 3 later, so 3 in total"): today's rules flip that item."""
    items = finished / "items.jsonl"
    records = read_jsonl(items)
    for r in records:
        if r["id"] == "colour_count":
            r.update(passed=False, score=0.0, extracted="2.0", scorer_version="2026.11")
    items.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = cli("rescore", str(finished), "--out", str(tmp_path / "new"))
    assert done.returncode == 0, done.stderr
    assert "1 verdict(s) flipped" in done.stdout
    assert "smoke/colour_count: failed -> passed (read '2.0' -> '3.0')" in done.stdout


def test_a_run_recorded_before_raw_responses_says_it_cannot_be_rescored(finished):
    items = finished / "items.jsonl"
    records = read_jsonl(items)
    items.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "raw_response"}) + "\n" for r in records))
    done = cli("rescore", str(finished))
    assert done.returncode == 1
    assert "have no raw_response (recorded before vlm-bench kept each model's raw answer)" in done.stderr


def test_the_held_out_corpus_meets_the_goals_and_the_docs_say_so():
    """tests/answer_corpus/heldout.jsonl was written before the rules it measures changed
    and is never used to tune them (docs/scoring.md)."""
    accuracy = heldout_accuracy()
    assert accuracy["yesno"][0] / accuracy["yesno"][1] >= 0.90
    assert accuracy["numeric"][0] / accuracy["numeric"][1] >= 0.90
    assert accuracy["mc"][0] / accuracy["mc"][1] >= 0.97
    docs = (REPO / "docs" / "scoring.md").read_text(encoding="utf-8")
    assert heldout_table() in docs, "regenerate with: python tests/answer_corpus/agreement.py"


def test_a_judge_on_a_served_run_is_cached_attributed_and_never_asked_twice(tiny_server, tmp_path):
    """The tiny model behind `transformers serve` answers noise the rules cannot read; a
    mock judge (a loopback server counting its requests) reads it; a second rescore sends
    no request."""
    pytest.importorskip("fastapi")
    run = tmp_path / "served"
    done = cli("run", "--backend", "openai", "--model", "tiny-internvl3", "--dataset", str(SMOKE_JSONL),
               "--base-url", tiny_server.url, "--results-dir", str(run), "--min-pass-rate", "0", "-q")
    assert done.returncode == 0, done.stdout[-2000:]
    unread = [r for r in read_jsonl(run / "items.jsonl") if r["extracted"] is None and r["scorer"] in ("mc", "yesno", "numeric")]
    assert unread  # noise: the rules read nothing from these
    cache = tmp_path / "judge-cache"
    with FakeOpenAIServer(models=("judge-model",)) as judge:
        judge.answer = lambda body: "B" if "Options:" in body["messages"][-1]["content"] else "unknown"
        args = ["--judge-model", "judge-model", "--judge-base-url", judge.url, "--judge-cache", str(cache)]
        first = cli("rescore", str(run), "--out", str(tmp_path / "first"), *args)
        assert first.returncode == 0, first.stderr
        asked = len(judge.requests)
        assert asked == len(unread)
        second = cli("rescore", str(run), "--out", str(tmp_path / "second"), *args)
        assert second.returncode == 0, second.stderr
        assert len(judge.requests) == asked, "a second rescore asked the judge again"
    assert f"{len(unread)} from its cache" in second.stdout
    judged = [r for r in read_jsonl(tmp_path / "first" / "items.jsonl") if r.get("judge")]
    assert len(judged) == len(unread)
    for r in judged:
        assert r["judge"]["model"] == f"judge-model @ {judge.url}" and len(r["judge"]["prompt_sha256"]) == 64
        assert r["judge"]["status"] in ("ok", "none") and r["judge"]["reply"] in ("B", "unknown")
        if r["scorer"] == "mc":
            assert r["extracted"] == "B" and r["passed"] == (r["answer"].strip("() .") == "B")
    assert read_jsonl(tmp_path / "first" / "items.jsonl") == read_jsonl(tmp_path / "second" / "items.jsonl")
    assert summary(tmp_path / "first")["judged"] == summary(tmp_path / "second")["judged"]


def test_a_judge_that_fails_is_an_outcome_never_a_pass(finished, tmp_path):
    items = finished / "items.jsonl"
    records = read_jsonl(items)
    for r in records:
        if r["scorer"] == "mc":
            r["prediction"] = r["raw_response"] = "Hmm, the colours look similar to me."
    items.write_text("".join(json.dumps(r) + "\n" for r in records))
    dead = "http://127.0.0.1:9/v1"
    done = cli("rescore", str(finished), "--out", str(tmp_path / "out"), "--judge-model", "m", "--judge-base-url", dead,
               "--judge-cache", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    failed = [r for r in read_jsonl(tmp_path / "out" / "items.jsonl") if (r.get("judge") or {}).get("status") == "failed"]
    assert failed and all(r["passed"] is False and "Connection" in r["judge"]["error"] for r in failed)
    assert summary(tmp_path / "out")["judged"] == {"failed": len(failed)}
