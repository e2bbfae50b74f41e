"""Per-item results (append-only ``items.jsonl``) and the run summary (``summary.json``)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from vlm_bench.scoring import clustered_ci_of_totals
from vlm_bench.types import ItemRecord

ITEMS_FILE = "items.jsonl"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"  # the run's fingerprint, for --resume and merge
LOCK_FILE = ".vlm-bench.lock"  # held (flock) by the one process that owns the folder
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
    "diffusers",
    "av",
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

    def start(self) -> None:
        """Write run.json and open items.jsonl (created empty if new)."""
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            if self.run is not None:
                write_json_atomic(self.dir / RUN_FILE, self.run)
            self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: ItemRecord | Mapping[str, Any]) -> None:
        self.start()
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
    """Read items.jsonl. A last line without its newline that does not parse (a write cut
    off by a crash, even inside a UTF-8 character) is dropped with a warning; any other bad
    line is an error naming the file and line."""
    lines = Path(path).read_bytes().split(b"\n")
    records = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if lineno == len(lines):  # no newline after it: the write was cut off
                warnings.warn(f"{path}:{lineno}: dropping a partial last line (an interrupted write)")
                continue
            raise ResultsDirError(f"{path}:{lineno}: not a JSON record; the file is damaged (fix or delete that line)") from None
        if not isinstance(record, dict) or "id" not in record or "dataset" not in record:
            raise ResultsDirError(f"{path}:{lineno}: not an item record (no 'id' and 'dataset')")
        records.append(record)
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


# ---------------------------------------------------------------- the folder and its owner


def check_results_dir(root: str | os.PathLike) -> None:
    """Raise ResultsDirError when ``root`` cannot become a writable results folder (it is a
    file, lies below a file, or its nearest existing folder is not writable). Creates
    nothing, so it runs while settings are checked, before collection."""
    root = Path(root)
    for path in (root, *root.parents):
        if not path.exists():
            continue
        if not path.is_dir():
            where = "is a file" if path == root else f"lies below a file ({path})"
            raise ResultsDirError(f"results folder {root} {where}; choose another --results-dir")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ResultsDirError(f"results folder {root}: {path} is not writable; choose another --results-dir")
        return


def ensure_results_dir(root: str | os.PathLike) -> Path:
    """Create the results folder and prove it can be written (a probe file)."""
    root = Path(root)
    check_results_dir(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ResultsDirError(f"results folder {root} cannot be written: {exc.strerror or exc}; choose another --results-dir") from None
    return root


def describe_holder(holder: Mapping[str, Any] | None) -> str:
    if not holder:
        return "another process (it has not written its name yet)"
    command = f": {holder['command']}" if holder.get("command") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started_at')}{command}"


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def _process_alive(holder: Mapping[str, Any]) -> bool:
    """Whether the holder may still run: a process of this host is checked; one of
    another host cannot be, so it counts as running."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError):
        return True
    return True


class RunLock:
    """Ownership of a results folder by one process: an exclusive ``flock`` on
    ``.vlm-bench.lock``, which also names the holder (pid, host, start, command). The lock
    dies with its process, so a file that names a holder but is not locked was left by a
    run that was killed or crashed: a stale lock, taken over and reported in ``stale``.
    Where the file system has no flock (some cluster mounts), the named holder's pid is
    checked instead (on its own host only). Released, the file is emptied, not removed
    (removing it would let two later runs lock two different files)."""

    def __init__(self, path: Path, fd: int, stale: dict[str, Any] | None):
        self.path, self._fd, self.stale = path, fd, stale

    @classmethod
    def acquire(cls, results_dir: str | os.PathLike, wait_for_name: float = 2.0) -> "RunLock":
        root = ensure_results_dir(results_dir)
        path = root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ResultsDirError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
        try:
            locked = _try_flock(fd)
            previous = _read_holder(path)
            if locked is False or (locked is None and previous and _process_alive(previous)):
                deadline = time.monotonic() + wait_for_name
                while locked is False and (previous is None or not _process_alive(previous)) and time.monotonic() < deadline:
                    time.sleep(0.05)  # the holder has just locked and is writing its name over a stale one
                    previous = _read_holder(path)
                hint = f"; if that run is gone, delete {path}" if locked is None else ""
                raise ResultsDirError(
                    f"{root} is in use by another vlm-bench run ({describe_holder(previous)}); "
                    f"wait for it to finish or choose another --results-dir{hint}"
                )
            me = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now(), "command": " ".join(sys.argv)[:500]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, previous)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def _try_flock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: no flock on this file system."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise


