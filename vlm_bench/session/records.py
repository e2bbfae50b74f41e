"""The controller's side of a run's results folder: claim it (one run per folder; fresh,
``--resume`` or ``--overwrite``), write each item's record once as it arrives, keep the
running summary, and write ``summary.json`` at the end. Shared by the video-QA and the
generation sessions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from vlm_bench.results import (
    SUMMARY_FILE,
    ResultsWriteError,
    ResultsWriter,
    RunLock,
    RunSummary,
    build_manifest,
    prepare_results_dir,
    record_uid,
    utc_now,
    write_json_atomic,
)


class RunRecords:
    """Records of one run as they arrive; ``keep`` holds them all for summaries that need
    every record at the end (generation), else only the counts are kept."""

    def __init__(self, results_dir: Path, run_info: Mapping[str, Any], breakdowns: Iterable[Iterable[str]] = (),
                 keep: bool = False):
        self.results_dir = results_dir
        self.writer = ResultsWriter(results_dir, run_info)
        self.lock: RunLock | None = None
        self.started_at = utc_now()
        self.running = RunSummary(breakdowns)
        self.recorded: set[str] = set()  # uids of the items with a record
        self.kept: list[dict[str, Any]] | None = [] if keep else None
        self.reused: dict[str, dict[str, Any]] = {}  # dataset/id -> record of the resumed run
        self.reused_count = 0
        self.scored = self.passed = 0
        self.workers: dict[str, dict[str, Any]] = {}

    def claim(self, fingerprint: Mapping[str, Any], *, resume: bool, overwrite: bool,
              plan: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Lock the results folder (a second run is refused with ResultsDirError, naming
        the holder) and ready it; returns the stale holder taken over, if any."""
        if self.lock is not None:
            return None
        try:
            self.lock = RunLock.acquire(self.results_dir)
            self.reused = prepare_results_dir(self.results_dir, fingerprint, resume=resume, overwrite=overwrite, plan=plan)
        except BaseException:
            self.release()
            raise
        return self.lock.stale

    def add(self, record: dict[str, Any], *, reused: bool = False, worker: Mapping[str, Any] | None = None) -> bool:
        """Write a record (one per item, whatever a test does) and count it; False when
        the item already has one."""
        uid = sys.intern(record_uid(record))  # one copy of the string per item
        if uid in self.recorded:
            return False
        self.recorded.add(uid)
        if reused:
            self.reused_count += 1
        else:
            self.writer.write(record)
        self.running.add(record)
        if self.kept is not None:
            self.kept.append(record)
        if record.get("passed") is not None or record.get("error") is not None:
            self.scored += 1
            self.passed += bool(record.get("passed"))
        if worker:
            self.workers[worker["worker"]] = dict(worker)
        return True

    def finish(self, fields: Mapping[str, Any], manifest_config: Mapping[str, Any], *,
               min_pass_rate: float | None = None, manifest_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Close items.jsonl (an empty run still leaves it and run.json) and write
        summary.json: the pass rates, then ``fields``, the workers and the manifest."""
        self.writer.close()
        if not self.recorded:
            self.writer.start()
            self.writer.close()
        out = self.running.result(min_pass_rate)
        out.update(fields)
        out["results_dir"] = str(self.results_dir)
        out["workers"] = dict(sorted(self.workers.items()))
        out["manifest"] = {**build_manifest(manifest_config, self.started_at), **(manifest_extra or {})}
        try:
            write_json_atomic(self.results_dir / SUMMARY_FILE, out)
        except OSError as exc:
            raise ResultsWriteError(exc.errno, f"cannot write {self.results_dir / SUMMARY_FILE}: {exc.strerror or exc}") from exc
        return out

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
