"""Adaptive concurrency against fixed settings, on a loopback server that rate-limits: it
serves at most ``CAPACITY`` requests at once (each takes ``DELAY_S``) and answers 429 with a
``Retry-After`` past that, at once, as a rate limiter does. The same 192 requests go through
the openai backend's engine with 2, 4, 8 and 16 fixed threads, and adaptively with a
ceiling of 16 threads; the adaptive run must finish no slower than the best fixed setting
(bound 1.05x, for timer noise) and never have more than 16 in flight. Run with
``pytest -m benchmark tests/benchmarks/test_bench_concurrency.py -s``."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fake_openai import FakeOpenAIServer
from perf_report import report
from vlm_bench.config import resolve_model
from vlm_bench.runners.openai_backend import OpenAIEngine
from vlm_bench.types import DecodeConfig, FrameSelection, VideoInput

pytest.importorskip("openai")
pytestmark = pytest.mark.benchmark

CAPACITY, DELAY_S, RETRY_AFTER, ITEMS, CEILING, ROUNDS = 4, 0.05, "0.5", 192, 16, 3
FIXED = (2, 4, 8, 16)  # 1 is half as fast as 2 (measured): left out to save time


def items() -> list[VideoInput]:
    frame = np.zeros((32, 32, 3), np.uint8)
    selection = FrameSelection((0,), 1, "uniform", None, "opencv")
    return [VideoInput(f"item{i}", (frame,), selection, "v.mp4") for i in range(ITEMS)]


def run_once(url: str, threads: int, adaptive: bool) -> float:
    cfg = resolve_model("tiny-internvl3")
    from dataclasses import replace

    cfg = replace(cfg, server={"base_url": url, "concurrency": threads, "adaptive": adaptive, "max_retries": 20,
                               "max_retry_wait_s": 5.0})
    engine = OpenAIEngine(cfg)
    engine.load()
    decode = DecodeConfig(max_new_tokens=4)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda m: engine.generate_video(m, "What is it?", decode), items()))
    return time.perf_counter() - started


def test_adaptive_concurrency_is_as_fast_as_the_best_fixed_setting():
    with FakeOpenAIServer(delay_s=DELAY_S) as srv:
        srv.capacity, srv.retry_after = CAPACITY, RETRY_AFTER
        times: dict[str, list[float]] = {f"fixed {k}": [] for k in FIXED}
        times["adaptive"] = []
        peaks = []
        for _ in range(ROUNDS):
            for k in FIXED:
                times[f"fixed {k}"].append(run_once(srv.url, k, adaptive=False))
            srv.max_in_flight = 0
            times["adaptive"].append(run_once(srv.url, CEILING, adaptive=True))
            peaks.append(srv.max_in_flight)
    medians = {name: statistics.median(v) for name, v in times.items()}
    best = min((n for n in medians if n.startswith("fixed")), key=medians.get)
    assert max(peaks) <= CEILING
    report("adaptive concurrency / best fixed setting, loopback server with a rate limit",
           medians["adaptive"] / medians[best], 1.05,
           detail=f"(best {best}; medians s: " + ", ".join(f"{n} {v:.2f}" for n, v in medians.items())
                  + f"; server capacity {CAPACITY}, {DELAY_S * 1000:.0f} ms a request, 429 Retry-After {RETRY_AFTER} s; "
                  f"{ITEMS} requests, {ROUNDS} rounds; most in flight with adaptive {max(peaks)}, ceiling {CEILING})")
