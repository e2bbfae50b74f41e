"""MVBench: one JSON list per task (``<root>/<annotations>/<task>.json``) of
``{"video", "question", "candidates", "answer"}`` (the answer is the option text) with
optional ``start``/``end`` seconds. Each task's media sit under its own prefix and are
videos, GIFs or folders of frames; the task table lives in the dataset YAML
(``source.tasks``), as MVBench publishes it.

The data as Hugging Face serves it (OpenGVLab/MVBench): some videos sit under
``video/data0613/<prefix>`` rather than ``video/<prefix>`` (VLMEvalKit moves them,
lmms-eval falls back to them; both places are tried here), and the NTU RGB+D videos of
Fine-grained Pose are not there at all (their licence): such items are reported as
missing media, not as wrong answers. An answer that is not one of its candidates fails
that item only."""

from __future__ import annotations

import re
from pathlib import Path

from vlm_bench.config import DatasetConfig
from vlm_bench.datasets.common import (
    LETTERS,
    DatasetError,
    as_list,
    check_source_keys,
    first_existing,
    need,
    read_rows,
    source_setting,
)
from vlm_bench.types import Sample

SOURCE_KEYS = ("tasks", "frame_fps", "gif_fps")
TASK_KEYS = ("json", "prefix", "type", "bound")
MEDIA_TYPES = ("video", "gif", "frame")


def load_mvbench(dataset: DatasetConfig) -> list[Sample]:
    src = dataset.source
    check_source_keys(dataset.name, src, SOURCE_KEYS)
    tasks = src.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise DatasetError(f"dataset {dataset.name!r}: source.tasks must map task names to {{json, prefix, type, bound}}")
    root = dataset.media_root
    samples = []
    for task, spec in tasks.items():
        unknown = sorted(set(spec) - set(TASK_KEYS)) if isinstance(spec, dict) else ["(not a mapping)"]
        if unknown or spec.get("type", "video") not in MEDIA_TYPES or "json" not in spec:
            raise DatasetError(f"dataset {dataset.name!r}: task {task!r} needs json, prefix, type ({'/'.join(MEDIA_TYPES)}), bound")
        media_type = spec.get("type", "video")
        frame_fps = {"frame": source_setting(src, "frame_fps", 3.0), "gif": source_setting(src, "gif_fps", 25.0)}
        slug = re.sub(r"[^a-z0-9]+", "_", task.lower()).strip("_")
        annotation_dir = Path(dataset.path) if dataset.path else root
        for index, (where, row) in enumerate(read_rows(annotation_dir / spec["json"])):
            candidates = as_list(need(row, "candidates", where), "candidates", where)
            answer_text = str(need(row, "answer", where))
            problem = None
            if answer_text not in candidates:
                problem = f"{where}: answer {answer_text!r} is not one of the candidates {candidates}; fix the row or drop it"
            bound = None
            if spec.get("bound") and row.get("start") is not None and row.get("end") is not None:
                bound = (float(row["start"]), float(row["end"]))
            video, missing = first_existing(media_candidates(root, spec.get("prefix", ""), str(need(row, "video", where))))
            samples.append(
                Sample(
                    id=f"{slug}_{index:04d}",
                    dataset=dataset.name,
                    question=str(need(row, "question", where)),
                    answer=None if problem else LETTERS[candidates.index(answer_text)],
                    video=video,
                    options=tuple(f"({LETTERS[i]}) {c}" for i, c in enumerate(candidates)),
                    scorer=dataset.scorer or "mc",
                    category=task,
                    categories={"task": task},
                    cluster=video,
                    bound=bound,
                    frame_fps=frame_fps.get(media_type),
                    source=where,
                    missing_media=missing,
                    load_error=problem,
                )
            )
    return samples


def media_candidates(root: Path, prefix: str, name: str) -> list[Path]:
    """``<root>/<prefix>/<name>``, then its twin under ``video/data0613/``, where the
    Hugging Face download keeps some videos."""
    candidates = [root / prefix / name]
    if Path(prefix).parts[:1] == ("video",):
        candidates.append(root / "video" / "data0613" / Path(*Path(prefix).parts[1:]) / name)
    return candidates
