"""Grading video-generation models (VMEvalKit outputs): per-model and per-domain pass
rates next to the judge's accuracy on its calibration controls, and the results written
back in VMEvalKit's output tree."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from vlm_bench.datasets.vmevalkit_outputs import GROUND_TRUTH, KIND, STATIC, output_folder
from vlm_bench.generation.tree import vmevalkit_metadata
from vlm_bench.results import RateBucket, fmt_rate, write_json_atomic


def is_graded(record: Mapping[str, Any]) -> bool:
    return (record.get("meta") or {}).get("kind") == KIND


def grading_summary(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Pass rate per generator (overall, goal checks, per domain), the judge's accuracy on
    the controls (ground truth should pass; a static first-frame video should be judged
    not to reach the goal), and a flag on every generator whose goal pass rate cannot be
    told apart from the static video's (their 95% intervals overlap). The static video
    counts as reaching the goal only when the judge says "yes"; answers the scorer cannot
    read (no yes/no, no number, ...) are counted as ``unparseable``, per control and per
    generator, so a judge that answers nothing usable shows as such, not as calibrated."""
    overall: dict[str, RateBucket] = defaultdict(RateBucket)
    goal: dict[str, RateBucket] = defaultdict(RateBucket)
    by_domain: dict[str, dict[str, RateBucket]] = defaultdict(lambda: defaultdict(RateBucket))
    unparseable: dict[str, int] = defaultdict(int)
    static_yes = RateBucket()  # how often the judge says "yes": a static video reaches the goal
    for rec in records:
        if not is_graded(rec):
            continue
        meta = rec["meta"]
        generator = meta["generator"]
        overall[generator].add(rec)
        by_domain[generator][meta["domain"]].add(rec)
        unparseable[generator] += is_unparseable(rec)
        if meta["check"] == "goal":
            goal[generator].add(rec)
            if generator == STATIC and rec.get("error") is None:
                static_yes.add(dict(rec, passed=said_yes(rec)))
    static = dict(static_yes.as_dict(), unparseable=unparseable[STATIC])
    controls = {
        name: {
            "judge_accuracy": overall[name].as_dict()["pass_rate"] if name in overall else None,
            "overall": overall[name].as_dict() if name in overall else None,
            "per_domain": {d: b.as_dict() for d, b in sorted(by_domain[name].items())},
            "unparseable": unparseable[name],
        }
        for name in (GROUND_TRUTH, STATIC)
    }
    models = {}
    for name in sorted(g for g in overall if g not in (GROUND_TRUTH, STATIC)):
        goal_rate = goal[name].as_dict() if name in goal else None
        models[name] = {
            "overall": overall[name].as_dict(),
            "goal": goal_rate,
            "per_domain": {d: b.as_dict() for d, b in sorted(by_domain[name].items())},
            "unparseable": unparseable[name],
            "like_static_video": _overlaps(goal_rate, static) if goal_rate and static["scored"] else None,
        }
    return {"models": models, "controls": controls, "static_video_goal_pass_rate": static}


def said_yes(record: Mapping[str, Any]) -> bool:
    """The judge answered "yes" (records from before ``extracted`` existed: a static goal
    check that did not pass, as they were counted then)."""
    if "extracted" in record:
        return record.get("extracted") == "yes"
    return not record.get("passed")


def is_unparseable(record: Mapping[str, Any]) -> bool:
    """A scored answer from which the scorer read nothing (no yes/no, no number, ...)."""
    return (
        "extracted" in record
        and record.get("extracted") is None
        and record.get("error") is None
        and record.get("answer") is not None
        and record.get("prediction") is not None
        and not record.get("missing_media")
    )


