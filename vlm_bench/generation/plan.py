"""What a generation run would do for each task, read from the output tree without
sending anything: the dry run (``--dry-run``) and the spending cap (``--max-generations``)
share it.

A task is ``done`` (a finished video is there), ``resume`` (a submission a killed or
timed-out run left, polled again at no new charge), ``generate`` (a new submission) or
``later`` (a new submission past --max-generations, left for a later run)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from vlm_bench.generation import tree
from vlm_bench.generation.base import GenerationTask, Generator
from vlm_bench.generation.config import GenerationSettings, GeneratorConfig
from vlm_bench.utils.http import clip


@dataclass(frozen=True)
class PlannedTask:
    task: GenerationTask
    action: str  # done, resume, generate, later
    generation_id: str | None = None


def task_action(outputs_dir: str | Path, generator: str, task: GenerationTask, *, override: bool,
                resumable: bool) -> PlannedTask:
    task_out = tree.task_output_dir(outputs_dir, generator, task)
    if not override and tree.finished_run(task_out) is not None:
        return PlannedTask(task, "done")
    if resumable and not override:
        for run in tree.interrupted_runs(task_out):
            generation_id = (run.metadata.get("output") or {}).get("generation_id")
            if generation_id:
                return PlannedTask(task, "resume", generation_id)
    return PlannedTask(task, "generate")


def plan(tasks: Sequence[GenerationTask], outputs_dir: str | Path, generator: str, *, override: bool, resumable: bool,
         max_generations: int | None = None) -> list[PlannedTask]:
    planned, new = [], 0
    for task in tasks:
        step = task_action(outputs_dir, generator, task, override=override, resumable=resumable)
        if step.action == "generate":
            new += 1
            if max_generations is not None and new > max_generations:
                step = PlannedTask(task, "later")
        planned.append(step)
    return planned


def dry_run_lines(cfg: GeneratorConfig, settings: GenerationSettings, generator: Generator,
                  planned: Sequence[PlannedTask], outputs_dir: Path) -> list[str]:
    """The dry run's report: the generator, what each task would send, the cost estimate."""
    counts = {a: sum(1 for p in planned if p.action == a) for a in ("generate", "resume", "done", "later")}
    lines = ["vlm-bench dry run: nothing is sent, uploaded or written",
             f"generator {cfg.name} ({cfg.family}, {cfg.kind}): model {cfg.model or cfg.local_build}"]
    describe = getattr(generator, "describe", None)
    if cfg.kind == "api" and callable(describe):
        info = describe()
        env = info.get("api_key_env")
        key = f"${env} {'set' if env and os.environ.get(env) else 'NOT SET: the run would stop before any task'}" if env else "no key"
        lines.append(f"provider {info['provider']}, key {key}, base URL {info.get('base_url') or 'the SDK default'}, "
                     f"{cfg.concurrency} in flight")
    lines.append(f"outputs: {outputs_dir / cfg.name}")
    lines.append(f"tasks {len(planned)}: {counts['generate']} to generate, {counts['resume']} to resume (submitted before: "
                 f"no new charge), {counts['done']} already generated, {counts['later']} left for a later run (--max-generations)")
    estimate = list_price_usd(generator)
    if cfg.kind == "api":
        if estimate is None:
            lines.append("estimated cost: unknown (no list price in the catalog entry)")
        else:
            lines.append(f"estimated cost: {counts['generate']} x {estimate:.2f} USD = {counts['generate'] * estimate:.2f} USD "
                         "(the catalog's list price; check the provider's pricing)")
    for step in planned:
        task = step.task
        if step.action == "generate":
            request = getattr(generator, "dry_run_request", None)
            sent = request(task.first_frame, task.prompt) if callable(request) else {"settings": settings.as_dict()}
            if isinstance(sent.get("prompt"), str):
                sent["prompt"] = clip(sent["prompt"], 80)
            lines.append(f"  generate {task.id}: {json.dumps(sent, ensure_ascii=False)}")
        elif step.action == "resume":
            lines.append(f"  resume   {task.id}: poll and download generation {step.generation_id}")
        else:
            lines.append(f"  {step.action:<8} {task.id}")
    return lines


def list_price_usd(generator: Generator) -> float | None:
    """One video's price from the catalog's list price (per video, or per second of the
    video an API generator asks for); None without one."""
    api = getattr(generator, "api", None)
    if api is None:
        return None
    if api.usd_per_video is not None:
        return float(api.usd_per_video)
    seconds = generator.video_seconds()
    if api.usd_per_second is not None and seconds:
        return round(api.usd_per_second * seconds, 4)
    return None
