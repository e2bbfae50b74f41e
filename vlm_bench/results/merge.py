"""Merging the results folders of one run's shards into one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from vlm_bench.results.lock import RunLock, check_results_dir, describe_holder, lock_holder
from vlm_bench.results.resume import fingerprint_diff
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
    run_info,
    write_json_atomic,
)
from vlm_bench.types import TIMING_FIELDS




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
        summary = read_json(src / SUMMARY_FILE)
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
