"""A new user's second hour (issue 28), each as they met it: the grading example on a tree
`vlm-bench generate` wrote, -m smoke with a real model, advice for missing weights, a
suite run as a background job, and the noise that buried what mattered."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SMOKE_JSONL, read_jsonl

pytest.importorskip("torch")


def run(*args: str, cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          **kwargs)


def test_grading_the_tree_generate_wrote_needs_no_questions_tree(tmp_path):
    """docs/grading.md's example: judge the videos `vlm-bench generate` wrote, with no
    questions tree beside them (each run's own question/ copy stands in)."""
    pytest.importorskip("diffusers")
    outputs = tmp_path / "outputs" / "exp1"
    made = run("vlm_bench.cli", "generate", "--generator", "tiny-ltx-video", "--dataset", "vmevalkit_fixtures",
               "--outputs-dir", str(outputs), "--results-dir", str(tmp_path / "gen"), "-q", "--limit", "2", cwd=tmp_path)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    judged = run("pytest", str(REPO / "evals"), "-p", "no:cacheprovider", "-q", "--dataset", "vmevalkit_outputs",
                 "--dataset-root", str(outputs), "--backend", "native", "--model", "tiny_internvl3",
                 "--min-pass-rate", "0", "--results-dir", str(tmp_path / "judged"), cwd=tmp_path)
    assert judged.returncode == 0, judged.stdout[-3000:] + judged.stderr[-2000:]
    assert "questions tree not found" not in judged.stdout + judged.stderr
    records = read_jsonl(tmp_path / "judged" / "items.jsonl")
    assert {r["categories"]["generator"] for r in records} >= {"tiny-ltx-video"}
    assert all(r["error"] is None for r in records)


def test_a_task_with_no_question_anywhere_names_questions_root(tmp_path):
    (tmp_path / "exp" / "some-model" / "maze_task" / "maze_0001" / "video").mkdir(parents=True)
    (tmp_path / "exp" / "some-model" / "maze_task" / "maze_0001" / "video" / "video.mp4").write_bytes(b"x")
    done = run("pytest", str(REPO / "evals"), "-p", "no:cacheprovider", "--dataset", "vmevalkit_outputs",
               "--dataset-root", str(tmp_path / "exp"), cwd=tmp_path, timeout=120)
    text = done.stdout + done.stderr
    assert done.returncode == 4 and "--questions-root PATH" in text and text.count("no question for this task") == 1


def test_smoke_with_a_real_model_runs_a_few_items(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = run("pytest", str(REPO / "evals"), "-p", "no:cacheprovider", "-m", "smoke", "--model", "tiny_internvl3",
               "--dataset", str(SMOKE_JSONL), "--min-pass-rate", "0", "--results-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert len(read_jsonl(tmp_path / "o" / "items.jsonl")) == 3
    assert "one stand-in per test function instead of its 9 items" in done.stdout


def test_missing_weights_get_download_advice_not_an_install(tmp_path, monkeypatch):
    from vlm_bench.runners import load_failure_advice

    error = ("backend 'native' failed to load model 'internvl3_8b': Hugging Face model not available: "
             "OpenGVLab/InternVL3-8B-hf (not in the local cache and huggingface.co is unreachable)")
    advice = load_failure_advice("native", error)
    assert "download the weights" in advice and "pip install" not in advice
    assert "pip install 'vlm-bench[native]'" in load_failure_advice("native", "No module named 'transformers'")


def test_the_ctrl_c_test_passes_when_the_suite_runs_in_the_background(tmp_path):
    """`pytest &` starts with SIGINT ignored; the Ctrl-C test must still end, and leave no
    process behind."""
    done = run("pytest", "-p", "no:cacheprovider", "-q", str(REPO / "tests" / "test_one_record.py"), "-k", "ctrl_c",
               cwd=REPO, timeout=240, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-2000:]


def test_help_shows_real_metavars_and_no_rst_markup():
    text = run("vlm_bench.cli", "run", "--help", cwd=REPO, timeout=60).stdout
    assert "VLM_DATASETS" not in text and not re.search(r"--[\w-]+ VLM_", text)
    assert "--dataset NAME_OR_PATH" in text and "--model NAME_OR_PATH" in text
    assert "``" not in text and ":func:" not in text


def test_models_are_listed_by_size(tmp_path):
    lines = run("vlm_bench.cli", "models", cwd=REPO, timeout=60).stdout.splitlines()[1:]
    sizes = [float(m.group(1)) for line in lines if (m := re.search(r"\s(\d+(?:\.\d+)?)\s", line)) and "internvl3_" in line
             and "shape" not in line and "tiny" not in line]
    names = [line.split()[0] for line in lines]
    assert names.index("internvl3_1b") < names.index("internvl3_2b") < names.index("internvl3_8b") \
        < names.index("internvl3_14b") < names.index("internvl3_38b") < names.index("internvl3_78b")
    assert sizes == sorted(sizes)


def test_generate_without_quantization_does_not_import_bitsandbytes(tmp_path):
    pytest.importorskip("diffusers")
    code = ("import sys, vlm_bench.cli as c\n"
            "c.main(['generate', '--generator', 'tiny-ltx-video', '--dataset', 'vmevalkit_fixtures', '--limit', '1',"
            f" '--outputs-dir', {str(tmp_path / 'out')!r}, '--results-dir', {str(tmp_path / 'res')!r}, '-q'])\n"
            "print('BNB', 'bitsandbytes' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "BNB False" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "gemm_4bit_forward" not in done.stdout + done.stderr


def test_the_judge_session_raises_no_assert_rewrite_warning(tmp_path):
    pytest.importorskip("diffusers")
    done = run("vlm_bench.cli", "generate", "--generator", "tiny-ltx-video", "--dataset", "vmevalkit_fixtures",
               "--limit", "1", "--outputs-dir", str(tmp_path / "out"), "--results-dir", str(tmp_path / "res"),
               "--judge", "mock", "--judge-backend", "mock", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stdout[-2000:]
    assert "PytestAssertRewriteWarning" not in done.stdout + done.stderr


def test_reports_of_a_generation_run_and_of_its_judging_say_what_ran(tmp_path):
    pytest.importorskip("diffusers")
    pytest.importorskip("matplotlib")
    res = tmp_path / "res"
    done = run("vlm_bench.cli", "generate", "--generator", "tiny-ltx-video", "--dataset", "vmevalkit_fixtures",
               "--limit", "2", "--outputs-dir", str(tmp_path / "out"), "--results-dir", str(res),
               "--judge", "mock", "--judge-backend", "mock", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stdout[-2000:]
    assert run("vlm_bench.cli", "report", str(res), cwd=tmp_path).returncode == 0
    markdown = (res / "report.md").read_text()
    assert markdown.startswith("# vlm-bench report: video generation by tiny-ltx-video")
    assert "? on ?" not in markdown and "quant None" not in markdown and "2 tasks: " in markdown
    assert run("vlm_bench.cli", "report", str(res / "judge"), cwd=tmp_path).returncode == 0
    judged = (res / "judge" / "report.md").read_text()
    assert "## Video-generation models, judged" in judged and "the judge said a static video reaches the goal" in judged
    assert "Video-generation models, judged" in (res / "judge" / "report.html").read_text()


def test_failed_multiple_choice_cards_show_the_options(tmp_path):
    from vlm_bench.report import build_report
    from vlm_bench.results import summarize

    record = {"id": "q1", "dataset": "d", "question": "Which way?", "answer": "B", "passed": False, "scorer": "mc",
              "prediction": "A", "error": None, "latency_ms": 1.0, "options": ["A. left", "B. right"]}
    (tmp_path / "items.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "summary.json").write_text(json.dumps(summarize([record])))
    _, page = build_report(tmp_path)
    assert "options:\nA. left\nB. right" in page


def test_terminal_and_report_say_the_same_of_a_one_item_category(tmp_path):
    from vlm_bench.report import build_report
    from vlm_bench.results import format_table, summarize

    records = [{"id": f"i{k}", "dataset": "d", "category": "lone" if k == 0 else "pair", "passed": True, "error": None,
                "answer": "a", "scorer": "exact", "latency_ms": 1.0, "cluster": f"v{k}"} for k in range(3)]
    summary = summarize(records)
    lone = next(line for line in format_table(summary) if line.startswith("category lone"))
    assert "too few items" in lone and "0.0-100.0" not in lone
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    markdown, _ = build_report(tmp_path)
    assert "| category lone |" in markdown and "too few items" in markdown.split("| category lone |")[1].split("\n")[0]
