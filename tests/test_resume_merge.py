"""Resume, merge, report and compare on damaged, partial or mismatched result folders:
a cut-off last line (even inside a UTF-8 character) is dropped with a warning
everywhere; merge checks the shard plan kept in run.json; messages, not tracebacks."""

import json
import shutil

import pytest

from conftest import SMOKE_JSONL, read_jsonl, run_items
from vlm_bench.cli import main
from vlm_bench.report import build_report
from vlm_bench.results import ResultsDirError, read_records, summarize, write_json_atomic

SMOKE_IDS = [json.loads(line)["id"] for line in SMOKE_JSONL.read_text().splitlines()]
CUT_UTF8 = '{"id": "日本'.encode()[:-1]  # a write cut inside a three-byte character


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


@pytest.fixture
def shards(suite, tmp_path):
    for i in range(2):
        run_items(suite, "--shard", f"{i}/2", "--results-dir", str(tmp_path / f"s{i}")).assert_outcomes(passed=len(read_jsonl_ids(i)))
    return [tmp_path / "s0", tmp_path / "s1"]


def read_jsonl_ids(i):
    from vlm_bench.scheduling import in_shard

    return [u for u in SMOKE_IDS if in_shard(f"smoke/{u}", (i, 2))]


# ---------------------------------------------------------------- a cut-off last line


def test_cut_utf8_last_line_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"id": "a", "dataset": "d"}\n' + CUT_UTF8)
    with pytest.warns(UserWarning, match="items.jsonl:2: dropping a partial last line"):
        assert [r["id"] for r in read_records(path)] == ["a"]
    path.write_bytes(b'{"id": "a", "dataset": "d"}\n' + CUT_UTF8 + b'\n{"id": "b", "dataset": "d"}\n')
    with pytest.raises(ResultsDirError, match="items.jsonl:2: not a JSON record; the file is damaged"):
        read_records(path)


def test_resume_report_merge_and_compare_drop_a_cut_utf8_line(suite, tmp_path, capsys):
    out = tmp_path / "o"
    run_items(suite, "--results-dir", str(out)).assert_outcomes(passed=len(SMOKE_IDS))
    with open(out / "items.jsonl", "ab") as fh:
        fh.write(CUT_UTF8)
    for command in (["report", out], ["compare", out, out], ["merge", out, "--out", tmp_path / "m"]):
        code, _, err = cli(capsys, *command)
        assert code == 0, err
        assert "vlm-bench: warning:" in err and "items.jsonl:10: dropping a partial last line" in err
    resumed = run_items(suite, "--results-dir", str(out), "--resume", "-W", "default::UserWarning")
    assert resumed.ret == 0
    resumed.stdout.fnmatch_lines(["*dropping a partial last line*", f"reused {len(SMOKE_IDS)} finished items*"])
    assert len(read_jsonl(out / "items.jsonl")) == len(SMOKE_IDS)


def test_a_damaged_middle_line_is_a_message(suite, tmp_path, capsys):
    out = tmp_path / "o"
    run_items(suite, "--results-dir", str(out)).assert_outcomes(passed=len(SMOKE_IDS))
    lines = (out / "items.jsonl").read_bytes().split(b"\n")
    lines[3] = lines[3][:20]
    (out / "items.jsonl").write_bytes(b"\n".join(lines))
    code, _, err = cli(capsys, "report", out)
    assert code == 1 and "items.jsonl:4: not a JSON record; the file is damaged (fix or delete that line)" in err
    resumed = run_items(suite, "--results-dir", str(out), "--resume")
    assert resumed.ret == pytest.ExitCode.USAGE_ERROR and "items.jsonl:4: not a JSON record" in resumed.stderr.str()


# ---------------------------------------------------------------- merge and the shard plan


def test_shard_plan_is_kept_and_a_partial_set_is_refused(shards, tmp_path, capsys):
    assert json.loads((shards[1] / "run.json").read_text())["plan"] == {"shard": [1, 2], "limit": None, "categories": []}
    code, _, err = cli(capsys, "merge", shards[0], "--out", tmp_path / "m")
    assert code == 1 and "incomplete set: shard 1/2 missing" in err and "--partial" in err
    assert not (tmp_path / "m" / "items.jsonl").exists()
    code, out, err = cli(capsys, "merge", shards[0], "--partial", "--out", tmp_path / "m")
    assert code == 0 and "INCOMPLETE: shard 1/2 missing" in err
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["complete"] is False and summary["incomplete"] == ["shard 1/2 missing"]
    build_report(tmp_path / "m")
    assert "**INCOMPLETE**: shard 1/2 missing" in (tmp_path / "m" / "report.md").read_text()


