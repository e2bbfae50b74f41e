"""How the performance benchmarks report: each measured ratio is printed, appended to the
JSON-lines file named by $VLM_BENCH_PERF_OUT (tests/benchmarks/performance_table.py
writes docs/performance.md from it), and checked against its bound."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Callable, Sequence


def report(name: str, value: float, bound: float, *, unit: str = "x", higher_is_better: bool = False, detail: str = "") -> None:
    ok = value >= bound if higher_is_better else value <= bound
    sign = ">=" if higher_is_better else "<="
    print(f"\n[perf] {name}: {value:.3f}{unit} (bound {sign} {bound}{unit}) {detail}", flush=True)
    out = os.environ.get("VLM_BENCH_PERF_OUT")
    if out:
        line = {
            "name": name, "value": round(value, 4), "bound": bound, "unit": unit, "higher_is_better": higher_is_better,
            "ok": ok, "detail": detail, "machine": f"{platform.node()} ({os.cpu_count()} CPUs)",
            "when": time.strftime("%Y-%m-%d %H:%M"),
        }
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
    assert ok, f"{name}: {value:.3f}{unit}, bound {sign} {bound}{unit} ({detail})"


def interleaved(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each round runs every contender once, in a rotating order, so drift on a shared
    machine falls on all of them alike. Each callable returns the quantity it measured."""
    names = list(runs)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            out[name].append(runs[name]())
    return out


def median_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """The median of the per-round ratios: each round's pair ran side by side."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))
