"""VMEvalKit task pairs: ``<root>/<domain>_task/<task_id>/`` with ``first_frame.png``,
``prompt.txt`` and optionally ``final_frame.png``, ``ground_truth.mp4``,
``question_metadata.json`` and ``goal.txt``, as VMEvalKit's generators write them.

Each task becomes one item. The model sees the ground-truth video where there is one,
else the first frame. A domain whose metadata holds a checkable answer gets a question
worded for it (``prompt.vmevalkit_<domain>`` in the dataset YAML) and is scored; the
answer is read where VMEvalKit's generator puts it (``DOMAIN_CHECKS`` names the keys,
nested ``<domain>_data`` first, the top-level copy second). Other domains (raven, arc,
shape sorter, ...) ask about the goal (``goal`` / ``goal.txt``) or the prompt alone and
are unscored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from vlm_bench.config import DatasetConfig
from vlm_bench.datasets.common import DatasetError, check_source_keys, source_setting
from vlm_bench.types import Sample

SOURCE_KEYS = ("rotation_tolerance",)


def _nested(metadata: Mapping[str, Any], *paths: str) -> Any:
    """The first of the dotted ``paths`` present (not null) in ``metadata``."""
    for path in paths:
        value: Any = metadata
        for key in path.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is not None:
            return value
    return None


def _number(value: Any) -> str | None:
    """A number, or a string holding just one ("2"), as the answer text; else None."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+(?:\.\d+)?", value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


Answer = tuple[str, str, dict]  # (answer, scorer, scorer args)


def _chess(m: Mapping[str, Any], _: DatasetConfig) -> Answer | None:
    moves = _nested(m, "chess_data.mate_moves", "mate_moves")
    moves = [moves] if isinstance(moves, str) else [str(x) for x in moves or []]
    if not moves:
        return None
    return moves[0], "contains", {"alternatives": moves[1:]} if len(moves) > 1 else {}


def _numeric(*paths: str):
    def read(m: Mapping[str, Any], _: DatasetConfig) -> Answer | None:
        value = _number(_nested(m, *paths))
        return (value, "numeric", {"abs_tol": 0}) if value is not None else None

    return read


def _sudoku(m: Mapping[str, Any], _: DatasetConfig) -> Answer | None:
    """The digits of the empty cells (``null`` in the flat ``puzzle``), in reading order."""
    solution = _nested(m, "sudoku_data.solution", "solution_array")
    puzzle = _nested(m, "sudoku_data.puzzle", "puzzle_array")
    if not isinstance(solution, list) or not solution or any(isinstance(x, list) for x in solution):
        return None
    if isinstance(puzzle, list) and len(puzzle) == len(solution):
        blanks = [str(d) for d, given in zip(solution, puzzle) if given is None]
    else:
        blanks = [str(d) for d in solution]
    if not blanks:
        return None
    return (blanks[0], "numeric", {"abs_tol": 0}) if len(blanks) == 1 else (" ".join(blanks), "normalized", {})


def _rotation(m: Mapping[str, Any], dataset: DatasetConfig) -> Answer | None:
    angle = _number(_nested(m, "rotation_data.angle_difference", "angle_difference"))
    if angle is None:
        return None
    return angle, "numeric", {"abs_tol": float(source_setting(dataset.source, "rotation_tolerance", 10))}


def _clock(m: Mapping[str, Any], _: DatasetConfig) -> Answer | None:
    hour = _nested(m, "clock_data.final_hour", "final_hour")
    if not isinstance(hour, int) or isinstance(hour, bool):
        return None
    return str(hour % 12 or 12), "numeric", {"abs_tol": 0}


def _text(*paths: str, scorer: str = "contains"):
    def read(m: Mapping[str, Any], _: DatasetConfig) -> Answer | None:
        value = _nested(m, *paths)
        return (str(value), scorer, {}) if isinstance(value, (str, int)) and str(value).strip() else None

    return read


# domain -> how its question_metadata.json holds the answer (VMEvalKit's generators, read in
# the history of Video-Reason/VMEvalKit before its "trim down" commit)
DOMAIN_CHECKS: dict[str, Callable[[Mapping[str, Any], DatasetConfig], "Answer | None"]] = {
    "chess": _chess,  # chess_data.mate_moves (SAN, several mates possible) beside a top-level copy
    "maze": _numeric("maze_data.solution_length", "solution_length"),  # cells on the path, both ends
    "sliding_puzzle": _numeric("puzzle_data.solution_length", "solution_length"),  # moves
    "sudoku": _sudoku,  # sudoku_data.solution / solution_array: flat lists; puzzle has null blanks
    "rotation": _rotation,  # rotation_data.angle_difference (degrees of azimuth)
    "clock": _clock,  # clock_data.final_hour, 0-11 (0 is 12 o'clock)
    "counting_objects": _numeric("ground_truth_count"),
    "letter_counting": _numeric("ground_truth_count"),
    "2d_dice_reasoning": _numeric("dice_data.answer"),  # the face opposite (sums to 7)
    "edit_distance": _numeric("edit_distance_data.distance"),
    "object_subtraction": _numeric("object_subtraction_data.num_kept"),
    "vpct": _numeric("text_answer"),  # the bucket the ball falls into
    "majority_color": _text("majority_color_data.majority_color"),
    "mirror_clock": _text("mirror_clock_data.future_time.formatted", "future_time.formatted"),  # "h:mm"
    "light_sequence": _text("light_sequence_data.final_state", "final_state", scorer="normalized"),  # "0101"
    "sequence_completion": _numeric("answer"),  # number sequences; shape/colour cycles stay unscored
}


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
    read = DOMAIN_CHECKS.get(domain)
    checked = read(metadata, dataset) if read else None
    goal = metadata.get("goal")
    if goal is None and (task_dir / "goal.txt").is_file():
        goal = (task_dir / "goal.txt").read_text(encoding="utf-8").strip()
    kind = domain if checked else ("goal" if goal else "task")
    answer, scorer, args = checked or (None, "exact", {})
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
        categories={"domain": domain, "check": "answer" if checked else kind},
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
