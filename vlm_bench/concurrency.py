"""Adaptive concurrency for requests to a server (the openai backend, API generators): how
many may be in flight, found while the run goes, between 1 and a configured ceiling.

It starts at one and doubles each time a full window of requests succeeds (slow start), until
the first throttle. A throttle (429, 5xx, 408, a timeout) of a request sent with ``L`` in flight
sets the limit to ``L - 1`` at most (a burst of throttles from one overshoot lowers it once);
after that the limit grows by one only after ``2 x limit`` successes in a row whose latency
holds (at most ``LATENCY_HOLDS`` x the lowest median seen), twice as many again after each probe
that was throttled (up to ``MAX_PROBE_BACKOFF`` times), so a server at capacity is probed rarely. Latency that stops holding shrinks the limit by one. ``snapshot()`` is what the
manifest records."""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Any, Iterator

LATENCY_HOLDS = 2.0  # a window's median latency past this many times the best median: the server is queueing
MAX_PROBE_BACKOFF = 64


class Request:
    """One request's place; the caller sets ``throttled`` before its exception leaves ``slot()``
    when the server pushed back (429, 5xx, 408, a timeout)."""

    throttled = False


class AdaptiveLimit:
    def __init__(self, ceiling: int, start: int = 1):
        if ceiling < 1:
            raise ValueError(f"the concurrency ceiling must be >= 1, got {ceiling}")
        self.ceiling = ceiling
        self.limit = max(1, min(start, ceiling))
        self.in_flight = 0
        self.peak = 0  # most requests in flight at once
        self.grown = self.shrunk = self.throttles = 0
        self._slow_start = True
        self._probe_backoff = 1  # doubles with each throttled probe, back to 1 when a probe holds
        self._probing = False  # the limit was just raised: the next window tells whether it holds
        self._streak = 0
        self._latencies: deque[float] = deque(maxlen=16)
        self._best_median: float | None = None
        self._cond = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[Request]:
        """Hold one of the ``limit`` places for one request. Its outcome is how the block
        ends: normally (a success, its latency counted), by an exception with the request
        marked ``throttled``, or by another exception (which neither grows nor shrinks the limit)."""
        with self._cond:
            while self.in_flight >= self.limit:
                self._cond.wait()
            self.in_flight += 1
            level = self.in_flight
            self.peak = max(self.peak, level)
        started = time.perf_counter()
        request = Request()
        outcome = "error"
        try:
            yield request
            outcome = "ok"
        except BaseException:
            outcome = "throttled" if request.throttled else "error"
            raise
        finally:
            with self._cond:
                self.in_flight -= 1
                if outcome == "ok":
                    self._succeeded(level, time.perf_counter() - started)
                elif outcome == "throttled":
                    self._throttled(level)
                self._cond.notify_all()

    def _succeeded(self, level: int, seconds: float) -> None:
        self._latencies.append(seconds)
        self._streak += 1
        if self._streak < (self.limit if self._slow_start else 2 * self.limit * self._probe_backoff):
            return
        self._streak = 0
        if self._probing:  # a full window at the raised limit without a throttle
            self._probing, self._probe_backoff = False, 1
        median = statistics.median(self._latencies)
        self._best_median = median if self._best_median is None else min(self._best_median, median)
        if median > LATENCY_HOLDS * self._best_median and self.limit > 1:
            self.limit -= 1
            self.shrunk += 1
        elif self.limit < self.ceiling:
            self.limit = min(self.ceiling, self.limit * 2 if self._slow_start else self.limit + 1)
            self.grown += 1
            self._probing = not self._slow_start

    def _throttled(self, level: int) -> None:
        self.throttles += 1
        self._slow_start = False
        self._streak = 0
        new = max(1, min(self.limit, level - 1))
        if new < self.limit:
            self.limit = new
            self.shrunk += 1
            if self._probing:
                self._probing = False
                self._probe_backoff = min(MAX_PROBE_BACKOFF, 2 * self._probe_backoff)

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {"mode": "adaptive", "ceiling": self.ceiling, "peak": self.peak, "final": self.limit,
                    "grown": self.grown, "shrunk": self.shrunk, "throttles": self.throttles}
