"""Videos that VMEvalKit's generation models made, graded by a video-QA model.

The root is an experiment folder of VMEvalKit's outputs, in either layout:

    <root>/<model>/<domain>_task/<task_id>/<run_id>/video/*.mp4   (older, with metadata.json;
                                                                   VBVR-InferKit's docs describe it too)
    <root>/<model>/<domain>_task/<task_id>/video/video.mp4        (newer)
    <root>/<model>/<domain>_task/<task_id>.mp4                    (VBVR-InferKit's runner)

and ``source.questions`` points at the questions tree the videos were made from
(``<domain>_task/<task_id>/`` with ``prompt.txt``, ``first_frame.png``, ``final_frame.png``,
``ground_truth.mp4``, ``question_metadata.json``; VMEvalKit's ``data/questions``, by
default ``<root>/../../questions``). Each generated video gives one item per check:

- goal: the video's frames and then the task's ``final_frame.png``; does the video end in
  that state? (yes/no; a generated video should: answer "yes")
- qa: each ``{"question", "answer"}`` pair in the task metadata's ``questions`` list.

Calibration controls (``source.controls``, on by default) run the same checks on each
task's ``ground_truth.mp4`` (the judge should pass it) and on a static video of the first
frame (goal check only; the judge should say "no"). Only the latest run of a task is used
unless ``source.all_runs`` (``--all-runs``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from vlm_bench.config import DatasetConfig
from vlm_bench.datasets.common import DatasetError, check_source_keys, source_setting
from vlm_bench.datasets.vmevalkit import read_metadata
from vlm_bench.scoring import check_scorer
from vlm_bench.types import Sample
from vlm_bench.utils.video import LAST_FRAME

SOURCE_KEYS = ("questions", "controls", "all_runs", "static_frames", "score", "protocol", "cache")
SCORE_MODES = ("both", "rules", "judge")  # rule scores (no model), the judge model's checks, or both
PROTOCOLS = ("question", "vmevalkit")  # the judge asks vlm-bench's goal question, or rates as VMEvalKit's judge
GROUND_TRUTH, STATIC = "control:ground_truth", "control:static"
CONTROL_FOLDERS = {GROUND_TRUTH: "control-ground_truth", STATIC: "control-static"}
RESERVED_NAMES = frozenset(CONTROL_FOLDERS) | frozenset(CONTROL_FOLDERS.values())
KIND = "vmevalkit-output"


def output_folder(generator: str) -> str:
    """The folder of a generator in the graded output tree: its own folder name (a real
    generator's name is one already), or a control's reserved folder. Distinct
    generators get distinct folders because no generator may take a reserved name."""
    return CONTROL_FOLDERS.get(generator, generator)


def load_vmevalkit_outputs(dataset: DatasetConfig) -> list[Sample]:
    src = dataset.source
    check_source_keys(dataset.name, src, SOURCE_KEYS)
    root = dataset.media_root
    questions = (root / source_setting(src, "questions", "../../questions")).resolve()
    score = str(source_setting(src, "score", "both"))
    protocol = str(source_setting(src, "protocol", "question"))
    if score not in SCORE_MODES or protocol not in PROTOCOLS:
        raise DatasetError(f"dataset {dataset.name!r}: score must be one of {', '.join(SCORE_MODES)} and protocol one of "
                           f"{', '.join(PROTOCOLS)} (--score, --judge-protocol); got {score!r}, {protocol!r}")
    how = Checks(rules=score in ("both", "rules"), judge=score in ("both", "judge"), protocol=protocol)
    # Without the questions tree, each run's own question/ copy (vlm-bench generate writes
    # one into every run) stands in for it; only a task with neither is an error.
    samples: list[Sample] = []
    tasks_seen: dict[tuple[str, str], Path] = {}
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if model_dir.name in RESERVED_NAMES:
            raise DatasetError(
                f"{model_dir}: the generator folder name {model_dir.name!r} is reserved for the judge's calibration "
                f"controls ({', '.join(sorted(RESERVED_NAMES))}); rename the folder"
            )
        for task_dir in sorted(model_dir.glob("*_task/*")):
            if task_dir.suffix.lower() == ".mp4" and task_dir.is_file():  # VBVR-InferKit: <domain>_task/<task_id>.mp4
                samples += flat_video(dataset, questions, model_dir.name, task_dir, how, tasks_seen)
                continue
            if not task_dir.is_dir():
                continue
            domain, task_id = task_dir.parent.name.removesuffix("_task"), task_dir.name
            question_dir = questions / task_dir.parent.name / task_id
            if not question_dir.is_dir():
                # the newer layout keeps it beside video/, the older one in each run folder
                fallback = [q for q in [task_dir / "question", *(r / "question" for r in sorted(task_dir.iterdir()))]
                            if (q / "prompt.txt").is_file()]
                if not fallback:
                    where = f"no task folder {question_dir} in the questions tree" if questions.is_dir() else \
                        f"the questions tree {questions} does not exist"
                    raise DatasetError(
                        f"{task_dir}: no question for this task: {where}, and none of its runs holds a question/ "
                        "copy; give the tree with --questions-root PATH (VMEvalKit's data/questions)"
                    )
                question_dir = fallback[0]
            tasks_seen[(domain, task_id)] = question_dir
            for run_id, video, run_meta in runs_of(task_dir, all_runs=bool(src.get("all_runs"))):
                info = {"generator": model_dir.name, "domain": domain, "task_id": task_id, "run_id": run_id,
                        "video_path": str(video), "question_dir": str(question_dir), "run_metadata": run_meta}
                samples += checks(dataset, question_dir, model_dir.name, str(video), info, how, goal_answer="yes", qa=True)
    if src.get("controls", True):
        static_frames = int(source_setting(src, "static_frames", 16))
        for (domain, task_id), question_dir in sorted(tasks_seen.items()):
            base = {"domain": domain, "task_id": task_id, "run_id": None, "question_dir": str(question_dir), "run_metadata": None}
            gt = question_dir / "ground_truth.mp4"
            if gt.is_file():
                samples += checks(dataset, question_dir, GROUND_TRUTH, str(gt),
                                  dict(base, generator=GROUND_TRUTH, video_path=str(gt)), how, goal_answer="yes", qa=True)
            first = str(question_dir / "first_frame.png")
            samples += checks(dataset, question_dir, STATIC, (first,) * static_frames,
                              dict(base, generator=STATIC, video_path=None), how, goal_answer="no", qa=False)
    return samples


def flat_video(dataset: DatasetConfig, questions: Path, generator: str, video: Path, how: "Checks",
               tasks_seen: dict[tuple[str, str], Path]) -> list[Sample]:
    """A video in VBVR-InferKit's layout, ``<generator>/<domain>_task/<task_id>.mp4``: one
    video per task and no question copy beside it, so the questions tree must hold the task."""
    domain, task_id = video.parent.name.removesuffix("_task"), video.stem
    question_dir = questions / video.parent.name / task_id
    if not (question_dir / "prompt.txt").is_file():
        raise DatasetError(f"{video}: no question for this task in {questions} (VBVR-InferKit's layout keeps no question "
                           "copy beside the video); give the tree with --questions-root PATH")
    tasks_seen[(domain, task_id)] = question_dir
    info = {"generator": generator, "domain": domain, "task_id": task_id, "run_id": None, "video_path": str(video),
            "question_dir": str(question_dir), "run_metadata": None}
    return checks(dataset, question_dir, generator, str(video), info, how, goal_answer="yes", qa=True)


def runs_of(task_dir: Path, all_runs: bool) -> list[tuple[str | None, Path, Mapping[str, Any] | None]]:
    """(run_id, video, metadata) of a task folder: the newer layout's single video, or the
    older layout's run folders, latest first (by metadata timestamp, then name)."""
    newer = sorted((task_dir / "video").glob("*.mp4"))
    if newer:
        return [(None, newer[0], None)]
    runs = []
    for run_dir in (p for p in task_dir.iterdir() if p.is_dir()):
        videos = sorted((run_dir / "video").glob("*.mp4"))
        if not videos:
            continue
        meta = None
        if (run_dir / "metadata.json").is_file():
            try:
                meta = json.loads((run_dir / "metadata.json").read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{run_dir / 'metadata.json'}: not valid JSON ({exc.msg})") from exc
        stamp = str(((meta or {}).get("inference") or {}).get("timestamp") or "")
        runs.append((stamp, run_dir.name, videos[0], meta))
    runs.sort(reverse=True)
    chosen = runs if all_runs else runs[:1]
    return [(name, video, meta) for _, name, video, meta in chosen]


@dataclass(frozen=True)
class Checks:
    """Which checks each video gets: rule scores, the judge's, and the judge's protocol."""

    rules: bool = True
    judge: bool = True
    protocol: str = "question"


def checks(
    dataset: DatasetConfig,
    question_dir: Path,
    generator: str,
    media: str | tuple[str, ...],
    info: Mapping[str, Any],
    how: Checks,
    goal_answer: str,
    qa: bool,
) -> list[Sample]:
    prompt_file = question_dir / "prompt.txt"
    if not prompt_file.is_file():
        raise DatasetError(f"{question_dir}: the task folder has no prompt.txt (VMEvalKit's task prompt, which the checks quote)")
    prompt = prompt_file.read_text(encoding="utf-8").strip()
    metadata = read_metadata(question_dir)
    prefix = "/".join(x for x in (generator, info["domain"], info["task_id"], info.get("run_id")) if x)
    media_kw = {"video": media} if isinstance(media, str) else {"frames": media}
    common = dict(dataset=dataset.name, category=generator, cluster=str(media if isinstance(media, str) else prefix), **media_kw)
    out = []
    final = question_dir / "final_frame.png"
    if how.rules:
        out.append(Sample(
            id=f"{prefix}/rules",
            question="rule scores: final-frame accuracy, first-frame consistency, temporal smoothness, visual quality",
            answer="pass" if goal_answer == "yes" else "fail",
            scorer="rules",
            categories={"generator": generator, "domain": info["domain"], "check": "rules"},
            meta=dict(info, kind=KIND, check="rules", prompt=prompt, question_data=dict(metadata)),
            source=str(question_dir),
            **common,
        ))
    if not how.judge:
        return out
    if how.protocol == "vmevalkit":
        if final.is_file() and generator != STATIC:
            out.append(vmevalkit_rating(dataset, question_dir, generator, str(media), info, prefix, common, metadata))
        return out
    if final.is_file():
        out.append(Sample(
            id=f"{prefix}/goal",
            question=dataset.prompt_template("vmevalkit_goal_check").format(prompt=prompt),
            answer=goal_answer,
            scorer="yesno",
            reference=str(final),
            categories={"generator": generator, "domain": info["domain"], "check": "goal"},
            meta=dict(info, kind=KIND, check="goal", prompt=prompt, question_data=dict(metadata)),
            source=str(question_dir),
            **common,
        ))
    pairs = (metadata.get("questions") or []) if qa else []
    for i, pair in enumerate(pairs):
        where = f"{question_dir / 'question_metadata.json'}: questions[{i}]"
        if not isinstance(pair, Mapping) or "question" not in pair or "answer" not in pair:
            raise DatasetError(f"{where} needs 'question' and 'answer'")
        if not isinstance(pair.get("scorer_args", {}), Mapping):
            raise DatasetError(f"{where}: scorer_args must be a mapping")
        try:
            check_scorer(str(pair.get("scorer", "normalized")), dict(pair.get("scorer_args", {})), str(pair["answer"]), ())
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        out.append(Sample(
            id=f"{prefix}/qa{i}",
            question=str(pair["question"]),
            answer=str(pair["answer"]),
            scorer=str(pair.get("scorer", "normalized")),
            scorer_args=dict(pair.get("scorer_args", {})),
            categories={"generator": generator, "domain": info["domain"], "check": "qa"},
            meta=dict(info, kind=KIND, check=f"qa{i}", prompt=prompt, question_data=dict(metadata)),
            source=str(question_dir),
            **common,
        ))
    return out


@functools.lru_cache(maxsize=1)
def vmevalkit_protocol() -> dict[str, Any]:
    """configs/grading/vmevalkit_judge.yaml, read once per process (not once per task)."""
    from vlm_bench.config import CONFIG_ROOT, load_yaml

    return load_yaml(CONFIG_ROOT / "grading" / "vmevalkit_judge.yaml")


def vmevalkit_rating(dataset: DatasetConfig, question_dir: Path, generator: str, video: str, info: Mapping[str, Any],
                     prefix: str, common: Mapping[str, Any], metadata: Mapping[str, Any]) -> Sample:
    """VMEvalKit's judge protocol (configs/grading/vmevalkit_judge.yaml): its system message,
    the task and prompt, the input image, the expected final frame and the video's last
    frame, each after VMEvalKit's own words; a 1-5 rating, 4 or 5 a pass."""
    protocol = vmevalkit_protocol()
    task_type = f"{info['domain']}_task"
    user = protocol["user"]
    raw_prompt = (question_dir / "prompt.txt").read_text(encoding="utf-8")  # VMEvalKit reads it as it is
    media = {k: v for k, v in common.items() if k not in ("video", "frames")}
    return Sample(
        id=f"{prefix}/rating",
        question=user["after"],
        answer=str(protocol["pass_at"]),
        scorer="rating",
        scorer_args={"scale": int(protocol["scale"])},
        frames=(str(question_dir / "first_frame.png"), str(question_dir / "final_frame.png"), video + LAST_FRAME),
        frame_labels=(user["before_first"].format(task_type=task_type, prompt=raw_prompt), user["before_expected"],
                      user["before_generated"]),
        system_prompt=protocol["system"].format(guidance=protocol["guidance"].get(task_type, "")),
        categories={"generator": generator, "domain": info["domain"], "check": "rating"},
        meta=dict(info, kind=KIND, check="rating", protocol="vmevalkit", prompt=raw_prompt.strip(),
                  question_data=dict(metadata)),
        source=str(question_dir),
        **media,
    )
