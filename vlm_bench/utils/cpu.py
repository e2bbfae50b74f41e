"""Torch's thread count on a CPU, chosen rather than left to torch's default (every core,
in every pytest-xdist worker at once)."""

from __future__ import annotations

import os
from typing import Mapping

SMALL_MODEL_B = 0.1  # below this many billion parameters an op is too small to share across threads


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_cpu_threads(parameters_b: float | None, environ: Mapping[str, str] = os.environ) -> tuple[int, str]:
    """(threads, how they were chosen). ``OMP_NUM_THREADS`` set by the user wins; a tiny
    model gets one thread (splitting its small matrices costs more than it saves: measured
    several times slower with two on a 2-core machine); otherwise the cores are shared
    evenly among the xdist workers."""
    given = environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) >= 1:
        return int(given), "OMP_NUM_THREADS"
    if parameters_b is not None and parameters_b < SMALL_MODEL_B:
        return 1, f"1 for a model under {SMALL_MODEL_B}B parameters"
    cores = available_cores()
    workers = max(1, int(environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    return max(1, cores // workers), f"{cores} cores / {workers} worker{'s' if workers > 1 else ''}"
