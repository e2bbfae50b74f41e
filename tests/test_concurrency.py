"""Adaptive concurrency (vlm_bench/concurrency.py): the limit on its own, and the openai
backend against a loopback server that answers 429 past its capacity."""

from __future__ import annotations

import json
import threading
import time

import pytest

from conftest import EVAL_TEST, SMOKE_JSONL, read_jsonl
from vlm_bench.concurrency import AdaptiveLimit


def succeed(limit: AdaptiveLimit, times: int) -> None:
    for _ in range(times):
        with limit.slot():
            pass


def throttle(limit: AdaptiveLimit, level: int) -> None:
    """A request throttled while ``level`` were in flight."""
    holders = [limit.slot() for _ in range(level - 1)]
    for h in holders:
        h.__enter__()
    with pytest.raises(RuntimeError):
        with limit.slot() as request:
            request.throttled = True
            raise RuntimeError("429")
    for h in holders:
        h.__exit__(None, None, None)


def test_slow_start_doubles_up_to_the_ceiling():
    limit = AdaptiveLimit(ceiling=6)
    seen = []
    for _ in range(6):
        succeed(limit, limit.limit)
        seen.append(limit.limit)
    assert seen == [2, 4, 6, 6, 6, 6] and limit.snapshot()["grown"] == 3


def test_a_throttle_goes_back_to_the_level_that_worked_then_grows_by_one_slowly():
    limit = AdaptiveLimit(ceiling=16, start=8)
    throttle(limit, level=8)  # one less than where it failed; the 7 others in flight then succeed
    assert limit.limit == 7 and limit.throttles == 1
    throttle(limit, level=7)  # sent at the new limit, and throttled too: one less again
    assert limit.limit == 6
    limit._throttled(8)  # another of the first burst, sent before the limit fell: changes nothing
    assert limit.limit == 6 and limit.throttles == 3
    succeed(limit, 2 * 6 - 1)
    assert limit.limit == 6  # no doubling after a throttle
    succeed(limit, 1)
    assert limit.limit == 7


def test_latency_that_stops_holding_shrinks_the_limit(monkeypatch):
    clock = iter(range(10_000))
    now = [0.0]
    monkeypatch.setattr("vlm_bench.concurrency.time.perf_counter", lambda: now[0])
    limit = AdaptiveLimit(ceiling=4, start=4)

    def timed(seconds: float, n: int):
        for _ in range(n):
            with limit.slot():
                now[0] += seconds
        next(clock)

    timed(0.1, 4)  # the slow-start window sets the best median
    assert limit.limit == 4
    limit._slow_start = False
    timed(1.0, 8 * 2)  # ten times slower: queueing
    assert limit.limit < 4 and limit.shrunk >= 1


def test_never_more_in_flight_than_the_limit_across_threads():
    limit = AdaptiveLimit(ceiling=3, start=3)
    worst = []

    def work():
        with limit.slot():
            worst.append(limit.in_flight)
            time.sleep(0.01)

    threads = [threading.Thread(target=work) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(worst) <= 3 and limit.peak <= 3


def test_the_ceiling_must_be_positive():
    with pytest.raises(ValueError, match="ceiling must be >= 1"):
        AdaptiveLimit(0)


def test_a_served_run_adapts_below_the_servers_capacity_and_records_it(pytester):
    pytest.importorskip("openai")
    from fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(delay_s=0.05) as srv:
        srv.capacity, srv.retry_after = 2, "0.05"
        pytester.makepyfile(test_eval=EVAL_TEST)
        result = pytester.runpytest("-p", "no:cacheprovider", "-q", "--backend", "openai", "--model", "tiny-internvl3",
                                    "--dataset", str(SMOKE_JSONL), "--base-url", srv.url, "--results-dir", "out",
                                    "--concurrency", "6", "--adaptive-concurrency", "--max-retry-wait", "1")
        records = read_jsonl(pytester.path / "out" / "items.jsonl")
        assert len(records) == 9 and all(r["error"] is None for r in records), [r["error"] for r in records]
        assert srv.max_in_flight <= 6
        used = json.loads((pytester.path / "out" / "summary.json").read_text())["workers"]["main"]["server"]["concurrency"]
        assert used["mode"] == "adaptive" and used["ceiling"] == 6 and 1 <= used["peak"] <= 6
