"""The run summary: pass rates with clustered intervals overall, per dataset, category and
breakdown, built one record at a time; and its text table."""

from __future__ import annotations

import statistics
from array import array
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from vlm_bench.scoring import clustered_ci_of_totals
from vlm_bench.types import STAGES

STAGE_NAMES = (*STAGES, "tokens_per_s")


class RateBucket:
    """Counts of one scope of the summary; outcomes are kept per cluster (passed, items),
    so a bucket grows with the number of videos, not of items."""

    def __init__(self) -> None:
        self.total = self.passed = self.errors = self.truncated = self.unscored = self.missing = 0
        self.clusters: dict[str, list[float]] = {}

    def add(self, rec: Mapping[str, Any]) -> None:
        self.total += 1
        if rec.get("missing_media") and rec.get("error") is None:
            self.missing += 1  # the download lacks its video: not a wrong answer, not scored
            return
        self.errors += rec.get("error") is not None
        self.truncated += bool(rec.get("truncated"))
        if rec.get("passed") is None and rec.get("error") is None:
            self.unscored += 1
            return
        ok = bool(rec.get("passed")) and rec.get("error") is None
        self.passed += ok
        totals = self.clusters.setdefault(str(rec.get("cluster") or rec["id"]), [0.0, 0.0])
        totals[0] += ok
        totals[1] += 1

    def as_dict(self) -> dict[str, Any]:
        scored = self.total - self.unscored - self.missing
        return {
            "passed": self.passed,
            "total": self.total,
            "scored": scored,
            "unscored": self.unscored,
            "missing_media": self.missing,
            "errors": self.errors,
            "truncated": self.truncated,
            "pass_rate": round(self.passed / scored, 6) if scored else None,
            "ci95": clustered_ci_of_totals(self.clusters.values()),
            "clusters": len(self.clusters),
        }


class RunSummary:
    """The summary built one record at a time, so a long run need not keep its records:
    ``add`` each record as it finishes, ``result()`` at the end (see ``summarize``)."""

    def __init__(self, breakdowns: Iterable[Iterable[str]] = ()):
        self.overall = RateBucket()
        self.per_dataset: dict[str, RateBucket] = defaultdict(RateBucket)
        self.per_category: dict[str, RateBucket] = defaultdict(RateBucket)
        self.dims = [tuple(b) for b in breakdowns]
        self.per_breakdown: dict[str, dict[str, RateBucket]] = defaultdict(lambda: defaultdict(RateBucket))
        self.latencies: list[float] = []
        self.stages: dict[str, array] = {}  # stage -> its times (ms), compact: a long run keeps them all
        self.warnings: dict[str, int] = {}  # kind -> records that carry it
        self.judged: dict[str, int] = {}  # judge status -> records (answers the rules could not read)

    def add(self, rec: Mapping[str, Any]) -> None:
        self.overall.add(rec)
        self.per_dataset[rec["dataset"]].add(rec)
        if rec.get("category") is not None:
            self.per_category[str(rec["category"])].add(rec)
        cats = rec.get("categories") or {}
        for dim in self.dims:
            if all(d in cats for d in dim):
                self.per_breakdown[" x ".join(dim)][" | ".join(str(cats[d]) for d in dim)].add(rec)
        if rec.get("latency_ms") is not None:
            self.latencies.append(rec["latency_ms"])
        for kind in rec.get("warnings") or ():
            self.warnings[kind] = self.warnings.get(kind, 0) + 1
        if rec.get("judge"):
            status = rec["judge"].get("status", "ok")
            self.judged[status] = self.judged.get(status, 0) + 1
        for stage, value in (rec.get("timing") or {}).items():
            if isinstance(value, (int, float)) and stage in STAGE_NAMES:
                self.stages.setdefault(stage, array("d")).append(value)

    def result(self, min_pass_rate: float | None = None) -> dict[str, Any]:
        summary: dict[str, Any] = self.overall.as_dict()
        summary["per_dataset"] = {k: v.as_dict() for k, v in sorted(self.per_dataset.items())}
        summary["per_category"] = {k: v.as_dict() for k, v in sorted(self.per_category.items())}
        summary["breakdowns"] = {
            name: {k: v.as_dict() for k, v in sorted(values.items())} for name, values in self.per_breakdown.items()
        }
        summary["latency_ms"] = _latency_stats(self.latencies)
        summary["stages_ms"] = stage_medians(self.stages)
        summary["warnings"] = dict(sorted(self.warnings.items())) or None
        summary["judged"] = dict(sorted(self.judged.items())) or None
        summary["min_pass_rate"] = min_pass_rate
        summary["below_min_pass_rate"] = (
            min_pass_rate is not None and (summary["pass_rate"] is None or summary["pass_rate"] < min_pass_rate)
        )
        return summary


