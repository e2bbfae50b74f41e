"""``vlm-bench compare``: two runs item by item (flips, a paired McNemar test, latency),
and pass rate against ``max_frames`` for runs that differ only there."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from vlm_bench.results import ITEMS_FILE, RUN_FILE, SUMMARY_FILE, fmt_rate, read_records, record_uid, settings_diff


def load_run(results_dir: str | Path) -> dict[str, Any]:
    root = Path(results_dir)
    records = {record_uid(r): r for r in read_records(root / ITEMS_FILE)}
    run = json.loads((root / RUN_FILE).read_text(encoding="utf-8")) if (root / RUN_FILE).exists() else {}
    summary = json.loads((root / SUMMARY_FILE).read_text(encoding="utf-8")) if (root / SUMMARY_FILE).exists() else {}
    return {"dir": str(root), "records": records, "fingerprint": run.get("fingerprint", {}), "summary": summary}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (a binomial test)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare_runs(a_dir: str | Path, b_dir: str | Path) -> dict[str, Any]:
    a, b = load_run(a_dir), load_run(b_dir)
    common = sorted(
        uid for uid in set(a["records"]) & set(b["records"])
        if _outcome(a["records"][uid]) is not None and _outcome(b["records"][uid]) is not None
    )
    a_only_pass = [u for u in common if _outcome(a["records"][u]) and not _outcome(b["records"][u])]
    b_only_pass = [u for u in common if not _outcome(a["records"][u]) and _outcome(b["records"][u])]
    rate_a = sum(bool(_outcome(a["records"][u])) for u in common) / len(common) if common else None
    rate_b = sum(bool(_outcome(b["records"][u])) for u in common) / len(common) if common else None
    lat_a = [a["records"][u]["latency_ms"] for u in common if a["records"][u].get("latency_ms") is not None]
    lat_b = [b["records"][u]["latency_ms"] for u in common if b["records"][u].get("latency_ms") is not None]
    return {
        "a": a["dir"],
        "b": b["dir"],
        "compared": len(common),
        "only_in_a": len(set(a["records"]) - set(b["records"])),
        "only_in_b": len(set(b["records"]) - set(a["records"])),
        "pass_rate_a": rate_a,
        "pass_rate_b": rate_b,
        "difference": None if rate_a is None else rate_b - rate_a,
        "passed_in_a_failed_in_b": a_only_pass,
        "failed_in_a_passed_in_b": b_only_pass,
        "mcnemar_p": mcnemar_exact(len(a_only_pass), len(b_only_pass)),
        "median_latency_ms_a": statistics.median(lat_a) if lat_a else None,
        "median_latency_ms_b": statistics.median(lat_b) if lat_b else None,
        "latency_ratio_b_over_a": statistics.median(lat_b) / statistics.median(lat_a) if lat_a and lat_b and statistics.median(lat_a) else None,
        "settings_differ": _diff_keys(a["fingerprint"], b["fingerprint"]),
    }


def _outcome(record: Mapping[str, Any]) -> bool | None:
    if record.get("error") is not None:
        return False
    return record.get("passed")


def _diff_keys(a: Any, b: Any) -> list[str]:
    return [key for key, _, _ in settings_diff(a, b)]


def format_comparison(c: Mapping[str, Any]) -> list[str]:
    pct = fmt_rate
    diff = "-" if c["difference"] is None else f"{100 * c['difference']:+.1f} points"
    lines = [
        f"A: {c['a']}",
        f"B: {c['b']}",
        f"items in both: {c['compared']} (only in A: {c['only_in_a']}, only in B: {c['only_in_b']})",
        f"pass rate: A {pct(c['pass_rate_a'])}, B {pct(c['pass_rate_b'])}, B - A {diff}",
        f"flips: {len(c['passed_in_a_failed_in_b'])} passed in A and failed in B, "
        f"{len(c['failed_in_a_passed_in_b'])} failed in A and passed in B; McNemar exact p = {c['mcnemar_p']:.4g}",
    ]
    if c["latency_ratio_b_over_a"] is not None:
        lines.append(f"median latency: A {c['median_latency_ms_a']:.1f} ms, B {c['median_latency_ms_b']:.1f} ms "
                     f"(B/A {c['latency_ratio_b_over_a']:.2f})")
    if c["settings_differ"]:
        lines.append("settings that differ: " + ", ".join(c["settings_differ"]))
    for label, uids in (("passed in A, failed in B", c["passed_in_a_failed_in_b"]), ("failed in A, passed in B", c["failed_in_a_passed_in_b"])):
        for uid in uids[:20]:
            lines.append(f"  {label}: {uid}")
    return lines


def frames_of_run(run: Mapping[str, Any]) -> int:
    """The run's frames per item: the most common number of frames its items saw."""
    counts = Counter(len(r["video"]["selected_indices"]) for r in run["records"].values() if r.get("video"))
    if not counts:
        raise ValueError(f"{run['dir']}: no item records frames")
    return counts.most_common(1)[0][0]


def _without_max_frames(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_max_frames(v) for k, v in value.items() if k != "max_frames"}
    if isinstance(value, list):
        return [_without_max_frames(v) for v in value]
    return value


def frames_sweep(dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Pass rate per frame count, for runs whose settings differ only in max_frames."""
    runs = [load_run(d) for d in dirs]
    base = _without_max_frames(runs[0]["fingerprint"])
    for run in runs[1:]:
        diff = _diff_keys(base, _without_max_frames(run["fingerprint"]))
        if diff:
            raise ValueError(f"{run['dir']} differs from {runs[0]['dir']} in more than max_frames: {', '.join(diff[:5])}")
    points = []
    for run in runs:
        s = run["summary"]
        points.append({"dir": run["dir"], "max_frames": frames_of_run(run), "pass_rate": s.get("pass_rate"), "ci95": s.get("ci95")})
    return sorted(points, key=lambda p: p["max_frames"])


def plot_frames_sweep(points: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    from vlm_bench.report import _png, _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs = [p["max_frames"] for p in points]
    ys = [100 * p["pass_rate"] for p in points]
    err = [[100 * (p["pass_rate"] - p["ci95"][0]) for p in points], [100 * (p["ci95"][1] - p["pass_rate"]) for p in points]]
    ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, color="#4c72b0")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("frames per video (max_frames)")
    ax.set_ylabel("pass rate (%)")
    ax.set_ylim(0, 102)
    ax.set_title("Pass rate vs frames (95% interval clustered by video)")
    path = Path(path)
    path.write_bytes(_png(fig))
    return path
