"""What a generation run adds to its summary (videos made, reused and failed, the success
rate, the time per video) and the lines its session ends with."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from vlm_bench.results import ITEMS_FILE, SUMMARY_FILE, fmt_rate


def generation_summary(records: Sequence[Mapping[str, Any]], generator: str, outputs_dir: Path) -> dict[str, Any]:
    fresh = [r for r in records if not r["meta"].get("reused")]
    made = [r for r in fresh if r.get("passed")]
    seconds = [r["meta"]["generation_seconds"] for r in made if isinstance(r["meta"].get("generation_seconds"), (int, float))]
    generated = sum(1 for r in records if r.get("passed"))
    return {
        "generator": generator,
        "outputs_dir": str(outputs_dir),
        "tasks": len(records),
        "generated": len(made),
        "reused": len(records) - len(fresh),
        "failed": len(fresh) - len(made),
        "success_rate": round(generated / len(records), 6) if records else None,
        "seconds_per_video": round(sum(seconds) / len(seconds), 3) if seconds else None,
        "errors": {r["id"]: r["error"] for r in records if r.get("error")},
        "rules": rules_summary(made),
    }


def rules_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The rule scores of the videos made: how many pass, overall and per domain, and how
    many the final frame cannot decide. None when none were scored (--score none)."""
    scored = [(r["category"], r["meta"]["rules"]) for r in records if r["meta"].get("rules")]
    if not scored:
        return None
    per_domain: dict[str, list[int]] = {}
    for domain, rules in scored:
        if rules.get("passed") is not None:
            per_domain.setdefault(domain, [0, 0])
            per_domain[domain][0] += bool(rules["passed"])
            per_domain[domain][1] += 1
    judged = sum(n for _, n in per_domain.values())
    passed = sum(p for p, _ in per_domain.values())
    return {"scored": judged, "passed": passed, "pass_rate": round(passed / judged, 6) if judged else None,
            "unjudgeable": len(scored) - judged, "per_domain": {d: {"passed": p, "scored": n} for d, (p, n) in sorted(per_domain.items())}}


def format_generation(g: Mapping[str, Any]) -> list[str]:
    rate = fmt_rate(g["success_rate"])
    took = "-" if g["seconds_per_video"] is None else f"{g['seconds_per_video']:.2f} s"
    lines = [
        f"tasks {g['tasks']}: generated {g['generated']}, already there {g['reused']}, failed {g['failed']}",
        f"success rate {rate}; generation time per new video {took}",
    ]
    lines += [f"  failed {task}: {error}" for task, error in list(g["errors"].items())[:10]]
    rules = g.get("rules")
    if rules:
        domains = ", ".join(f"{d} {v['passed']}/{v['scored']}" for d, v in rules["per_domain"].items())
        lines.append(f"rule scores: {rules['passed']} of {rules['scored']} videos reach the final state ({fmt_rate(rules['pass_rate'])})"
                     f"{'; ' + str(rules['unjudgeable']) + ' not decidable from the final frame' if rules['unjudgeable'] else ''}"
                     f"{': ' + domains if domains else ''}")
    return lines


def generation_lines(summary: Mapping[str, Any], videos: Path, results_dir: Path) -> list[str]:
    """The lines after the session's title: the outcome, the loads, where things are."""
    lines = format_generation(summary["generation"])
    loads = [w.get("generator_loads") for w in summary["workers"].values()]
    if loads:
        lines.append(f"generator loads per process: {', '.join(str(n) for n in loads)}")
    lines.append(f"videos: {videos}")
    lines.append(f"results: {results_dir / ITEMS_FILE}, {results_dir / SUMMARY_FILE}")
    return lines