def lock_holder(results_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The live process holding ``results_dir`` (its named holder), or None when free."""
    path = Path(results_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        locked = _try_flock(fd)
        holder = _read_holder(path)
        if locked is False:
            return holder or {}
        if locked is None and holder and _process_alive(holder):
            return holder
        return None
    finally:
        os.close(fd)


def default_results_dir(label: str) -> Path:
    """``$VLM_BENCH_RESULTS_ROOT`` (default ``vlm-results``) / ``<UTC stamp>-<label>``, the
    label made safe as a folder name."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stamp}-{label}")
    return Path(os.environ.get("VLM_BENCH_RESULTS_ROOT", "vlm-results")) / name


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


REPORT_FILES = ("report.md", "report.html", "latency.png", "categories.png", "frames_sweep.png")


def prepare_results_dir(
    results_dir: str | os.PathLike,
    fingerprint: Mapping[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    plan: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Ready ``results_dir`` for a run (its caller holds the folder's RunLock) and return
    the records a resumed run reuses (by ``dataset/id``). A fresh run refuses a directory
    holding results unless ``overwrite``, which removes the old run's files, reports and
    graded output tree; a resumed run refuses one holding another run (different
    fingerprint or shard), drops a partial last line and errored records (those items run
    again), and keeps the rest."""
    if resume and overwrite:
        raise ResultsDirError("--resume and --overwrite contradict each other; give one")
    root = Path(results_dir)
    items, run_file = root / ITEMS_FILE, root / RUN_FILE
    existing = [p for p in (items, root / SUMMARY_FILE, run_file) if p.exists()]
    reused: dict[str, dict[str, Any]] = {}
    if existing and resume:
        if run_file.exists():
            old = read_run_info(root)
            diff = fingerprint_diff(old["fingerprint"], fingerprint)
            old_shard, new_shard = (old.get("plan") or {}).get("shard"), (plan or {}).get("shard")
            if old_shard != new_shard:
                diff.append(f"shard: {_shard_text(old_shard)} -> {_shard_text(new_shard)}")
            if diff:
                raise ResultsDirError(
                    f"--resume: {root} holds a different run ({'; '.join(diff[:4])}); "
                    "keep the old settings or choose another --results-dir"
                )
        if items.exists():
            kept = reusable_records(items)
            rewrite_records(items, kept)
            reused = {record_uid(r): r for r in kept}
    elif existing and not overwrite:
        raise ResultsDirError(
            f"{root} already holds results ({existing[0].name}); add --resume to continue that run, "
            "--overwrite to replace it, or choose another --results-dir"
        )
    elif overwrite:
        for path in existing + [root / name for name in REPORT_FILES if (root / name).exists()]:
            path.unlink()
        for tree in graded_output_trees(root):
            shutil.rmtree(tree)
    return reused


def reusable_records(items: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a run that a resumed run keeps: all but errored ones and those whose
    media was missing (it may have been downloaded since)."""
    return [r for r in read_records(items) if r.get("error") is None and not r.get("missing_media")]


def resumed_records_seen_by_worker(items: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """An xdist worker's view of the resumed run, by ``dataset/id``: the records the
    controller kept (it read the file first and reports a cut-off line, so this is quiet)."""
    if not Path(items).exists():
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {record_uid(r): r for r in reusable_records(items)}


def graded_output_trees(root: Path) -> list[Path]:
    """Folders of ``root`` that hold nothing but graded ``metadata.json`` files (the
    VMEvalKit output tree a grading run writes)."""
    trees = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = [f for f in folder.rglob("*") if f.is_file()]
        if files and all(f.name == "metadata.json" and "judge" in (_read_json(f) or {}) for f in files):
            trees.append(folder)
    return trees


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _shard_text(shard: Sequence[int] | None) -> str:
    return "/".join(map(str, shard)) if shard else "none (all items)"


def read_run_info(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / RUN_FILE
    data = _read_json(path)
    if not isinstance(data, dict) or "fingerprint" not in data:
        raise ResultsDirError(f"{path}: damaged or not a vlm-bench run file (no fingerprint)")
    return data


def run_info(fingerprint: Mapping[str, Any], plan: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """run.json: the fingerprint and the run's share of the items (``plan``: shard,
    limit, categories), which merge checks."""
    return {"fingerprint": fingerprint, "id": fingerprint_id(fingerprint), "plan": dict(plan or {})}


TIMING_FIELDS = ("latency_ms",)  # what differs between two runs of the same item


def _same_result(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k not in TIMING_FIELDS} == {k: v for k, v in b.items() if k not in TIMING_FIELDS}


def merge_results(
    sources: Iterable[str | os.PathLike], out: str | os.PathLike, *, partial: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    """Merge the result folders of one run's shards into ``out``: same fingerprint and
    selection, each shard of the plan present once and finished, each item once (a
    retried shard whose records differ only in timings is accepted). With ``partial``,
    a missing or unfinished shard is merged anyway and returned among the reasons the
    merged run is incomplete. Returns (records, incomplete reasons)."""
    sources = [Path(s) for s in sources]
    seen: dict[Path, Path] = {}
    for src in sources:
        if not src.is_dir():
            raise ResultsDirError(f"{src}: no such results folder")
        if src.resolve() in seen:
            raise ResultsDirError(f"{src} is given twice (as {seen[src.resolve()]})")
        seen[src.resolve()] = src
        holder = lock_holder(src)
        if holder is not None:
            raise ResultsDirError(f"{src} is still being written by a run ({describe_holder(holder)}); merge when it ends")
    out = Path(out)
    if out.resolve() in seen:
        raise ResultsDirError(f"--out {out} is one of the folders to merge; merge into a new folder")
    infos = []
    for src in sources:
        if not (src / RUN_FILE).exists():
            raise ResultsDirError(f"{src} holds no {RUN_FILE}; is it a vlm-bench results directory?")
        infos.append(read_run_info(src))
    for src, info in zip(sources[1:], infos[1:]):
        diff = fingerprint_diff(infos[0]["fingerprint"], info["fingerprint"])
        if diff:
            raise ResultsDirError(f"cannot merge {src} with {sources[0]}: different runs ({'; '.join(diff[:4])})")
    incomplete = _plan_problems(sources, infos)
    for src in sources:
        summary = _read_json(src / SUMMARY_FILE)
        if not isinstance(summary, dict):
            incomplete.append(f"{src} did not finish (no {SUMMARY_FILE}; finish it with --resume)")
        elif summary.get("complete") is False:
            incomplete.append(f"{src} stopped early ({summary.get('items_not_run')} items not run; finish it with --resume)")
    if incomplete and not partial:
        raise ResultsDirError("incomplete set: " + "; ".join(incomplete) + " (--partial merges what there is, marked incomplete)")
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    for src in sources:
        if not (src / ITEMS_FILE).exists():
            continue
        for record in read_records(src / ITEMS_FILE):
            uid = record_uid(record)
            if uid in merged and not _same_result(merged[uid], record):
                raise ResultsDirError(
                    f"item {uid} has different results in {origin[uid]} and {src}; merge only one of them"
                )
            merged.setdefault(uid, record)
            origin.setdefault(uid, src)
    check_results_dir(out)
    if (out / ITEMS_FILE).exists():
        raise ResultsDirError(f"{out} already holds results; merge into a new directory")
    lock = RunLock.acquire(out)
    try:
        rewrite_records(out / ITEMS_FILE, merged.values())
        plan = {"shard": None, "merged_shards": sorted({tuple(i["plan"]["shard"]) for i in infos if (i.get("plan") or {}).get("shard")})}
        breakdowns = list(dict.fromkeys(tuple(b) for i in infos for b in i.get("breakdowns", [])))
        write_json_atomic(
            out / RUN_FILE,
            dict(run_info(infos[0]["fingerprint"], plan), breakdowns=breakdowns, merged_from=[str(s) for s in sources]),
        )
    finally:
        lock.release()
    return list(merged.values()), incomplete


def _plan_problems(sources: Sequence[Path], infos: Sequence[Mapping[str, Any]]) -> list[str]:
    """Refuse sources that are not shards of one plan; return the shards it lacks."""
    plans = [dict(i.get("plan") or {}) for i in infos]
    shards = [p.get("shard") for p in plans]
    if not any(shards):
        return []  # whole runs (of any selection): each item once is all that is checked
    selections = {json.dumps({k: p.get(k) for k in ("limit", "categories")}, sort_keys=True) for p in plans}
    if len(selections) > 1:
        raise ResultsDirError("cannot merge shards of different item selections (--limit / --categories differ)")
    if not all(shards):
        whole = [str(s) for s, sh in zip(sources, shards) if not sh]
        raise ResultsDirError(f"{whole[0]} is a whole run, the others are shards; merge the shards of one run")
    counts = {sh[1] for sh in shards}
    if len(counts) > 1:
        raise ResultsDirError(f"the folders are shards of different plans (of {' and '.join(map(str, sorted(counts)))} shards)")
    count = counts.pop()
    missing = sorted(set(range(count)) - {sh[0] for sh in shards})
    return [f"shard{'s' if len(missing) > 1 else ''} {', '.join(f'{i}/{count}' for i in missing)} missing"] if missing else []


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- summary


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

    def result(self, min_pass_rate: float | None = None) -> dict[str, Any]:
        summary: dict[str, Any] = self.overall.as_dict()
        summary["per_dataset"] = {k: v.as_dict() for k, v in sorted(self.per_dataset.items())}
        summary["per_category"] = {k: v.as_dict() for k, v in sorted(self.per_category.items())}
        summary["breakdowns"] = {
            name: {k: v.as_dict() for k, v in sorted(values.items())} for name, values in self.per_breakdown.items()
        }
        summary["latency_ms"] = _latency_stats(self.latencies)
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
    # items whose media the download lacks are left out of the pass rate; their count sits beside it
    missing = bool(summary.get("missing_media"))
    lines = [
        f"{'scope':<{width}}  {'passed':>6}  {'scored':>6}  {'pass rate':>9}" + ("  missing" if missing else "")
        + f"  {'95% CI':>11}  {'errors':>6}  {'truncated':>9}  {'unscored':>8}"
    ]
    for name, b in rows:
        lines.append(
            f"{name:<{width}}  {b['passed']:>6}  {b['scored']:>6}  {pct(b['pass_rate']):>9}"
            + (f"  {b.get('missing_media', 0):>7}" if missing else "")
            + f"  {interval(b['ci95']):>11}  {b['errors']:>6}  {b['truncated']:>9}  {b['unscored']:>8}"
        )
    if summary.get("min_pass_rate") is not None:
        rate = f"overall {pct(summary['pass_rate'])}"
        if summary.get("complete") is False:
            verdict = f"FAILED (run incomplete: {summary['total']} of {summary.get('items_expected')} items ran; {rate})"
        else:
            verdict = f"{'FAILED' if summary['below_min_pass_rate'] else 'met'} ({rate})"
        lines.append(f"min pass rate {pct(summary['min_pass_rate'])}: {verdict}")
    return lines
