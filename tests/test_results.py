import json

import pytest

from vlm_bench.results import ResultsWriter, format_table, read_records, record_line, summarize, write_json_atomic
from vlm_bench.scoring import clustered_ci


def rec(i, passed=True, dataset="d", category="c", error=None, truncated=False, latency=1.0):
    return {"id": str(i), "dataset": dataset, "category": category, "passed": passed,
            "error": error, "truncated": truncated, "latency_ms": latency}


def test_writer_appends_and_flushes_each_record(tmp_path):
    writer = ResultsWriter(tmp_path / "out")
    writer.write(rec(1))
    # readable by another reader before close: the line is flushed
    assert read_records(tmp_path / "out" / "items.jsonl") == [rec(1)]
    writer.write(rec(2))
    assert len(read_records(writer.path)) == 2
    writer.close()
    writer2 = ResultsWriter(tmp_path / "out")
    writer2.write(rec(3))
    writer2.close()
    assert [r["id"] for r in read_records(writer.path)] == ["1", "2", "3"]


def test_partial_last_line_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(record_line(rec(1)) + record_line(rec(2))[:20])
    with pytest.warns(UserWarning, match="partial last line"):
        assert [r["id"] for r in read_records(path)] == ["1"]
    path.write_text(record_line(rec(1))[:20] + "\n" + record_line(rec(2)))
    with pytest.raises(ValueError, match="items.jsonl:1: not a JSON record"):
        read_records(path)


def test_record_line_is_stable():
    assert record_line({"b": 1, "a": "é"}) == '{"b": 1, "a": "é"}\n'


def test_summarize_counts_and_rates():
    records = [
        rec(1), rec(2, passed=False), rec(3, error="boom", passed=False),
        rec(4, dataset="e", category=None, truncated=True), rec(5, category="k"),
    ]
    s = summarize(records, min_pass_rate=0.7)
    assert (s["passed"], s["total"], s["errors"], s["truncated"]) == (3, 5, 1, 1)
    assert s["pass_rate"] == 0.6 and s["below_min_pass_rate"]
    assert s["per_dataset"]["d"]["pass_rate"] == 0.5 and s["per_dataset"]["e"]["pass_rate"] == 1.0
    c = s["per_category"]["c"]
    assert (c["passed"], c["total"], c["errors"], c["pass_rate"]) == (1, 3, 1, 0.333333)
    assert set(s["per_category"]) == {"c", "k"}
    assert s["latency_ms"]["max"] == 1.0
    assert not summarize(records, min_pass_rate=0.6)["below_min_pass_rate"]


def test_unscored_items_are_left_out_of_the_rate():
    s = summarize([rec(1), rec(2, passed=False), rec(3, passed=None), rec(4, passed=None, error="x")])
    # the errored item counts as a failure; the cleanly unscored one is left out
    assert (s["total"], s["scored"], s["unscored"], s["passed"]) == (4, 3, 1, 1)
    assert s["pass_rate"] == 0.333333


def test_clustered_interval_is_wider_when_questions_share_a_video():
    independent = [(f"v{i}", float(i % 2)) for i in range(40)]
    # the same 0/1 outcomes, but each video's four questions agree with each other
    shared = [(f"v{i // 4}", float((i // 4) % 2)) for i in range(40)]
    lo_i, hi_i = clustered_ci(independent)
    lo_s, hi_s = clustered_ci(shared)
    assert lo_i < 0.5 < hi_i and lo_s < 0.5 < hi_s
    assert (hi_s - lo_s) > 1.8 * (hi_i - lo_i)
    # independent items: the Wilson score interval with Student's t on 39 degrees of freedom
    # (the cluster-robust variance is the binomial one times G/(G-1): n_eff = 40 * 39/40)
    c, n_eff = 2.022691, 39.0
    centre = (0.5 + c * c / (2 * n_eff)) / (1 + c * c / n_eff)
    half = c / (1 + c * c / n_eff) * (0.25 / n_eff + c * c / (4 * n_eff**2)) ** 0.5
    assert abs(lo_i - (centre - half)) < 1e-5 and abs(hi_i - (centre + half)) < 1e-5
    assert clustered_ci([]) is None
    assert clustered_ci([("a", 1.0), ("a", 1.0)]) == [0.0, 1.0]  # one cluster: nothing measures the spread


def test_breakdowns_and_crosses():
    records = [
        dict(rec(1, passed=True), categories={"duration": "short", "domain": "Sports"}),
        dict(rec(2, passed=False), categories={"duration": "short", "domain": "Knowledge"}),
        dict(rec(3, passed=True), categories={"duration": "long", "domain": "Sports"}),
        dict(rec(4, passed=True), categories={"duration": "long"}),
    ]
    s = summarize(records, breakdowns=[("duration",), ("duration", "domain")])
    assert s["breakdowns"]["duration"]["short"]["pass_rate"] == 0.5
    assert s["breakdowns"]["duration"]["long"]["pass_rate"] == 1.0
    cross = s["breakdowns"]["duration x domain"]
    assert set(cross) == {"short | Sports", "short | Knowledge", "long | Sports"}
    assert cross["short | Knowledge"]["pass_rate"] == 0.0


def test_format_table():
    lines = format_table(summarize([rec(1), rec(2, passed=False)], min_pass_rate=0.9))
    assert lines[1].split()[:4] == ["overall", "1", "2", "50.0%"]
    assert lines[-1] == "min pass rate 90.0%: FAILED (overall 50.0%)"


def test_write_json_atomic(tmp_path):
    write_json_atomic(tmp_path / "s.json", {"a": 1})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
