"""VMEvalKit's output tree, written crash-safe:

    <outputs>/<generator>/<domain>_task/<task_id>/<run_id>/
        video/video.mp4
        question/ first_frame.png, final_frame.png, prompt.txt, question_metadata.json, ground_truth.mp4
        metadata.json   {inference, input, output, paths, question_data}  (+ generation: the settings)

``<outputs>`` is one experiment folder (VMEvalKit's ``data/outputs/<experiment>``), the
folder the ``vmevalkit_outputs`` dataset reads. A run is built in a hidden staging folder
beside its final place (``.<run_id>.partial``) and renamed into place only when its video
has been written and checked, so a killed process leaves either a complete run or a
staging folder that the next run clears (or resumes, for a generator that stored a
generation id there). A per-task lock file keeps two processes off one task.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

from vlm_bench.generation.base import GenerationTask
from vlm_bench.results import write_json_atomic

VIDEO_NAME = "video.mp4"
METADATA = "metadata.json"
STAGING_SUFFIX = ".partial"
QUESTION_FILES = ("first_frame.png", "final_frame.png", "prompt.txt", "question_metadata.json", "ground_truth.mp4")


def task_output_dir(outputs: str | Path, generator: str, task: GenerationTask) -> Path:
    return Path(outputs) / generator / f"{task.domain}_task" / task.task_id


def new_run_id(generator: str, task: GenerationTask, task_out: Path, now: datetime) -> str:
    """VMEvalKit's ``<model>_<task_id>_<YYYYmmdd_HHMMSS>``, with a counter when a run of
    the same second exists."""
    base = f"{generator}_{task.task_id}_{now.strftime('%Y%m%d_%H%M%S')}"
    run_id, n = base, 1
    while (task_out / run_id).exists() or (task_out / f".{run_id}{STAGING_SUFFIX}").exists():
        n += 1
        run_id = f"{base}_{n}"
    return run_id


@dataclass(frozen=True)
class Run:
    dir: Path
    metadata: Mapping[str, Any]

    @property
    def status(self) -> str | None:
        return (self.metadata.get("inference") or {}).get("status")

    @property
    def video(self) -> Path | None:
        path = (self.metadata.get("output") or {}).get("video_path")
        if path and Path(path).is_file():
            return Path(path)
        found = sorted((self.dir / "video").glob("*.mp4"))
        return found[0] if found else None

    @property
    def timestamp(self) -> str:
        return str((self.metadata.get("inference") or {}).get("timestamp") or "")


def read_metadata(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((run_dir / METADATA).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def runs(task_out: Path) -> list[Run]:
    """The committed runs of one task, latest first (by metadata timestamp, then name)."""
    if not task_out.is_dir():
        return []
    found = []
    for run_dir in task_out.iterdir():
        if run_dir.name.startswith(".") or not run_dir.is_dir():
            continue
        meta = read_metadata(run_dir)
        if meta is not None:
            found.append(Run(run_dir, meta))
    found.sort(key=lambda r: (r.timestamp, r.dir.name), reverse=True)
    return found


def finished_run(task_out: Path) -> Run | None:
    """The latest successful run whose video is there, if any."""
    for run in runs(task_out):
        if run.status == "success" and run.video is not None:
            return run
    return None


def interrupted_runs(task_out: Path) -> list[Run]:
    """Staging folders a killed process left (call with the task lock held)."""
    if not task_out.is_dir():
        return []
    return [Run(p, read_metadata(p) or {}) for p in sorted(task_out.glob(f".*{STAGING_SUFFIX}")) if p.is_dir()]


@contextmanager
def task_lock(task_out: Path) -> Iterator[None]:
    """Hold the task's lock (blocking): a second process working on the same task waits,
    then finds it finished. The kernel drops the lock when its holder dies."""
    task_out.mkdir(parents=True, exist_ok=True)
    with open(task_out / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Staging:
    """One run being built: its hidden folder, its question copy and metadata.json."""

    def __init__(self, task_out: Path, run_id: str):
        self.task_out = task_out
        self.run_id = run_id
        self.final_dir = task_out / run_id
        self.dir = task_out / f".{run_id}{STAGING_SUFFIX}"
        (self.dir / "video").mkdir(parents=True, exist_ok=True)
        (self.dir / "question").mkdir(exist_ok=True)

    @property
    def video_path(self) -> Path:
        """Where the generator writes (inside the staging folder)."""
        return self.dir / "video" / VIDEO_NAME

    def copy_question(self, task: GenerationTask) -> None:
        for name in QUESTION_FILES:
            src = Path(task.task_dir) / name
            if src.is_file():
                shutil.copyfile(src, self.dir / "question" / name)

    def write_metadata(self, document: Mapping[str, Any]) -> None:
        write_json_atomic(self.dir / METADATA, document)

    def commit(self, keep_video: bool) -> Path:
        """Rename the staging folder into place; a failed run keeps no video (readers take
        any run with a video as a generated one)."""
        if not keep_video:
            for video in (self.dir / "video").glob("*"):
                video.unlink()
        os.replace(self.dir, self.final_dir)
        _fsync_dir(self.task_out)
        return self.final_dir


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def vmevalkit_metadata(
    *,
    run_id: str,
    model: str,
    timestamp: str | None,
    status: str,
    duration_seconds: float | None,
    error: str | None,
    prompt: str | None,
    image_path: str,
    question_id: str,
    task_category: str,
    video_path: str | None,
    generation_id: str | None,
    video_url: str | None,
    inference_dir: str,
    video_dir: str | None,
    question_dir: str,
    question_data: Mapping[str, Any],
) -> dict[str, Any]:
    """The five sections of VMEvalKit's metadata.json, in its order (also what grading
    writes beside the judged videos)."""
    return {
        "inference": {
            "run_id": run_id,
            "model": model,
            "timestamp": timestamp,
            "status": status,
            "duration_seconds": None if duration_seconds is None else round(duration_seconds, 3),
            "error": error,
        },
        "input": {"prompt": prompt, "image_path": image_path, "question_id": question_id, "task_category": task_category},
        "output": {"video_path": video_path, "generation_id": generation_id, "video_url": video_url},
        "paths": {"inference_dir": inference_dir, "video_dir": video_dir, "question_dir": question_dir},
        "question_data": dict(question_data),
    }


def metadata_document(
    *,
    task: GenerationTask,
    generator: str,
    run_id: str,
    run_dir: Path,
    timestamp: str,
    status: str,
    duration_seconds: float | None,
    error: str | None,
    generation_id: str | None,
    video_url: str | None = None,
    video: bool = False,
    generation: Mapping[str, Any] | None = None,
    rules: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A generated run's metadata.json; its paths point at the run's final place; with
    ``rules``, the video's rule scores (video_rules)."""
    video_dir = run_dir / "video"
    question_data = dict(task.question_data)
    question_data.setdefault("id", task.task_id)
    question_data.setdefault("domain", task.domain)
    document = vmevalkit_metadata(
        run_id=run_id, model=generator, timestamp=timestamp, status=status, duration_seconds=duration_seconds,
        error=error, prompt=task.prompt, image_path=str(task.first_frame), question_id=task.task_id,
        task_category=task.domain, video_path=str(video_dir / VIDEO_NAME) if video else None,
        generation_id=generation_id, video_url=video_url, inference_dir=str(run_dir), video_dir=str(video_dir),
        question_dir=str(run_dir / "question"), question_data=question_data,
    )
    if generation is not None:
        document["generation"] = dict(generation)
    if rules is not None:
        document["rules"] = dict(rules)
    return document


