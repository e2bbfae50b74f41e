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


def _rate(passed: int, total: int) -> float | None:
    return round(passed / total, 6) if total else None


def _bucket() -> dict[str, int]:
    return {"passed": 0, "total": 0, "errors": 0, "truncated": 0}


def summarize(records: Iterable[Mapping[str, Any]], min_pass_rate: float | None = None) -> dict[str, Any]:
    """Pass rates overall, per dataset and per category. The pass rate is passed items over
    all items (an errored item counts as not passed), so it equals the share of passed tests."""
    overall = _bucket()
    per_dataset: dict[str, dict[str, int]] = defaultdict(_bucket)
    per_category: dict[str, dict[str, int]] = defaultdict(_bucket)
    latencies = []
    for rec in records:
        buckets = [overall, per_dataset[rec["dataset"]]]
        if rec.get("category") is not None:
            buckets.append(per_category[str(rec["category"])])
        for b in buckets:
            b["total"] += 1
            b["passed"] += bool(rec["passed"])
            b["errors"] += rec.get("error") is not None
            b["truncated"] += bool(rec.get("truncated"))
        if rec.get("latency_ms") is not None:
            latencies.append(rec["latency_ms"])

    def finish(b: Mapping[str, int]) -> dict[str, Any]:
        return dict(b, pass_rate=_rate(b["passed"], b["total"]))

    summary: dict[str, Any] = finish(overall)
    summary["per_dataset"] = {k: finish(v) for k, v in sorted(per_dataset.items())}
    summary["per_category"] = {k: finish(v) for k, v in sorted(per_category.items())}
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

    rows = [("overall", summary)]
    rows += [(f"dataset {k}", v) for k, v in summary["per_dataset"].items()]
    rows += [(f"category {k}", v) for k, v in summary["per_category"].items()]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'scope':<{width}}  {'passed':>6}  {'total':>5}  {'pass rate':>9}  {'errors':>6}  {'truncated':>9}"]
    for name, b in rows:
        lines.append(
            f"{name:<{width}}  {b['passed']:>6}  {b['total']:>5}  {pct(b['pass_rate']):>9}"
            f"  {b['errors']:>6}  {b['truncated']:>9}"
        )
    if summary.get("min_pass_rate") is not None:
        verdict = "FAILED" if summary["below_min_pass_rate"] else "met"
        lines.append(f"min pass rate {pct(summary['min_pass_rate'])}: {verdict} (overall {pct(summary['pass_rate'])})")
    return lines