def test_the_same_folder_twice_is_refused(shards, tmp_path, capsys):
    code, _, err = cli(capsys, "merge", shards[0], shards[1], shards[0], "--out", tmp_path / "m")
    assert code == 1 and f"{shards[0]} is given twice" in err


def test_a_retried_shard_that_differs_only_in_timing_is_accepted(shards, tmp_path, capsys):
    retry = tmp_path / "s1-retry"
    shutil.copytree(shards[1], retry)
    records = read_jsonl(retry / "items.jsonl")
    (retry / "items.jsonl").write_text("".join(json.dumps(dict(r, latency_ms=r["latency_ms"] + 7.5)) + "\n" for r in records))
    code, out, err = cli(capsys, "merge", *shards, retry, "--out", tmp_path / "m")
    assert code == 0, err
    assert f"merged {len(SMOKE_IDS)} items from 3 directories" in out
    records[0]["prediction"] = "something else"
    (retry / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = cli(capsys, "merge", *shards, retry, "--out", tmp_path / "m2")
    assert code == 1 and f"item smoke/{records[0]['id']} has different results in {shards[1]} and {retry}" in err


def test_unfinished_shards_and_mixed_plans_are_refused(suite, shards, tmp_path, capsys):
    stopped = json.loads((shards[1] / "summary.json").read_text())
    write_json_atomic(shards[1] / "summary.json", dict(stopped, complete=False, items_not_run=3))
    code, _, err = cli(capsys, "merge", *shards, "--out", tmp_path / "m")
    assert code == 1 and f"{shards[1]} stopped early (3 items not run; finish it with --resume)" in err
    (shards[1] / "summary.json").unlink()
    code, _, err = cli(capsys, "merge", *shards, "--out", tmp_path / "m")
    assert code == 1 and f"{shards[1]} did not finish (no summary.json" in err
    run_items(suite, "--results-dir", str(tmp_path / "whole"))
    code, _, err = cli(capsys, "merge", shards[0], tmp_path / "whole", "--out", tmp_path / "m")
    assert code == 1 and "is a whole run, the others are shards" in err
    run_items(suite, "--shard", "1/3", "--results-dir", str(tmp_path / "third"))
    code, _, err = cli(capsys, "merge", shards[0], tmp_path / "third", "--out", tmp_path / "m")
    assert code == 1 and "shards of different plans (of 2 and 3 shards)" in err


def test_resume_with_another_shard_is_refused(shards, suite):
    again = run_items(suite, "--shard", "0/2", "--results-dir", str(shards[1]), "--resume")
    assert again.ret == pytest.ExitCode.USAGE_ERROR and "shard: 1/2 -> 0/2" in again.stderr.str()


# ---------------------------------------------------------------- messages


def test_cli_messages_instead_of_tracebacks(shards, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    no_items = tmp_path / "no_items"
    no_items.mkdir()
    (no_items / "summary.json").write_text("{}")
    cases = [
        (["report", no_items], f"cannot report on {no_items}: it holds no items.jsonl"),
        (["report", tmp_path / "nope"], "no such folder"),
        (["compare", shards[0], tmp_path / "nope"], f"cannot compare {tmp_path / 'nope'}: no such folder"),
        (["merge", *shards, "--out", tmp_path / "a_file"], f"results folder {tmp_path / 'a_file'} is a file"),
        (["merge", *shards, "--out", shards[0]], "is one of the folders to merge"),
        (["merge", tmp_path / "nope", "--out", tmp_path / "m"], "no such results folder"),
    ]
    for args, message in cases:
        code, _, err = cli(capsys, *args)
        assert code == 1 and message in err, (args, err)


def test_report_md_escapes_pipes_and_line_breaks(tmp_path):
    records = [
        {"id": "a|b\nc", "dataset": "d|1", "question": "q", "answer": "x|y", "prediction": "line one\nline | two\r\nthree",
         "passed": False, "error": None, "category": "cat|egory", "latency_ms": 1.0, "scorer": "exact"},
        {"id": "ok", "dataset": "d|1", "question": "q", "answer": "x", "prediction": "x", "passed": True, "error": None,
         "category": "plain", "latency_ms": 1.0, "scorer": "exact"},
    ]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_json_atomic(tmp_path / "summary.json", summarize(records))
    markdown, _ = build_report(tmp_path)
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = lambda line: len(line.replace("\\|", "").split("|")) - 2
    scopes = [line for line in rows if line.startswith(("| overall", "| dataset d", "| category"))]
    assert len(scopes) == 4 and all(cells(line) == 8 for line in scopes)
    assert "| category cat\\|egory |" in markdown
    failed = [line for line in rows if "a\\|b" in line]
    assert failed == ["| a\\|b c | d\\|1 | line one line \\| two three | x\\|y |  |"]
