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


def check_of(record: Mapping[str, Any]) -> str:
    """goal, qaN, rating (VMEvalKit's protocol) or rules."""
    return str(record["meta"]["check"])


def is_judged(record: Mapping[str, Any]) -> bool:
    return check_of(record) != "rules"


def grading_summary(records: Iterable[Mapping[str, Any]], labels: Mapping[str, bool] | None = None) -> dict[str, Any]:
    """Pass rate per generator (the judge's checks overall, its goal check, per domain; the
    rule scores beside them), the judge's accuracy on the controls (ground truth should
    pass; a static first-frame video should be judged not to reach the goal), a flag on
    every generator whose goal pass rate cannot be told apart from the static video's
    (their 95% intervals overlap), the rules-against-judge confusion per generator with
    every video they disagree on, and, with ``labels`` (``video key -> right``, a labelled
    set's), each grader's accuracy and Cohen's kappa against them. The static video counts
    as reaching the goal only when the judge says "yes"; answers the scorer cannot read are
    counted as ``unparseable``, per control and per generator."""
    records = [r for r in records if is_graded(r)]
    overall: dict[str, RateBucket] = defaultdict(RateBucket)
    goal: dict[str, RateBucket] = defaultdict(RateBucket)
    rules: dict[str, RateBucket] = defaultdict(RateBucket)
    by_domain: dict[str, dict[str, RateBucket]] = defaultdict(lambda: defaultdict(RateBucket))
    rules_by_domain: dict[str, dict[str, RateBucket]] = defaultdict(lambda: defaultdict(RateBucket))
    unparseable: dict[str, int] = defaultdict(int)
    unjudgeable: dict[str, int] = defaultdict(int)
    static_yes = RateBucket()  # how often the judge says "yes": a static video reaches the goal
    for rec in records:
        meta = rec["meta"]
        generator = meta["generator"]
        if not is_judged(rec):
            rules[generator].add(rec)
            rules_by_domain[generator][meta["domain"]].add(rec)
            unjudgeable[generator] += rec.get("error") is None and rec.get("passed") is None
            continue
        overall[generator].add(rec)
        by_domain[generator][meta["domain"]].add(rec)
        unparseable[generator] += is_unparseable(rec)
        if check_of(rec) in ("goal", "rating"):
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
            "rules": rules[name].as_dict() if name in rules else None,
        }
        for name in (GROUND_TRUTH, STATIC)
    }
    models = {}
    for name in sorted(g for g in set(overall) | set(rules) if g not in (GROUND_TRUTH, STATIC)):
        goal_rate = goal[name].as_dict() if name in goal else None
        models[name] = {
            "overall": overall[name].as_dict() if name in overall else None,
            "goal": goal_rate,
            "per_domain": {d: b.as_dict() for d, b in sorted(by_domain[name].items())},
            "unparseable": unparseable[name],
            "like_static_video": _overlaps(goal_rate, static) if goal_rate and static["scored"] else None,
            "rules": rules[name].as_dict() if name in rules else None,
            "rules_per_domain": {d: b.as_dict() for d, b in sorted(rules_by_domain[name].items())},
            "rules_unjudgeable": unjudgeable[name],
        }
    verdicts = video_verdicts(records)
    out = {"models": models, "controls": controls, "static_video_goal_pass_rate": static,
           "rules_vs_judge": rules_vs_judge(verdicts), "disagreements": disagreements(verdicts)}
    if labels:
        out["agreement_with_labels"] = agreement_with_labels(verdicts, labels)
    return out


def video_key(meta: Mapping[str, Any]) -> str:
    """``generator/domain_task/task_id`` (and ``/run_id`` for a run folder): a labelled set's key."""
    return "/".join(str(x) for x in (meta["generator"], f"{meta['domain']}_task", meta["task_id"], meta.get("run_id")) if x)