def now_local() -> datetime:
    """VMEvalKit stamps runs with local time."""
    return datetime.now()


# ---------------------------------------------------------------- reading a whole tree


def tree_stats(outputs: str | Path) -> dict[str, dict[str, Any]]:
    """Per generator folder: tasks tried, tasks whose latest run succeeded, and the mean
    generation time of those runs (from metadata.json; runs without one are counted as
    generated when they hold a video)."""
    stats: dict[str, dict[str, Any]] = {}
    root = Path(outputs)
    if not root.is_dir():
        return stats
    for gen_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        tried = generated = 0
        seconds: list[float] = []
        for task_out in sorted(gen_dir.glob("*_task/*")):
            if not task_out.is_dir():
                continue
            task_runs = runs(task_out)
            flat_video = sorted((task_out / "video").glob("*.mp4"))  # VMEvalKit's newer flat layout
            if not task_runs and not flat_video:
                continue
            tried += 1
            if flat_video and not task_runs:
                generated += 1
                continue
            latest = task_runs[0]
            if latest.status == "success" and latest.video is not None:
                generated += 1
                took = (latest.metadata.get("inference") or {}).get("duration_seconds")
                if isinstance(took, (int, float)):
                    seconds.append(float(took))
        if tried:
            stats[gen_dir.name] = {
                "tasks": tried,
                "generated": generated,
                "success_rate": round(generated / tried, 6),
                "seconds_per_video": round(sum(seconds) / len(seconds), 3) if seconds else None,
            }
    return stats
