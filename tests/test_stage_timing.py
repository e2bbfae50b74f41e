"""Where an item's time goes: every record times its stages, the summary gives their
medians, the manifest names the hardware, and the report shows both beside the latency.
On the CPU here; the GPU figures come from tests/benchmarks/gpu_speed.py on a GPU."""

import json

import pytest

from conftest import EVAL_TEST, SMOKE_JSONL, read_jsonl
from vlm_bench.report import build_report
from vlm_bench.results.manifest import hardware_line, parse_gpu_rows, visible_gpus
from vlm_bench.types import STAGES


def run(pytester, *args):
    pytester.makepyfile(test_items=EVAL_TEST)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                                        "--dataset", str(SMOKE_JSONL), *args)


def test_mock_records_time_their_stages_and_the_summary_gives_medians(pytester):
    out = pytester.path / "out"
    run(pytester, "--results-dir", str(out)).assert_outcomes(passed=9)
    records = read_jsonl(out / "items.jsonl")
    for r in records:
        timing = r["timing"]
        assert {"frames_wait_ms", "frames_decode_ms", "prompt_ms", "generate_ms", "score_ms"} <= set(timing)
        assert set(timing) <= set(STAGES) | {"tokens_per_s", "batch"}
        assert all(v >= 0 for v in timing.values())
        # the wait includes the decode where it happened now (a shared or prefetched decode can be longer)
        assert timing["frames_wait_ms"] >= 0 and timing["generate_ms"] <= r["latency_ms"] + 5
    shared = [r for r in records if r["timing"]["frames_decode_ms"] == 0]
    assert shared  # two questions about one clip: the second shares the first's decode
    summary = json.loads((out / "summary.json").read_text())
    stages = summary["stages_ms"]
    assert list(stages) == [s for s in STAGES if s in stages]  # in pipeline order
    assert stages["generate_ms"] == pytest.approx(sorted(r["timing"]["generate_ms"] for r in records)[4], abs=1e-3)


def test_native_records_time_processor_prefill_and_decode(pytester):
    out = pytester.path / "out"
    run(pytester, "--model", "tiny-internvl3", "--backend", "native", "--max-new-tokens", "6", "--min-pass-rate", "0",
        "--results-dir", str(out))
    records = read_jsonl(out / "items.jsonl")
    assert records and all(r["error"] is None for r in records)
    for r in records:
        t = r["timing"]
        assert {"processor_ms", "prefill_ms", "decode_ms", "generate_ms"} <= set(t)
        assert t["processor_ms"] + t["prefill_ms"] + t["decode_ms"] <= t["generate_ms"] + 1
        if r["tokens"] > 1:
            assert t["tokens_per_s"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"processor_ms", "prefill_ms", "decode_ms", "tokens_per_s"} <= set(summary["stages_ms"])
    engine = summary["manifest"]["engine"]
    assert engine["device"] == "cpu" and engine["attn_implementation"] == "sdpa" and engine["cache"] == "dynamic"
    assert engine["quantization"] == "none" and engine["batch_size"] == 1 and engine["compile"] is False


def test_the_manifest_names_the_hardware_and_the_report_shows_it_beside_the_latency(pytester):
    out = pytester.path / "out"
    run(pytester, "--results-dir", str(out)).assert_outcomes(passed=9)
    hw = json.loads((out / "summary.json").read_text())["manifest"]["hardware"]
    assert hw["cpus"] >= 1 and 1 <= hw["cpus_available"] <= hw["cpus"] and hw["gpu_count"] == len(hw["gpus"])
    markdown, page = build_report(out)
    latency_section = markdown[markdown.index("## Where the time goes"):]
    assert f"{hw['cpus_available']} of {hw['cpus']} CPUs" in latency_section.split("\n")[2]
    assert "| waiting for frames |" in latency_section and "| item latency (p50 / p90) |" in latency_section
    assert "Where the time goes" in page and "scoring" in page


def test_gpu_rows_from_nvidia_smi_and_the_visible_ones():
    rows = parse_gpu_rows("0, NVIDIA H200, 143771, 580.95.05, 9.0\n1, NVIDIA H200, 143771, 580.95.05, 9.0\nbad line\n")
    assert [g["index"] for g in rows] == [0, 1] and rows[0]["memory_gib"] == 140.4 and rows[0]["compute_capability"] == "9.0"
    assert [g["index"] for g in visible_gpus(rows, "1")] == [1]
    assert visible_gpus(rows, "GPU-uuid") == rows and visible_gpus(rows, None) == rows
    line = hardware_line({"hardware": {"cpus": 16, "cpus_available": 16, "cpu_model": "x", "gpus": rows[:1], "cuda": "13.0"},
                          "engine": {"device": "cuda:0", "attn_implementation": "sdpa"}})
    assert line.startswith("1x NVIDIA H200 (140.4 GiB), driver 580.95.05, compute 9.0, CUDA 13.0; 16 of 16 CPUs")
    assert "device cuda:0" in line and "attn_implementation sdpa" in line
