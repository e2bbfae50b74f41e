"""Without VLMEvalKit (the core install), --backend=vlmeval fails every item with the PRD's
message at engine load, not at collection."""

import sys

import pytest

from conftest import EVAL_TEST, SMOKE_JSONL, read_jsonl
from vlm_bench.config import build_run_config, resolve_model
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.runners.vlmeval_backend import MISSING, VLMEvalKitEngine, vlmeval_model_name


@pytest.fixture
def no_vlmeval(monkeypatch):
    for name in [m for m in sys.modules if m == "vlmeval" or m.startswith("vlmeval.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "vlmeval", None)  # "import vlmeval" raises ImportError


def test_load_raises_the_install_hint(no_vlmeval):
    with pytest.raises(RuntimeError, match=r"^VLMEvalKit not installed: pip install 'vlm-bench\[vlmeval\]'$"):
        VLMEvalKitEngine(resolve_model("internvl3_38b")).load()


def test_every_item_fails_with_the_message(no_vlmeval, pytester):
    pytester.makepyfile(test_vlmeval_items=EVAL_TEST)
    out = pytester.path / "out"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                                          "--backend", "vlmeval", "--model", "internvl3_38b",
                                          "--dataset", str(SMOKE_JSONL), "--results-dir", str(out))
    result.assert_outcomes(failed=9)  # collected and run: not a collection crash
    records = read_jsonl(out / "items.jsonl")
    assert all(r["error"] == f"backend 'vlmeval' failed to load model 'internvl3_38b': {MISSING}" for r in records)


def test_model_name_resolution():
    registry = ["InternVL3-1B", "InternVL3-8B", "InternVL3-38B", "InternVL3-78B", "Qwen2-VL-7B"]
    assert vlmeval_model_name(resolve_model("internvl3_38b"), registry) == "InternVL3-38B"
    from dataclasses import replace

    cfg = replace(resolve_model("internvl3_38b"), model_name="InternVL3-8B")
    assert vlmeval_model_name(cfg, registry) == "InternVL3-8B"
    with pytest.raises(RuntimeError, match="no model 'InternVL3-39B' in supported_VLM; close matches: InternVL3-38B"):
        vlmeval_model_name(replace(cfg, model_name="InternVL3-39B"), registry)


def test_evaluator_reports_load_error_on_records(no_vlmeval):
    run = build_run_config(model="internvl3_1b", backend="vlmeval", datasets=[str(SMOKE_JSONL)])
    samples = load_samples(run.datasets[0])
    record = Evaluator(run, samples).evaluate(samples[0])
    assert MISSING in record.error and record.passed is False
