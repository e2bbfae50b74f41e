"""Per-item results (append-only ``items.jsonl``) and the run summary (``summary.json``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import warnings
from collections import defaultdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from vlm_bench.types import ItemRecord

ITEMS_FILE = "items.jsonl"
SUMMARY_FILE = "summary.json"
TRACKED_PACKAGES = (
    "vlm-bench",
    "torch",
    "torchvision",
    "transformers",
    "bitsandbytes",
    "accelerate",
    "decord",
    "opencv-python-headless",
    "numpy",
    "PyYAML",
    "pytest",
    "ms-vlmeval",
)


def record_line(record: ItemRecord | Mapping[str, Any]) -> str:
    data = record.as_dict() if isinstance(record, ItemRecord) else record
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": ")) + "\n"


class ResultsWriter:
    """Appends one JSON line per finished item and flushes it at once, so a crash loses
    at most the line being written."""

    def __init__(self, results_dir: str | os.PathLike):
        self.dir = Path(results_dir)
        self.path = self.dir / ITEMS_FILE
        self._fh = None
        self.count = 0

    def write(self, record: ItemRecord | Mapping[str, Any]) -> None:
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(record_line(record))
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read items.jsonl; a partial last line (a crash mid-write) is dropped with a warning."""
    records = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if lineno == len(lines):
                warnings.warn(f"{path}:{lineno}: dropping a partial last line (an interrupted write)")
                continue
            raise ValueError(f"{path}:{lineno}: not a JSON record") from None
    return records


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- summary


Z95 = 1.959964


def clustered_ci(outcomes: list[tuple[str, float]], z: float = Z95) -> list[float] | None:
    """95% confidence interval of a mean of 0/1 outcomes whose items are correlated within
    clusters (questions about one video): the cluster-robust (sandwich) standard error,
    ``var = C/(C-1) * sum_c (sum_{i in c} (y_i - p))^2 / n^2``, clipped to [0, 1]."""
    n = len(outcomes)
    if n == 0:
        return None
    p = sum(y for _, y in outcomes) / n
    residuals: dict[str, float] = defaultdict(float)
    for cluster, y in outcomes:
        residuals[cluster] += y - p
    c = len(residuals)
    if c < 2:
        return [round(p, 6), round(p, 6)] if p in (0.0, 1.0) else [0.0, 1.0]
    var = c / (c - 1) * sum(r * r for r in residuals.values()) / (n * n)
    half = z * var**0.5
    return [round(max(0.0, p - half), 6), round(min(1.0, p + half), 6)]


class _Bucket:
    def __init__(self) -> None:
        self.total = self.passed = self.errors = self.truncated = self.unscored = 0
        self.outcomes: list[tuple[str, float]] = []

    def add(self, rec: Mapping[str, Any]) -> None:
        self.total += 1
        self.errors += rec.get("error") is not None
        self.truncated += bool(rec.get("truncated"))
        if rec.get("passed") is None and rec.get("error") is None:
            self.unscored += 1
            return
        ok = bool(rec.get("passed")) and rec.get("error") is None
        self.passed += ok
        self.outcomes.append((str(rec.get("cluster") or rec["id"]), 1.0 if ok else 0.0))

    def as_dict(self) -> dict[str, Any]:
        scored = self.total - self.unscored
        return {
            "passed": self.passed,
            "total": self.total,
            "scored": scored,
            "unscored": self.unscored,
            "errors": self.errors,
            "truncated": self.truncated,
            "pass_rate": round(self.passed / scored, 6) if scored else None,
            "ci95": clustered_ci(self.outcomes),
            "clusters": len({c for c, _ in self.outcomes}),
        }


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
    overall = _Bucket()
    per_dataset: dict[str, _Bucket] = defaultdict(_Bucket)
    per_category: dict[str, _Bucket] = defaultdict(_Bucket)
    dims = [tuple(b) for b in breakdowns]
    per_breakdown: dict[str, dict[str, _Bucket]] = defaultdict(lambda: defaultdict(_Bucket))
    latencies = []
    for rec in records:
        overall.add(rec)
        per_dataset[rec["dataset"]].add(rec)
        if rec.get("category") is not None:
            per_category[str(rec["category"])].add(rec)
        cats = rec.get("categories") or {}
        for dim in dims:
            if all(d in cats for d in dim):
                per_breakdown[" x ".join(dim)][" | ".join(str(cats[d]) for d in dim)].add(rec)
        if rec.get("latency_ms") is not None:
            latencies.append(rec["latency_ms"])

    summary: dict[str, Any] = overall.as_dict()
    summary["per_dataset"] = {k: v.as_dict() for k, v in sorted(per_dataset.items())}
    summary["per_category"] = {k: v.as_dict() for k, v in sorted(per_category.items())}
    summary["breakdowns"] = {
        name: {k: v.as_dict() for k, v in sorted(values.items())} for name, values in per_breakdown.items()
    }
    summary["latency_ms"] = _latency_stats(latencies)
    summary["min_pass_rate"] = min_pass_rate
    summary["below_min_pass_rate"] = (
        min_pass_rate is not None and (summary["pass_rate"] is None or summary["pass_rate"] < min_pass_rate)
    )
    return summary


def _latency_stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

    return {"mean": round(sum(ordered) / len(ordered), 3), "p50": pct(0.5), "p90": pct(0.9), "max": ordered[-1]}


# ---------------------------------------------------------------- manifest


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The commit of the vlm-bench checkout (None when not installed from a git checkout)."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def build_manifest(run_config: Mapping[str, Any], started_at: str) -> dict[str, Any]:
    return {
        "config": run_config,
        "seed": run_config.get("seed"),
        "versions": package_versions(),
        "git": git_commit(),
        "argv": sys.argv,
        "started_at": started_at,
        "finished_at": utc_now(),
    }


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- text table


def format_table(summary: Mapping[str, Any]) -> list[str]:
    def pct(rate: float | None) -> str:
        return "-" if rate is None else f"{100 * rate:.1f}%"

    def interval(ci: list[float] | None) -> str:
        return "-" if ci is None else f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f}"

    rows = [("overall", summary)]
    rows += [(f"dataset {k}", v) for k, v in summary["per_dataset"].items()]
    rows += [(f"category {k}", v) for k, v in summary["per_category"].items()]
    for name, values in summary.get("breakdowns", {}).items():
        rows += [(f"{name}: {k}", v) for k, v in values.items()]
    width = max(len(name) for name, _ in rows)
    lines = [
        f"{'scope':<{width}}  {'passed':>6}  {'scored':>6}  {'pass rate':>9}  {'95% CI':>11}"
        f"  {'errors':>6}  {'truncated':>9}  {'unscored':>8}"
    ]
    for name, b in rows:
        lines.append(
            f"{name:<{width}}  {b['passed']:>6}  {b['scored']:>6}  {pct(b['pass_rate']):>9}  {interval(b['ci95']):>11}"
            f"  {b['errors']:>6}  {b['truncated']:>9}  {b['unscored']:>8}"
        )
    if summary.get("min_pass_rate") is not None:
        verdict = "FAILED" if summary["below_min_pass_rate"] else "met"
        lines.append(f"min pass rate {pct(summary['min_pass_rate'])}: {verdict} (overall {pct(summary['pass_rate'])})")
    return lines
