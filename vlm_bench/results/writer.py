"""The results folder's files: ``items.jsonl`` (one record per item, appended and flushed
as each finishes), ``run.json`` (the run's fingerprint) and JSON written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from vlm_bench.types import ItemRecord


ITEMS_FILE = "items.jsonl"


SUMMARY_FILE = "summary.json"


RUN_FILE = "run.json"  # the run's fingerprint, for --resume and merge


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
        line = record_line(record)
        try:
            self.start()
            self._fh.write(line)
            self._fh.flush()
        except OSError as exc:
            raise ResultsWriteError(exc.errno, f"cannot write {self.path}: {exc.strerror or exc} "
                                               f"({self.count} records written before it are kept)") from exc
        self.count += 1

    def close(self) -> None:
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            raise ResultsWriteError(exc.errno, f"cannot write {self.path}: {exc.strerror or exc}") from exc
        finally:
            try:
                fh.close()
            except OSError:
                pass  # what could not be flushed is lost either way; the whole records before it stay


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


class ResultsWriteError(OSError):
    """A record or the summary could not be written (a full disk, a file that grew past a
    limit, a folder gone); the records written before it are whole and --resume keeps them."""

    def __str__(self) -> str:
        return str(self.strerror)


def default_results_dir(label: str) -> Path:
    """``$VLM_BENCH_RESULTS_ROOT`` (default ``vlm-results``) / ``<UTC stamp>-<label>``, the
    label made safe as a folder name."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stamp}-{label}")
    return Path(os.environ.get("VLM_BENCH_RESULTS_ROOT", "vlm-results")) / name


def fingerprint_id(fingerprint: Mapping[str, Any]) -> str:
    canonical = json.dumps(fingerprint, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_run_info(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / RUN_FILE
    data = read_json(path)
    if not isinstance(data, dict) or "fingerprint" not in data:
        raise ResultsDirError(f"{path}: damaged or not a vlm-bench run file (no fingerprint)")
    return data


def run_info(fingerprint: Mapping[str, Any], plan: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """run.json: the fingerprint and the run's share of the items (``plan``: shard,
    limit, categories), which merge checks."""
    return {"fingerprint": fingerprint, "id": fingerprint_id(fingerprint), "plan": dict(plan or {})}


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON through a temporary file and a rename: the old file or the new one, never
    half of one (and no temporary file left where the write fails)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise