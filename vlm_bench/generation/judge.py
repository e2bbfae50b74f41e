"""Generate then judge: the dataset that points the existing ``vmevalkit_outputs`` grading
at a fresh output tree, and the per-generator table (generation success rate, time per
video, rule-score, goal and QA pass rates, the judge's calibration on the controls)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from vlm_bench.config import DATASETS_DIR
from vlm_bench.datasets.vmevalkit_outputs import GROUND_TRUTH, STATIC
from vlm_bench.generation.tree import tree_stats
from vlm_bench.grading import grading_summary, is_graded
from vlm_bench.results import RateBucket, fmt_rate

GRADING_DATASET = DATASETS_DIR / "vmevalkit_outputs.yaml"


def write_judge_dataset(path: str | Path, outputs_dir: str | Path, questions: str | Path | None) -> Path:
    """The shipped ``vmevalkit_outputs`` dataset, rooted at ``outputs_dir`` and reading its
    task pairs from ``questions`` (absolute, so the tree can live anywhere)."""
    data = yaml.safe_load(GRADING_DATASET.read_text(encoding="utf-8"))
    data["root"] = str(Path(outputs_dir).resolve())
    if questions is not None:
        data["source"] = dict(data.get("source") or {}, questions=str(Path(questions).resolve()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by vlm-bench generate --judge\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def generator_table(outputs_dir: str | Path, judge_records: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Per generator in the experiment folder: what the tree says about generation and
    what the judge says about the videos; plus the judge's accuracy on the controls."""
    records = [r for r in judge_records if is_graded(r)]
    goal: dict[str, RateBucket] = defaultdict(RateBucket)
    qa: dict[str, RateBucket] = defaultdict(RateBucket)
    rules: dict[str, RateBucket] = defaultdict(RateBucket)
    for rec in records:
        meta = rec["meta"]
        bucket = rules if meta["check"] == "rules" else goal if meta["check"] in ("goal", "rating") else qa
        bucket[meta["generator"]].add(rec)
    rows = {}
    for name, stats in tree_stats(outputs_dir).items():
        rows[name] = dict(
            stats,
            goal=goal[name].as_dict() if name in goal else None,
            qa=qa[name].as_dict() if name in qa else None,
            rules=rules[name].as_dict() if name in rules else None,
        )
    graded = grading_summary(records) if records else None
    calibration = None
    if graded:
        controls = graded["controls"]
        calibration = {
            "ground_truth": controls[GROUND_TRUTH]["overall"],
            "static_first_frame": controls[STATIC]["overall"],
            "like_static_video": {n: m["like_static_video"] for n, m in graded["models"].items()},
        }
    return {"generators": rows, "judge_calibration": calibration}


def format_generator_table(table: Mapping[str, Any]) -> list[str]:
    def rate(bucket: Mapping[str, Any] | None) -> str:
        if not bucket or not bucket.get("scored"):
            return "-"
        return f"{fmt_rate(bucket['pass_rate'], 0)} ({bucket['passed']}/{bucket['scored']})"

    lines = [f"{'generator':<24} {'tasks':>5} {'generated':>9} {'s/video':>8} {'rules pass':>12} {'goal pass':>12} {'QA pass':>12}"]
    for name, row in table["generators"].items():
        took = "-" if row["seconds_per_video"] is None else f"{row['seconds_per_video']:.2f}"
        flag = "  like a static video" if ((table.get("judge_calibration") or {}).get("like_static_video") or {}).get(name) else ""
        lines.append(f"{name[:24]:<24} {row['tasks']:>5} {fmt_rate(row['success_rate'], 0):>9} {took:>8} "
                     f"{rate(row.get('rules')):>12} {rate(row['goal']):>12} {rate(row['qa']):>12}{flag}")
    cal = table.get("judge_calibration")
    if cal and (cal["ground_truth"] or cal["static_first_frame"]):  # a judge ran (rule scores alone have no calibration)
        lines.append(f"judge calibration: passes the ground-truth videos' checks {rate(cal['ground_truth'])}; "
                     f"says a static first-frame video misses the goal {rate(cal['static_first_frame'])}")
    return lines