def summarize(
    records: Iterable[Mapping[str, Any]],
    min_pass_rate: float | None = None,
    breakdowns: Iterable[Iterable[str]] = (),
) -> dict[str, Any]:
    """Pass rates overall, per dataset, per category and per breakdown (a category
    dimension, or a cross of several such as duration x domain). The pass rate is passed
    items over scored items (an errored item counts as not passed; an unscored item, with
    no checkable answer, is left out), so it equals the share of passed tests. Each rate
    carries a 95% interval clustered by video."""
    running = RunSummary(breakdowns)
    for rec in records:
        running.add(rec)
    return running.result(min_pass_rate)


def stage_medians(stages: Mapping[str, Sequence[float]]) -> dict[str, float] | None:
    """The median of each stage over the items that timed it, in ``STAGES`` order (and
    tokens per second)."""
    out = {name: round(statistics.median(stages[name]), 3) for name in STAGE_NAMES if stages.get(name)}
    return out or None


def _latency_stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

    return {"mean": round(sum(ordered) / len(ordered), 3), "p50": pct(0.5), "p90": pct(0.9), "max": ordered[-1]}


def fmt_rate(rate: float | None, digits: int = 1) -> str:
    return "-" if rate is None else f"{100 * rate:.{digits}f}%"


def fmt_interval(ci: Sequence[float] | None) -> str:
    return "-" if not ci else f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f}"


MIN_ITEMS_FOR_INTERVAL = 2


def interval_or_why(bucket: Mapping[str, Any]) -> str:
    """The 95% interval, or why there is none worth showing (the terminal, the summary's
    table and the reports say the same)."""
    if bucket.get("pass_rate") is None:
        return "-"
    if bucket.get("scored", 0) < MIN_ITEMS_FOR_INTERVAL:
        return "too few items"
    if bucket.get("clusters", MIN_ITEMS_FOR_INTERVAL) < MIN_ITEMS_FOR_INTERVAL:
        return "one video only"
    return fmt_interval(bucket.get("ci95"))


def format_table(summary: Mapping[str, Any]) -> list[str]:
    pct, interval = fmt_rate, interval_or_why
    rows = [("overall", summary)]
    rows += [(f"dataset {k}", v) for k, v in summary["per_dataset"].items()]
    rows += [(f"category {k}", v) for k, v in summary["per_category"].items()]
    for name, values in summary.get("breakdowns", {}).items():
        rows += [(f"{name}: {k}", v) for k, v in values.items()]
    width = max(len(name) for name, _ in rows)
    # items whose media the download lacks are left out of the pass rate; their count sits beside it
    missing = bool(summary.get("missing_media"))
    lines = [
        f"{'scope':<{width}}  {'passed':>6}  {'scored':>6}  {'pass rate':>9}" + ("  missing" if missing else "")
        + f"  {'95% CI':>14}  {'errors':>6}  {'truncated':>9}  {'unscored':>8}"
    ]
    for name, b in rows:
        lines.append(
            f"{name:<{width}}  {b['passed']:>6}  {b['scored']:>6}  {pct(b['pass_rate']):>9}"
            + (f"  {b.get('missing_media', 0):>7}" if missing else "")
            + f"  {interval(b):>14}  {b['errors']:>6}  {b['truncated']:>9}  {b['unscored']:>8}"
        )
    if summary.get("min_pass_rate") is not None:
        rate = f"overall {pct(summary['pass_rate'])}"
        if summary.get("complete") is False:
            verdict = f"FAILED (run incomplete: {summary['total']} of {summary.get('items_expected')} items ran; {rate})"
        else:
            verdict = f"{'FAILED' if summary['below_min_pass_rate'] else 'met'} ({rate})"
        lines.append(f"min pass rate {pct(summary['min_pass_rate'])}: {verdict}")
    return lines
