"""Per-item results (append-only ``items.jsonl``) and the run summary (``summary.json``)."""

from __future__ import annotations

import hashlib
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
from typing import Any, Iterable, Mapping, Sequence

from vlm_bench.scoring import clustered_ci
from vlm_bench.types import ItemRecord

ITEMS_FILE = "items.jsonl"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"  # the run's fingerprint, for --resume and merge
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

    def __init__(self, results_dir: str | os.PathLike, run: Mapping[str, Any] | None = None):
        self.dir = Path(results_dir)
        self.path = self.dir / ITEMS_FILE
        self.run = run  # written to run.json with the first record
        self._fh = None
        self.count = 0

    def write(self, record: ItemRecord | Mapping[str, Any]) -> None:
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            if self.run is not None:
                write_json_atomic(self.dir / RUN_FILE, self.run)
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
        text = fh.read()
    lines = text.split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if lineno == len(lines):  # no newline after it: the write was cut off
                warnings.warn(f"{path}:{lineno}: dropping a partial last line (an interrupted write)")
                continue
            raise ValueError(f"{path}:{lineno}: not a JSON record") from None
    return records


def rewrite_records(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Replace items.jsonl atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(record_line(r) for r in records)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def record_uid(record: Mapping[str, Any]) -> str:
    return f"{record['dataset']}/{record['id']}"


class ResultsDirError(ValueError):
    """The results directory cannot be used as asked (exists, or holds another run)."""


def fingerprint_id(fingerprint: Mapping[str, Any]) -> str:
    canonical = json.dumps(fingerprint, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def settings_diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) for every setting that differs; lists of equal
    length are compared item by item (``datasets.0.sha256``)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += settings_diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (x, y) in enumerate(zip(old, new)) for d in settings_diff(x, y, f"{prefix}{i}.")]
    return [] if old == new else [(prefix.rstrip("."), old, new)]


def fingerprint_diff(old: Any, new: Any) -> list[str]:
    """The differing settings as "key: old -> new", for messages."""
    return [f"{key}: {a!r} -> {b!r}" for key, a, b in settings_diff(old, new)]


def prepare_results_dir(
    results_dir: str | os.PathLike, fingerprint: Mapping[str, Any], *, resume: bool = False, overwrite: bool = False
) -> dict[str, dict[str, Any]]:
    """Ready ``results_dir`` for a run and return the records a resumed run reuses (by
    ``dataset/id``). A fresh run refuses a directory holding results unless ``overwrite``;
    a resumed run refuses one holding another run (different fingerprint), drops a partial
    last line and errored records (those items run again), and keeps the rest."""
    root = Path(results_dir)
    items, run_file = root / ITEMS_FILE, root / RUN_FILE
    existing = [p for p in (items, root / SUMMARY_FILE, run_file) if p.exists()]
    reused: dict[str, dict[str, Any]] = {}
    if existing and resume:
        if run_file.exists():
            old = json.loads(run_file.read_text(encoding="utf-8"))["fingerprint"]
            diff = fingerprint_diff(old, fingerprint)
            if diff:
                raise ResultsDirError(
                    f"--resume: {root} holds a different run ({'; '.join(diff[:4])}); "
                    "keep the old settings or choose another --results-dir"
                )
        if items.exists():
            kept = [r for r in read_records(items) if r.get("error") is None]
            rewrite_records(items, kept)
            reused = {record_uid(r): r for r in kept}
    elif existing and not overwrite:
        raise ResultsDirError(
            f"{root} already holds results ({existing[0].name}); add --resume to continue that run, "
            "--overwrite to replace it, or choose another --results-dir"
        )
    elif existing:
        for path in existing:
            path.unlink()
    return reused


def run_info(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    return {"fingerprint": fingerprint, "id": fingerprint_id(fingerprint)}


def merge_results(sources: Iterable[str | os.PathLike], out: str | os.PathLike) -> list[dict[str, Any]]:
    """Merge shard result directories into ``out``: same fingerprint required, each item
    once. Returns the merged records (the caller writes the summary)."""
    sources = [Path(s) for s in sources]
    fingerprints = []
    for src in sources:
        run_file = src / RUN_FILE
        if not run_file.exists():
            raise ResultsDirError(f"{src} holds no {RUN_FILE}; is it a vlm-bench results directory?")
        fingerprints.append(json.loads(run_file.read_text(encoding="utf-8"))["fingerprint"])
    for src, fp in zip(sources[1:], fingerprints[1:]):
        diff = fingerprint_diff(fingerprints[0], fp)
        if diff:
            raise ResultsDirError(f"cannot merge {src} with {sources[0]}: different runs ({'; '.join(diff[:4])})")
    merged: dict[str, dict[str, Any]] = {}
    for src in sources:
        if not (src / ITEMS_FILE).exists():
            continue
        for record in read_records(src / ITEMS_FILE):
            uid = record_uid(record)
            if uid in merged and merged[uid] != record:
                raise ResultsDirError(f"item {uid} appears in more than one shard with different results")
            merged[uid] = record
    out = Path(out)
    if (out / ITEMS_FILE).exists():
        raise ResultsDirError(f"{out} already holds results; merge into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    rewrite_records(out / ITEMS_FILE, merged.values())
    write_json_atomic(out / RUN_FILE, dict(run_info(fingerprints[0]), merged_from=[str(s) for s in sources]))
    return list(merged.values())


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- summary


class RateBucket:
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
    overall = RateBucket()
    per_dataset: dict[str, RateBucket] = defaultdict(RateBucket)
    per_category: dict[str, RateBucket] = defaultdict(RateBucket)
    dims = [tuple(b) for b in breakdowns]
    per_breakdown: dict[str, dict[str, RateBucket]] = defaultdict(lambda: defaultdict(RateBucket))
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


def fmt_rate(rate: float | None, digits: int = 1) -> str:
    return "-" if rate is None else f"{100 * rate:.{digits}f}%"


def fmt_interval(ci: Sequence[float] | None) -> str:
    return "-" if not ci else f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f}"


def format_table(summary: Mapping[str, Any]) -> list[str]:
    pct, interval = fmt_rate, fmt_interval
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
