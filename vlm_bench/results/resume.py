"""Readying a results folder for a run: a fresh run refuses old results unless told to
overwrite them; ``--resume`` checks that the folder holds the same run and keeps its
finished records."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from vlm_bench.results.writer import (
    ITEMS_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    ResultsDirError,
    read_json,
    read_records,
    read_run_info,
    record_uid,
    rewrite_records,
)


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
    """The records of a run that a resumed run keeps: one per item (the last whole one, where
    a line was written twice), and of those all but errored ones and those whose media was
    missing (it may have been downloaded since)."""
    last: dict[str, dict[str, Any]] = {}
    records = read_records(items)
    for record in records:
        last[record_uid(record)] = record  # the first one's place, the last one's content
    if len(last) < len(records):
        warnings.warn(f"{items}: {len(records) - len(last)} item(s) had more than one record; kept the last of each")
    return [r for r in last.values() if r.get("error") is None and not r.get("missing_media")]


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
        if files and all(f.name == "metadata.json" and "judge" in (read_json(f) or {}) for f in files):
            trees.append(folder)
    return trees


def _shard_text(shard: Sequence[int] | None) -> str:
    return "/".join(map(str, shard)) if shard else "none (all items)"
