"""Coverage of the clustered pass-rate interval, by simulation (vectorised: a few tenths of
a second). Items come in clusters of 1-5 questions about one video; within a video the
chance of a correct answer varies around the true rate (intra-class correlation 0 or 0.2).

    python tests/test_intervals.py      # the coverage table in docs/scoring.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlm_bench.scoring import cluster_wilson, clustered_ci, t_quantile  # noqa: E402

RATES = (0.3, 0.5, 0.75, 0.9)
ICCS = (0.0, 0.2)


def simulate(clusters: int, rate: float, icc: float, reps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(passed items, items) per cluster, shape (reps, clusters)."""
    rng = np.random.default_rng(seed)
    if icc > 0:
        a, b = rate * (1 - icc) / icc, (1 - rate) * (1 - icc) / icc
        cluster_rates = rng.beta(a, b, size=(reps, clusters))
    else:
        cluster_rates = np.full((reps, clusters), rate)
    sizes = rng.integers(1, 6, size=(reps, clusters))
    return rng.binomial(sizes, cluster_rates), sizes


def coverage(clusters: int, rate: float, icc: float, reps: int = 20000) -> float:
    lo, hi = cluster_wilson(*simulate(clusters, rate, icc, reps))
    return float(np.mean((lo <= rate) & (rate <= hi)))


def wald_z_coverage(clusters: int, rate: float, icc: float, reps: int = 20000) -> float:
    """The interval this one replaced: p +- 1.96 * cluster-robust standard error."""
    y, m = simulate(clusters, rate, icc, reps)
    n = m.sum(1)
    p = y.sum(1) / n
    var = clusters / (clusters - 1) * ((y - m * p[:, None]) ** 2).sum(1) / n**2
    half = 1.959964 * np.sqrt(var)
    return float(np.mean((p - half <= rate) & (rate <= p + half)))


@pytest.mark.parametrize("icc", ICCS)
@pytest.mark.parametrize("rate", RATES)
def test_coverage_at_ten_clusters(rate, icc):
    assert coverage(10, rate, icc) >= 0.94


def test_the_uncorrected_interval_undercovers_at_ten_clusters():
    assert min(wald_z_coverage(10, r, i) for r in RATES for i in ICCS) < 0.93


@pytest.mark.parametrize("rate", (0.5, 0.9))
def test_many_clusters_are_not_overcovered(rate):
    assert 0.935 <= coverage(900, rate, 0.2, reps=3000) <= 0.965


def test_t_quantiles():
    for df, t in ((1, 12.7062), (2, 4.3027), (5, 2.5706), (9, 2.2622), (30, 2.0423), (120, 1.9799), (1000, 1.9623)):
        assert abs(t_quantile(df) - t) < 1e-4


def test_interval_edges():
    assert clustered_ci([(f"v{i}", 1.0) for i in range(10)])[1] == 1.0
    lo, hi = clustered_ci([(f"v{i}", 1.0) for i in range(10)])
    assert 0.5 < lo < 0.8  # every item passed: each cluster counts once, the bound stays honest
    assert clustered_ci([("v", 0.0)]) == [0.0, 1.0]


def coverage_table() -> str:
    lines = ["| clusters | rate | ICC | coverage | old interval (z, Wald) |", "| --- | --- | --- | --- | --- |"]
    for clusters in (6, 10, 30, 900):
        reps = 3000 if clusters == 900 else 20000
        for rate in RATES:
            for icc in ICCS:
                lines.append(f"| {clusters} | {rate} | {icc} | {coverage(clusters, rate, icc, reps):.3f} | "
                             f"{wald_z_coverage(clusters, rate, icc, reps):.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(coverage_table())