def video_verdicts(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per generated video: does it reach the task's final state, by the rules and by the
    judge (its goal answer or its rating; None where it gave none)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        meta, check = rec["meta"], check_of(rec)
        key = video_key(meta) if "task_id" in meta else rec["id"].rsplit("/", 1)[0]
        entry = out.setdefault(key, {"generator": meta["generator"], "domain": meta["domain"],
                                     "task_id": meta.get("task_id"), "run_id": meta.get("run_id")})
        if check == "rules":
            entry["rules"] = {"pass": True, "fail": False}.get(rec.get("prediction"))
            entry["final_frame_accuracy"] = ((meta.get("rules") or {}).get("final_frame_accuracy"))
        elif check == "goal":
            entry["judge"] = None if rec.get("error") else {"yes": True, "no": False}.get(rec.get("extracted"))
        elif check == "rating":
            entry["judge"] = None if rec.get("error") or rec.get("extracted") is None else bool(rec.get("passed"))
            entry["rating"] = rec.get("extracted")
    return out


def kappa(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two raters' yes/no verdicts on the same items."""
    n = len(pairs)
    if not n:
        return None
    observed = sum(a == b for a, b in pairs) / n
    a_yes, b_yes = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
    expected = a_yes * b_yes + (1 - a_yes) * (1 - b_yes)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return round((observed - expected) / (1 - expected), 4)


def rules_vs_judge(verdicts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per generator: the 2x2 table of rule verdicts against judge verdicts, their agreement and kappa."""
    tables: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for v in verdicts.values():
        if v.get("rules") is not None and v.get("judge") is not None:
            tables[v["generator"]].append((v["rules"], v["judge"]))
    return {
        generator: {
            "both_pass": sum(r and j for r, j in pairs), "rules_only": sum(r and not j for r, j in pairs),
            "judge_only": sum(j and not r for r, j in pairs), "both_fail": sum(not r and not j for r, j in pairs),
            "videos": len(pairs), "agreement": round(sum(r == j for r, j in pairs) / len(pairs), 4), "kappa": kappa(pairs),
        }
        for generator, pairs in sorted(tables.items())
    }


def disagreements(verdicts: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(v, video=key) for key, v in sorted(verdicts.items())
            if v.get("rules") is not None and v.get("judge") is not None and v["rules"] != v["judge"]]


def agreement_with_labels(verdicts: Mapping[str, Mapping[str, Any]], labels: Mapping[str, bool]) -> dict[str, Any]:
    """Each grader (rules, judge) against the labels: accuracy and kappa on the videos it
    gave a verdict on, and how many it gave none on."""
    out = {}
    for grader in ("rules", "judge"):
        pairs, missing = [], 0
        for key, right in labels.items():
            verdict = (verdicts.get(key) or {}).get(grader)
            if verdict is None:
                missing += 1
            else:
                pairs.append((bool(verdict), bool(right)))
        if any(grader in v for v in verdicts.values()):  # the grader ran, whatever it answered
            out[grader] = {"videos": len(pairs), "no_verdict": missing,
                           "accuracy": round(sum(a == b for a, b in pairs) / len(pairs), 4) if pairs else None,
                           "kappa": kappa(pairs)}
    return out


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

    domains = sorted({d for m in summary["models"].values() for d in (*m["per_domain"], *m.get("rules_per_domain", {}))}
                     | {d for c in summary["controls"].values() for d in c["per_domain"]})
    lines = [f"{'generator':<24} {'judge':>6} {'goal':>6} {'rules':>6} " + " ".join(f"{d[:10]:>10}" for d in domains)
             + f" {'unparsed':>8}  flag"]
    for name, m in summary["models"].items():
        flag = "like a static video" if m["like_static_video"] else ""
        lines.append(f"{name[:24]:<24} {pct(m['overall']):>6} {pct(m['goal']):>6} {pct(m.get('rules')):>6} "
                     + " ".join(f"{pct(m['per_domain'].get(d) or m.get('rules_per_domain', {}).get(d)):>10}" for d in domains)
                     + f" {m.get('unparseable', 0):>8}  {flag}")
    for name, c in summary["controls"].items():
        lines.append(f"{('judge on ' + name.split(':')[1])[:24]:<24} {pct(c['overall']):>6} {'':>6} {pct(c.get('rules')):>6} "
                     + " ".join(f"{pct(c['per_domain'].get(d)):>10}" for d in domains)
                     + f" {c.get('unparseable', 0):>8}  (judge accuracy)")
    if any(c.get("rules") for c in summary["controls"].values()):
        lines.append("rules on the controls: the share given the expected verdict (ground truth passes, a static video fails)")
    static = summary["static_video_goal_pass_rate"]
    if static["scored"]:
        lines.append(f"the judge said a static video reaches the goal: {pct(static)} of {static['scored']} goal checks "
                     f"(only an explicit yes counts; {static.get('unparseable', 0)} answers unparseable)")
    table = summary.get("rules_vs_judge") or {}
    if table:
        lines += ["", "rules against the judge, per generated video (pass/fail by each):",
                  f"{'generator':<24} {'both pass':>9} {'rules only':>10} {'judge only':>10} {'both fail':>9} {'agree':>6} {'kappa':>6}"]
        for name, t in table.items():
            k = "-" if t["kappa"] is None else f"{t['kappa']:.2f}"
            lines.append(f"{name[:24]:<24} {t['both_pass']:>9} {t['rules_only']:>10} {t['judge_only']:>10} {t['both_fail']:>9} "
                         f"{100 * t['agreement']:>5.0f}% {k:>6}")
        for d in summary.get("disagreements") or []:
            acc = d.get("final_frame_accuracy")
            lines.append(f"  disagree: {d['video']}: rules {'pass' if d['rules'] else 'fail'}"
                         f"{'' if acc is None else f' (final-frame accuracy {acc:.2f})'}, judge {'pass' if d['judge'] else 'fail'}"
                         f"{'' if d.get('rating') is None else ' (rating ' + str(d['rating']) + ')'}")
    agreement = summary.get("agreement_with_labels")
    if agreement:
        lines += ["", "against the labelled set's truth:", f"{'grader':<8} {'videos':>6} {'no verdict':>10} {'accuracy':>8} {'kappa':>6}"]
        for grader, a in agreement.items():
            acc = "-" if a["accuracy"] is None else f"{100 * a['accuracy']:.1f}%"
            k = "-" if a["kappa"] is None else f"{a['kappa']:.2f}"
            lines.append(f"{grader:<8} {a['videos']:>6} {a['no_verdict']:>10} {acc:>8} {k:>6}")
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
                    **({"rules": r["meta"].get("rules")} if r["meta"]["check"] == "rules" else {}),
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
    labels: dict[str, bool] = {}
    for dataset in run.datasets:
        if dataset.format == "vmevalkit-outputs":
            mine = [r for r in records if r["dataset"] == dataset.name]
            write_output_tree(results_dir, mine, Path(dataset.root).name, judge)
            labels.update(read_labels(Path(dataset.root)))
    return grading_summary(records, labels or None)


def read_labels(root: Path) -> dict[str, bool]:
    """A labelled set's truth (``labels.json`` at the outputs root, as
    ``vlm-bench labelled-set`` writes it): video key -> whether it ends in the right state."""
    import json

    path = root / "labels.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): bool(v) for k, v in (data.get("labels") or {}).items()}
