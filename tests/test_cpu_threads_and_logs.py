"""Torch's thread count on a CPU is chosen and recorded; a warning repeated on every
matmul (bitsandbytes int8 on a CPU) is shown once."""

import logging

import pytest

from conftest import SMOKE_JSONL
from vlm_bench.utils.cpu import SMALL_MODEL_B, available_cores, choose_cpu_threads
from vlm_bench.utils.logs import OncePerMessage, log_each_message_once


def test_omp_num_threads_set_by_the_user_wins():
    assert choose_cpu_threads(38.4, {"OMP_NUM_THREADS": "3"}) == (3, "OMP_NUM_THREADS")


def test_cores_are_shared_among_xdist_workers(monkeypatch):
    monkeypatch.setattr("vlm_bench.utils.cpu.available_cores", lambda: 16)
    assert choose_cpu_threads(38.4, {}) == (16, "16 cores / 1 worker")
    assert choose_cpu_threads(38.4, {"PYTEST_XDIST_WORKER_COUNT": "4"}) == (4, "16 cores / 4 workers")
    assert choose_cpu_threads(None, {"PYTEST_XDIST_WORKER_COUNT": "32"})[0] == 1  # never 0
    assert choose_cpu_threads(38.4, {"OMP_NUM_THREADS": "0", "PYTEST_XDIST_WORKER_COUNT": "2"})[0] == 8  # 0 is no choice


def test_a_tiny_model_runs_on_one_thread():
    assert choose_cpu_threads(SMALL_MODEL_B / 1000, {}) == (1, f"1 for a model under {SMALL_MODEL_B}B parameters")
    assert available_cores() >= 1


def test_each_message_passes_once(caplog):
    logger = logging.getLogger("vlm_bench_test_noisy.inner")
    log_each_message_once("vlm_bench_test_noisy")
    log_each_message_once("vlm_bench_test_noisy")  # idempotent: one filter per logger
    assert sum(isinstance(f, OncePerMessage) for f in logger.filters) == 1
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            logger.warning("inputs will be cast from %s to float16", "float32")
        logger.warning("another message")
    assert [r.getMessage() for r in caplog.records] == ["inputs will be cast from float32 to float16", "another message"]


def test_int8_on_cpu_warns_once_and_records_its_threads(caplog, monkeypatch):
    pytest.importorskip("bitsandbytes")
    from vlm_bench.config import build_run_config
    from vlm_bench.datasets import load_samples
    from vlm_bench.evaluate import Evaluator

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    run = build_run_config(model="tiny_internvl3", datasets=[str(SMOKE_JSONL)], quant="int8")
    samples = load_samples(run.datasets[0])[:3]
    evaluator = Evaluator(run, samples)
    with caplog.at_level(logging.WARNING):
        evaluator.load()
        records = [evaluator.evaluate(s) for s in samples]
    assert all(r.error is None and r.tokens for r in records)
    repeated = [r for r in caplog.records if r.name.startswith("bitsandbytes") and "MatMul8bitLt" in r.getMessage()]
    assert len(repeated) <= 1, f"{len(repeated)} identical bitsandbytes warnings"
    assert evaluator.adapter.engine.cpu_threads == {"threads": 1, "chosen_by": f"1 for a model under {SMALL_MODEL_B}B parameters"}
