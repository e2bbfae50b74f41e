"""Every record shows what was asked: the exact text sent with the frames (after the
template and the subtitles), the raw response and what the scorer read from it; records
stay byte-identical across runs apart from the timing field."""

import json
import re

import pytest

from conftest import EVAL_TEST, FIXTURES, untimed_line
from vlm_bench.config import resolve_dataset
from vlm_bench.datasets import load_samples

pytest.importorskip("pandas")
# Read the Parquet once here: pyarrow registers pandas' extension types on first use and
# refuses a second registration, which an in-process pytester run would otherwise cause.
load_samples(resolve_dataset("videomme", FIXTURES / "benchmarks" / "videomme"))


def test_prompt_raw_response_and_extracted_in_every_record(pytester):
    model = pytester.path / "talky.yaml"
    model.write_text("family: mock\nresponses: " + json.dumps({"001-1": "  The answer is A.\nIt is the museum.  "}) + "\n")
    pytester.makepyfile(test_items=EVAL_TEST)
    lines = []
    for name in ("r1", "r2"):
        pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "--dataset", "videomme_subtitles", "--dataset-root", str(FIXTURES / "benchmarks" / "videomme"),
            "--model", str(model), "--results-dir", str(pytester.path / name), "--max-frames", "4",
        ).assert_outcomes(passed=5)
        lines.append([untimed_line(line) for line in (pytester.path / name / "items.jsonl").read_text().splitlines()])
    assert lines[0] == lines[1]  # byte-identical apart from the timing fields' values
    records = {r["id"]: r for r in map(json.loads, lines[0])}
    first = records["001-1"]
    assert first["prompt"].startswith("This video's subtitles are listed below:\nWelcome to the museum.")
    assert "Fixture question 1 about the video?\nA. first 0\nB. second 0" in first["prompt"]
    assert first["prompt"].endswith("Answer with the option's letter from the given choices directly.")
    assert first["raw_response"] == "  The answer is A.\nIt is the museum.  "
    assert first["prediction"] == first["raw_response"] and first["extracted"] == "A" and first["passed"]
    other = records["003-2"]  # no subtitle file for this video: the plain template
    assert other["prompt"].startswith("Select the best answer") and other["extracted"] == other["answer"]
    assert all(r["prompt"] and r["raw_response"] is not None for r in records.values())
