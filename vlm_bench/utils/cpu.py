"""Torch's CPU thread count, chosen rather than left to torch's default (every core, in
every pytest-xdist worker at once): for a model on the CPU, and for the CPU's share of the
work (frame resizing, tokens) when the model runs on a GPU."""

from __future__ import annotations

import os
from typing import Mapping

SMALL_MODEL_B = 0.1  # below this many billion parameters an op is too small to share across threads
GPU_HOST_THREADS = 4  # with the model on a GPU, the CPU only resizes frames and handles tokens


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_cpu_threads(parameters_b: float | None, environ: Mapping[str, str] = os.environ,
                       cuda: bool = False) -> tuple[int, str]:
    """(threads, how they were chosen). ``OMP_NUM_THREADS`` set by the user wins; a tiny
    model gets one thread (splitting its small matrices costs more than it saves: measured
    several times slower with two on a 2-core machine); a model on a GPU leaves the CPU
    little to do (at most ``GPU_HOST_THREADS``); otherwise the cores are shared evenly
    among the xdist workers."""
    given = environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) >= 1:
        return int(given), "OMP_NUM_THREADS"
    if parameters_b is not None and parameters_b < SMALL_MODEL_B:
        return 1, f"1 for a model under {SMALL_MODEL_B}B parameters"
    cores = available_cores()
    workers = max(1, int(environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    share = max(1, cores // workers)
    how = f"{cores} cores / {workers} worker{'s' if workers > 1 else ''}"
    if cuda and share > GPU_HOST_THREADS:
        return GPU_HOST_THREADS, f"{GPU_HOST_THREADS}: the model runs on the GPU ({how})"
    return share, how