def _overlaps(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if not a.get("ci95") or not b.get("ci95"):
        return False
    return a["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= a["ci95"][1]


def format_grading(summary: Mapping[str, Any]) -> list[str]:
    def pct(b: Mapping[str, Any] | None) -> str:
        return fmt_rate(b.get("pass_rate") if b else None, digits=0)

    domains = sorted({d for m in summary["models"].values() for d in m["per_domain"]}
                     | {d for c in summary["controls"].values() for d in c["per_domain"]})
    lines = [f"{'generator':<24} {'all':>6} {'goal':>6} " + " ".join(f"{d[:10]:>10}" for d in domains)
             + f" {'unparsed':>8}  flag"]
    for name, m in summary["models"].items():
        flag = "like a static video" if m["like_static_video"] else ""
        lines.append(f"{name[:24]:<24} {pct(m['overall']):>6} {pct(m['goal']):>6} "
                     + " ".join(f"{pct(m['per_domain'].get(d)):>10}" for d in domains)
                     + f" {m.get('unparseable', 0):>8}  {flag}")
    for name, c in summary["controls"].items():
        lines.append(f"{('judge on ' + name.split(':')[1])[:24]:<24} {pct(c['overall']):>6} {'':>6} "
                     + " ".join(f"{pct(c['per_domain'].get(d)):>10}" for d in domains)
                     + f" {c.get('unparseable', 0):>8}  (judge accuracy)")
    static = summary["static_video_goal_pass_rate"]
    lines.append(f"the judge said a static video reaches the goal: {pct(static)} of {static['scored']} goal checks "
                 f"(only an explicit yes counts; {static.get('unparseable', 0)} answers unparseable)")
    return lines


def write_output_tree(results_dir: str | Path, records: Iterable[Mapping[str, Any]], experiment: str,
                      judge: Mapping[str, Any]) -> list[Path]:
    """``<results>/<experiment>/<model>/<domain>_task/<task_id>/<run_id>/metadata.json`` in
    VMEvalKit's format (inference, input, output, paths, question_data) plus ``judge``:
    each check's question, answer, prediction, frames used and score."""
    runs: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for rec in records:
        if is_graded(rec):
            m = rec["meta"]
            runs[(m["generator"], m["domain"], m["task_id"], m["run_id"])].append(rec)
    written = []
    for (generator, domain, task_id, run_id), recs in sorted(runs.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        meta = recs[0]["meta"]
        folder_model = output_folder(generator)
        run_name = run_id or "latest"
        out_dir = Path(results_dir) / experiment / folder_model / f"{domain}_task" / task_id / run_name
        original = meta.get("run_metadata") or {}
        errors = [r["error"] for r in recs if r.get("error")]
        question_dir = meta["question_dir"]
        original_output = original.get("output") or {}
        document = vmevalkit_metadata(
            run_id=run_id or f"{folder_model}_{task_id}",
            model=generator,
            timestamp=(original.get("inference") or {}).get("timestamp"),
            status="failed" if errors else "success",
            duration_seconds=sum(r.get("latency_ms") or 0 for r in recs) / 1000,
            error="; ".join(errors) or None,
            prompt=meta.get("prompt"),
            image_path=str(Path(question_dir) / "first_frame.png"),
            question_id=task_id,
            task_category=domain,
            video_path=meta.get("video_path"),
            generation_id=original_output.get("generation_id"),
            video_url=original_output.get("video_url"),
            inference_dir=str(out_dir),
            video_dir=str(Path(meta["video_path"]).parent) if meta.get("video_path") else None,
            question_dir=question_dir,
            question_data=meta.get("question_data") or {},
        )
        document["judge"] = {
            **judge,
            "checks": [
                {
                    "check": r["meta"]["check"],
                    "question": r["question"],
                    "expected": r["answer"],
                    "answer": r.get("prediction"),
                    "frames": (r.get("video") or {}).get("selected_indices"),
                    "score": r.get("score"),
                    "passed": r.get("passed"),
                    "error": r.get("error"),
                }
                for r in recs
            ],
        }
        write_json_atomic(out_dir / "metadata.json", document)
        written.append(out_dir / "metadata.json")
    return written


def grade_run(run: Any, records: Sequence[Mapping[str, Any]], results_dir: str | Path) -> dict[str, Any]:
    """The end of a judging session: the graded summary, and VMEvalKit's output tree with
    the verdicts for each ``vmevalkit-outputs`` dataset of ``run`` (a RunConfig)."""
    judge = {"judge_model": run.model.name, "backend": run.backend, "quant": run.quant}
    for dataset in run.datasets:
        if dataset.format == "vmevalkit-outputs":
            mine = [r for r in records if r["dataset"] == dataset.name]
            write_output_tree(results_dir, mine, Path(dataset.root).name, judge)
    return grading_summary(records)
