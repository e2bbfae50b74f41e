"""The native format: one JSON object per line.

    {"id": "q1", "video": "clips/a.mp4", "question": "...", "answer": "B",
     "options": ["A. ...", "B. ..."], "scorer": "mc", "category": "motion"}

``video`` is a path, or a mapping with ``path`` plus per-item frame settings
(``max_frames``, ``strategy``, ``fps``, ``stride``). ``frames`` lists image paths instead
(an image question is one frame). Relative paths resolve against the dataset's media root
(the JSONL file's folder unless the dataset YAML sets ``root``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping

from vlm_bench.config import ConfigError, DatasetConfig, check_video
from vlm_bench.datasets.common import DatasetError
from vlm_bench.scoring import check_scorer
from vlm_bench.types import NO_MAPPING, Sample

ITEM_KEYS = ("id", "video", "frames", "question", "options", "answer", "scorer", "category", "metadata")


MAX_PROBLEMS_SHOWN = 20


def load_jsonl(dataset: DatasetConfig) -> list[Sample]:
    path = Path(dataset.path)
    samples: list[Sample] = []
    first_line: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")  # a UTF-8 BOM (Windows editors) is not part of line 1
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read dataset: {exc}") from exc
    problems: list[str] = []  # every bad line, so one run lists them all
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        try:
            sample = parse_item(raw, dataset, where)
        except (ConfigError, ValueError) as exc:
            problems.append(f"{where}: {_strip_where(str(exc), where)}")
            continue
        if sample.id in first_line:
            problems.append(f"{where}: duplicate id {sample.id!r} (first on line {first_line[sample.id]})")
            continue
        first_line[sample.id] = lineno
        samples.append(sample)
    if len(problems) == 1:
        raise DatasetError(problems[0])
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise DatasetError(f"{path}: {len(problems)} bad lines (fix them all, then run again):\n  "
                           + "\n  ".join(shown) + more)
    return samples


def _strip_where(message: str, where: str) -> str:
    return message[len(where) + 2 :] if message.startswith(where + ": ") else message


def _text(raw: Mapping[str, Any], key: str, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise ValueError(f"missing {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{key!r} must be a string, got {type(value).__name__}")
    text = str(value)
    if required and not text.strip():
        raise ValueError(f"{key!r} is empty")
    return text


def parse_item(raw: Any, dataset: DatasetConfig, where: str) -> Sample:
    if not isinstance(raw, dict):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    unknown = [k for k in raw if k not in ITEM_KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (allowed: {', '.join(ITEM_KEYS)})")
    item_id = _text(raw, "id")
    question = _text(raw, "question")
    answer = _text(raw, "answer")
    root = dataset.media_root

    video, frames, overrides = None, None, {}
    if ("video" in raw) == ("frames" in raw):
        raise ValueError("give exactly one of 'video' (a video path) or 'frames' (a list of image paths)")
    if "video" in raw:
        spec = raw["video"]
        if isinstance(spec, dict):
            spec = dict(spec)
            rel = spec.pop("path", None)
            if not isinstance(rel, str) or not rel:
                raise ValueError("'video' as a mapping needs 'path' (the video file)")
            overrides = check_video(f"{where}: video", spec)
        elif isinstance(spec, str) and spec:
            rel = spec
        else:
            raise ValueError("'video' must be a path or a mapping with 'path'")
        video = sys.intern(str(root / rel))  # many questions name one video: one string for them
    else:
        spec = raw["frames"]
        if isinstance(spec, str):
            spec = [spec]
        if not isinstance(spec, list) or not spec or not all(isinstance(p, str) and p for p in spec):
            raise ValueError("'frames' must be a non-empty list of image paths")
        frames = tuple(str(root / p) for p in spec)

    options = raw.get("options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
        raise ValueError("'options' must be a list of non-empty strings")

    scorer_spec = raw.get("scorer", dataset.scorer or ("mc" if options else "exact"))
    if isinstance(scorer_spec, str):
        scorer_spec = sys.intern(scorer_spec)
    if isinstance(scorer_spec, dict):
        scorer_args = dict(scorer_spec)
        scorer = scorer_args.pop("name", None)
    else:
        scorer, scorer_args = scorer_spec, {}
    if not isinstance(scorer, str):
        raise ValueError("'scorer' must be a scorer name or a mapping with 'name'")
    check_scorer(scorer, scorer_args, answer, options)

    category = raw.get("category")
    return Sample(
        id=item_id,
        dataset=dataset.name,
        question=question,
        answer=answer,
        video=video,
        frames=frames,
        options=tuple(options),
        scorer=scorer,
        scorer_args=scorer_args or NO_MAPPING,
        category=None if category is None else sys.intern(str(category)),
        video_overrides=overrides or NO_MAPPING,
        source=where,
    )
