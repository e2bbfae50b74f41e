"""Per-item results and the run summary, one module per concern: ``writer`` (items.jsonl,
run.json), ``lock`` (one run per folder), ``resume`` (readying a folder, --resume),
``merge`` (shards into one), ``summary`` (pass rates and the table) and ``manifest``
(what made the numbers). The names below are the package's public API."""

from vlm_bench.results.lock import LOCK_FILE, RunLock, check_results_dir, describe_holder, ensure_results_dir, lock_holder
from vlm_bench.results.manifest import build_manifest, git_commit, package_versions, utc_now
from vlm_bench.results.merge import merge_results
from vlm_bench.results.resume import (
    fingerprint_diff,
    graded_output_trees,
    prepare_results_dir,
    resumed_records_seen_by_worker,
    reusable_records,
    settings_diff,
)
from vlm_bench.results.summary import RateBucket, RunSummary, fmt_interval, fmt_rate, format_table, summarize
from vlm_bench.results.writer import (
    ITEMS_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    ResultsDirError,
    ResultsWriteError,
    ResultsWriter,
    default_results_dir,
    fingerprint_id,
    read_records,
    read_run_info,
    record_line,
    record_uid,
    rewrite_records,
    run_info,
    write_json_atomic,
)

__all__ = [
    "ITEMS_FILE", "LOCK_FILE", "RUN_FILE", "SUMMARY_FILE", "RateBucket", "ResultsDirError", "ResultsWriteError", "ResultsWriter", "RunLock",
    "RunSummary", "build_manifest", "check_results_dir", "default_results_dir", "describe_holder", "ensure_results_dir",
    "fingerprint_diff", "fingerprint_id", "fmt_interval", "fmt_rate", "format_table", "git_commit", "graded_output_trees",
    "lock_holder", "merge_results", "package_versions", "prepare_results_dir", "read_records", "read_run_info",
    "record_line", "record_uid", "resumed_records_seen_by_worker", "reusable_records", "rewrite_records", "run_info",
    "settings_diff", "summarize", "utc_now", "write_json_atomic",
]
