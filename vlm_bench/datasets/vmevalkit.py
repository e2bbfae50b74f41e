"""VMEvalKit task pairs: ``<root>/<domain>_task/<task_id>/`` with ``first_frame.png``,
``prompt.txt`` and optionally ``final_frame.png``, ``ground_truth.mp4``,
``question_metadata.json`` and ``goal.txt``.

Each task becomes one item. The model sees the ground-truth video where there is one,
else the first frame. The question comes from the metadata when it holds a checkable
answer (chess ``mate_moves``, maze ``solution_length``, sudoku ``solution``, a rotation
angle); otherwise from a goal text (``goal`` / ``goal.txt``) or the prompt alone, and the
item is unscored. Question wording lives in the dataset YAML (``prompt.vmevalkit_*``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from vlm_bench.config import DatasetConfig
from vlm_bench.datasets.common import DatasetError, check_source_keys, source_setting
from vlm_bench.types import Sample

SOURCE_KEYS = ("rotation_tolerance",)
ROTATION_KEYS = ("rotation_angle", "angle", "rotation_degrees")


def load_vmevalkit(dataset: DatasetConfig) -> list[Sample]:
    check_source_keys(dataset.name, dataset.source, SOURCE_KEYS)
    root = dataset.media_root
    samples = []
    for task_dir in sorted(p for p in root.glob("*_task/*") if p.is_dir()):
        prompt_file = task_dir / "prompt.txt"
        if not prompt_file.is_file():
            raise DatasetError(f"{task_dir}: a VMEvalKit task folder needs prompt.txt")
        samples.append(task_sample(dataset, task_dir, prompt_file.read_text(encoding="utf-8").strip()))
    return samples


def task_sample(dataset: DatasetConfig, task_dir: Path, prompt: str) -> Sample:
    domain = task_dir.parent.name.removesuffix("_task")
    metadata = read_metadata(task_dir)
    kind, answer, scorer, args = checkable(metadata, dataset)
    goal = metadata.get("goal")
    if goal is None and (task_dir / "goal.txt").is_file():
        goal = (task_dir / "goal.txt").read_text(encoding="utf-8").strip()
    if kind is None:
        kind = "goal" if goal else "task"
    question = dataset.prompt_template(f"vmevalkit_{kind}").format(prompt=prompt, goal=goal or "")
    gt_video = task_dir / "ground_truth.mp4"
    media = {"video": str(gt_video)} if gt_video.is_file() else {"frames": (str(task_dir / "first_frame.png"),)}
    return Sample(
        id=f"{domain}/{task_dir.name}",
        dataset=dataset.name,
        question=question,
        answer=answer,
        scorer=scorer,
        scorer_args=args,
        category=domain,
        categories={"domain": domain, "check": kind},
        cluster=str(task_dir),
        source=str(task_dir),
        **media,
    )


def read_metadata(task_dir: Path) -> Mapping[str, Any]:
    path = task_dir / "question_metadata.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    return data


def checkable(metadata: Mapping[str, Any], dataset: DatasetConfig) -> tuple[str | None, str | None, str, dict]:
    """(question kind, answer, scorer, scorer args) for metadata that holds an answer."""
    moves = metadata.get("mate_moves")
    if moves:
        moves = [moves] if isinstance(moves, str) else [str(m) for m in moves]
        return "chess", moves[0], "contains", {"alternatives": moves[1:]} if len(moves) > 1 else {}
    if metadata.get("solution_length") is not None:
        return "maze", str(int(metadata["solution_length"])), "numeric", {"abs_tol": 0}
    solution = metadata.get("solution")
    if isinstance(solution, list) and solution and isinstance(solution[0], list):
        return "sudoku", " ".join(str(d) for d in solution[0]), "normalized", {}
    angle = next((metadata[k] for k in ROTATION_KEYS if metadata.get(k) is not None), None)
    if angle is not None:
        tolerance = float(source_setting(dataset.source, "rotation_tolerance", 10))
        return "rotation", str(angle), "numeric", {"abs_tol": tolerance}
    return None, None, "exact", {}
