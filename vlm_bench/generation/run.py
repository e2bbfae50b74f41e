"""One task pair through a generator into VMEvalKit's tree, as a plain function of the
runner; the pytest plugin and the CLI share it.

For each task: under the task's lock, a finished run is reused (unless ``override``);
otherwise a staging run folder gets the question copy and a ``running`` metadata.json,
the generator writes the video there, the video is decoded and checked (frame count and
size as asked), metadata.json gets the outcome, and the folder is renamed into place.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from vlm_bench.config import DatasetConfig
from vlm_bench.datasets import DatasetError
from vlm_bench.datasets.vmevalkit import read_metadata
from vlm_bench.generation import tree
from vlm_bench.generation.base import GenerationResult, GenerationTask, Generator, create_generator
from vlm_bench.generation.config import GenerationSettings, GeneratorConfig
from vlm_bench.types import ItemRecord, Sample

KIND = "vmevalkit-generation"
SCORER = "generation"


class VideoCheckError(Exception):
    pass


def tasks_from_samples(samples: Iterable[Sample], datasets: Sequence[DatasetConfig]) -> list[GenerationTask]:
    """Task pairs from the items of VMEvalKit-format datasets (``--dataset vmevalkit``)."""
    formats = {d.name: d.format for d in datasets}
    tasks = []
    for sample in samples:
        if formats.get(sample.dataset) != "vmevalkit":
            raise DatasetError(
                f"dataset {sample.dataset!r} is not made of VMEvalKit task pairs (format {formats.get(sample.dataset)!r}); "
                "generation needs --dataset vmevalkit --dataset-root <questions folder> or another format: vmevalkit dataset"
            )
        task_dir = Path(sample.source)
        domain, _, task_id = sample.id.partition("/")
        tasks.append(GenerationTask(
            domain=domain,
            task_id=task_id,
            task_dir=str(task_dir),
            prompt=(task_dir / "prompt.txt").read_text(encoding="utf-8").strip(),
            dataset=sample.dataset,
            question_data=dict(read_metadata(task_dir)),
        ))
    return tasks


def check_video(path: Path, expected: Mapping[str, Any]) -> dict[str, Any]:
    """Decode every frame (OpenCV, sequentially); the count and size must be those asked
    for (where known)."""
    import cv2

    if not path.is_file() or path.stat().st_size == 0:
        raise VideoCheckError(f"no video written at {path}")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoCheckError("the video does not open")
        fps = cap.get(cv2.CAP_PROP_FPS) or None
        count, shape = 0, None
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if shape is not None and frame.shape != shape:
                raise VideoCheckError(f"frame {count} has size {frame.shape[:2]}, the first had {shape[:2]}")
            shape, count = frame.shape, count + 1
    finally:
        cap.release()
    if not count:
        raise VideoCheckError("no frame of the video decodes")
    found = {"num_frames": count, "height": int(shape[0]), "width": int(shape[1]), "fps": round(fps, 3) if fps else None}
    for key in ("num_frames", "height", "width"):
        want = expected.get(key)
        if want is not None and found[key] != want:
            raise VideoCheckError(f"the video has {key} {found[key]}, asked for {want}")
    return found


class GenerationRunner:
    """The session's generator (loaded once) and the output tree it fills."""

    def __init__(
        self,
        cfg: GeneratorConfig,
        settings: GenerationSettings,
        outputs_dir: str | os.PathLike,
        *,
        override: bool = False,
        generator: Generator | None = None,
        max_generations: int | None = None,
        rules: bool = True,
    ):
        self.cfg = cfg
        self.settings = settings
        self.outputs_dir = Path(outputs_dir)
        self.override = override
        self.generator = generator
        self.load_seconds = 0.0
        self.max_generations = max_generations  # new submissions this runner may make
        self.new_generations = 0
        self.rules = rules  # rule scores for each video made (--score none: not)
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: dict[str, Future] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.cfg.name

    def load(self) -> None:
        if self.generator is None:
            self.generator = create_generator(self.cfg, self.settings)
        if getattr(self.generator, "load_count", 0) == 0:
            started = time.perf_counter()
            self.generator.load()
            self.load_seconds += time.perf_counter() - started

    @property
    def backend(self) -> str:
        """What makes the videos, for the records: the engine's name (diffusers), else the kind."""
        return getattr(self.generator, "backend", None) or self.cfg.kind

    @property
    def load_count(self) -> int:
        return getattr(self.generator, "load_count", 0) if self.generator else 0

    # ------------------------------------------------------------ tasks

    def run(self, task: GenerationTask) -> tuple[ItemRecord, bool]:
        """(record, reused): the task's outcome, reused when a finished run exists."""
        with self._lock:
            future = self._inflight.pop(task.uid, None)
        try:
            return future.result() if future is not None else self._run(task)
        except OSError as exc:  # a full disk, a lost mount: this task fails, the session goes on
            return self._not_sent(task, f"cannot write the run under {self.outputs_dir}: {exc}"), False

    def ahead_limit(self) -> int:
        """Tasks started ahead of their turn at most: the generator's concurrency less the
        one waited on."""
        return max(1, getattr(self.generator, "concurrency", 1)) - 1

    def prefetch(self, upcoming: Sequence[GenerationTask]) -> None:
        """Start upcoming tasks in the background, up to the generator's concurrency
        (API generators: several submissions in flight; local pipelines: none)."""
        limit = self.ahead_limit()
        if limit < 1:
            return
        if self._pool is None:
            # one more worker than queued tasks: the task the caller waits on keeps running in the pool
            self._pool = ThreadPoolExecutor(max_workers=limit + 1, thread_name_prefix="vlm-bench-generate")
        with self._lock:
            for task in upcoming:
                if len(self._inflight) >= limit:
                    break
                if task.uid not in self._inflight:
                    self._inflight[task.uid] = self._pool.submit(self._run, task)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self.generator is not None and hasattr(self.generator, "close"):
            self.generator.close()

    def _run(self, task: GenerationTask) -> tuple[ItemRecord, bool]:
        task_out = tree.task_output_dir(self.outputs_dir, self.name, task)
        started = time.perf_counter()
        with tree.task_lock(task_out):
            done = tree.finished_run(task_out)
            if done is not None and not self.override:
                return self._reused_record(task, done), True
            resume = self._clear_interrupted(task_out)
            now = tree.now_local()
            if resume is not None:  # a killed run's submission: poll it again rather than pay twice
                run_id = resume.dir.name[1 : -len(tree.STAGING_SUFFIX)]
                resume_id = (resume.metadata.get("output") or {}).get("generation_id")
                timestamp = resume.timestamp or now.isoformat()
            else:
                with self._lock:
                    over = self.max_generations is not None and self.new_generations >= self.max_generations
                    self.new_generations += not over
                if over:
                    return self._not_sent(task, f"not sent: --max-generations {self.max_generations} reached"), False
                run_id, resume_id, timestamp = tree.new_run_id(self.name, task, task_out, now), None, now.isoformat()
            staging = tree.Staging(task_out, run_id)
            staging.copy_question(task)
            document = dict(task=task, generator=self.name, run_id=run_id, run_dir=staging.final_dir,
                            timestamp=timestamp, generation=self.describe())

            def submitted(generation_id: str | None) -> None:  # stored before the generator polls
                staging.write_metadata(tree.metadata_document(status="running", duration_seconds=None, error=None,
                                                              generation_id=generation_id, **document))

            submitted(resume_id)
            result = self._generate(task, staging.video_path, resume_id, submitted)
            if result.status == "pending" and result.generation_id:  # submitted, not fetched: the next run polls it
                error = result.error or "generation not finished"
                staging.write_metadata(tree.metadata_document(status="pending", duration_seconds=result.duration_seconds,
                                                              error=error, generation_id=result.generation_id, **document))
                return self._record(task, staging.dir, run_id, result, None, error, time.perf_counter() - started), False
            elsewhere = Path(result.video_path) if result.success and result.video_path else None
            if elsewhere is not None and elsewhere != staging.video_path and elsewhere.is_file():
                shutil.move(elsewhere, staging.video_path)  # a wrapper that picked its own file name
            checked, error = None, result.error
            if result.success:
                try:
                    checked = check_video(staging.video_path, self.expected(result))
                except VideoCheckError as exc:
                    error = f"generated video rejected: {exc}"
            ok = checked is not None
            rules = rule_scores(task, staging.video_path) if ok and self.rules else None
            staging.write_metadata(tree.metadata_document(
                rules=rules,
                status="success" if ok else "failed",
                duration_seconds=result.duration_seconds,
                error=None if ok else (error or "generation failed"),
                generation_id=result.generation_id or resume_id or run_id,
                video_url=result.video_url,
                video=ok,
                **document,
            ))
            run_dir = staging.commit(keep_video=ok)
        seconds = time.perf_counter() - started
        record = self._record(task, run_dir, run_id, result, checked, None if ok else (error or "generation failed"), seconds)
        if rules is not None:
            record = replace(record, meta={**record.meta, "rules": rules})
        return record, False

    def _clear_interrupted(self, task_out: Path) -> tree.Run | None:
        """Remove what killed runs left, except one a resumable generator can pick up
        (it stored its generation id before polling)."""
        keep = None
        for run in tree.interrupted_runs(task_out):
            gen_id = (run.metadata.get("output") or {}).get("generation_id")
            if keep is None and gen_id and getattr(self.generator, "resumable", False) and not self.override:
                keep = run
                continue
            shutil.rmtree(run.dir, ignore_errors=True)
        return keep

    def _generate(self, task: GenerationTask, out: Path, resume_id: str | None, submitted) -> GenerationResult:
        if not task.first_frame.is_file():
            return GenerationResult(False, None, f"{task.task_dir}: a VMEvalKit task needs first_frame.png", 0.0, "",
                                    self.name, "failed")
        try:
            return self.generator.generate(task.first_frame, task.prompt, self.settings.duration, out,
                                           resume_id=resume_id, on_submitted=submitted)
        except Exception as exc:  # a generator must return failures; never lose the task over one that raises
            return GenerationResult(False, None, f"{type(exc).__name__}: {exc}", 0.0, "", self.name, "failed")

    def expected(self, result: GenerationResult) -> dict[str, Any]:
        """What the video must hold: what the generator says it asked for, else the settings."""
        meta = result.metadata or {}
        return {k: meta.get(k, getattr(self.settings, k)) for k in ("num_frames", "height", "width")}

    def describe(self) -> dict[str, Any]:
        """The generation settings written into metadata.json (beside VMEvalKit's sections)."""
        return {
            "generator": self.name,
            "family": self.cfg.family,
            "engine": self.cfg.engine,
            "model": self.cfg.model or self.cfg.local_build,
            "revision": self.cfg.revision,
            "pipeline": self.cfg.pipeline,
            "settings": self.settings.as_dict(),
            "call_args": dict(self.cfg.call_args),
            "preset": dict(self.cfg.preset) if self.cfg.preset else None,
        }

    # ------------------------------------------------------------ records

    def _record(self, task: GenerationTask, run_dir: Path | None, run_id: str, result: GenerationResult,
                checked: Mapping[str, Any] | None, error: str | None, seconds: float) -> ItemRecord:
        ok = error is None
        return self._task_record(
            task,
            prediction=str(run_dir / "video" / tree.VIDEO_NAME) if ok else None,
            score=1.0 if ok else 0.0,
            passed=ok,
            latency_ms=round(seconds * 1000, 3),
            error=error,
            video=dict(checked) if checked else None,
            meta={
                "kind": KIND,
                "generator": self.name,
                "run_id": run_id or None,
                "inference_dir": str(run_dir) if run_dir else None,
                "generation_id": result.generation_id or run_id or None,
                "generation_seconds": round(result.duration_seconds, 3),
                "status": result.status if ok or result.status == "pending" else "failed",
                "reused": False,
                "result_metadata": _plain_json(result.metadata),
            },
        )

    def _task_record(self, task: GenerationTask, **outcome: Any) -> ItemRecord:
        """A task's record: what every generation record holds, and ``outcome`` (prediction,
        score, passed, latency_ms, error, video, meta)."""
        return ItemRecord(
            id=task.id, dataset=task.dataset, model=self.name, backend=self.backend, quant="none",
            category=task.domain, question=task.prompt, answer=None, scorer=SCORER, truncated=False, tokens=None,
            decode=self.settings.as_dict(), categories={"domain": task.domain}, cluster=task.task_dir,
            media=str(task.first_frame), preset=self.preset_summary(), **outcome,
        )

    def preset_summary(self) -> dict[str, Any] | None:
        """The record's account of the --preset the generator ran with."""
        if not self.cfg.preset:
            return None
        from vlm_bench.generation.catalog import preset_source_text

        return {"name": self.cfg.preset["name"], "source": preset_source_text(self.cfg.preset["source"])}

    def _not_sent(self, task: GenerationTask, error: str) -> ItemRecord:
        result = GenerationResult(False, None, error, 0.0, "", self.name, "failed")
        return self._record(task, None, "", result, None, error, 0.0)

    def _reused_record(self, task: GenerationTask, run: tree.Run) -> ItemRecord:
        inference = run.metadata.get("inference") or {}
        took = inference.get("duration_seconds")
        return self._task_record(
            task, prediction=str(run.video), score=1.0, passed=True,
            latency_ms=round(took * 1000, 3) if isinstance(took, (int, float)) else None, error=None, video=None,
            meta={"kind": KIND, "generator": self.name, "run_id": run.dir.name, "inference_dir": str(run.dir),
                  "generation_id": (run.metadata.get("output") or {}).get("generation_id"),
                  "generation_seconds": took, "reused": True},
        )


def rule_scores(task: GenerationTask, video: Path) -> dict[str, Any]:
    """The video's rule scores against its task (video_rules); a video they cannot read
    says why instead."""
    from vlm_bench.video_rules import score_video

    folder = Path(task.task_dir)
    try:
        return score_video(video, folder / "first_frame.png", folder / "final_frame.png", task.domain,
                           task.question_data).as_dict()
    except Exception as exc:
        return {"judgeable": False, "reason": f"rule scores failed: {type(exc).__name__}: {exc}"}


def _plain_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
