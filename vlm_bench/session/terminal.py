"""The lines a video-QA session ends with: what ran on which engine, the pass-rate table,
what was reused or left unrun, the graded generators, and where the results are."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from vlm_bench.results import ITEMS_FILE, SUMMARY_FILE, format_table

# (text, markup): markup as pytest's terminal writer takes it (red=True, bold=True)
Line = tuple[str, Mapping[str, bool]]
PLAIN: Mapping[str, bool] = {}


def title(model: str, backend: str, quant: str) -> str:
    return f"vlm-bench: {model} on {backend} (quant {quant})"


def summary_lines(summary: Mapping[str, Any], *, load_error: str | None, recorded: int, reused: int,
                  results_dir: Path) -> list[Line]:
    from vlm_bench.grading import format_grading

    lines: list[Line] = []
    if load_error:
        lines.append((f"the engine did not load: {load_error}", {"red": True}))
    if summary["note"]:
        lines.append((f"no items selected: {summary['note']}", PLAIN))
    lines += [(line, PLAIN) for line in format_table(summary)]
    if reused:
        lines.append((f"reused {reused} finished items from the resumed run", PLAIN))
    if summary.get("judged"):
        counts = ", ".join(f"{status} {n}" for status, n in summary["judged"].items())
        lines.append((f"answers the rules could not read, sent to the judge: {counts} (records' 'judge')", PLAIN))
    if summary.get("warnings"):
        counts = ", ".join(f"{kind} {n}" for kind, n in summary["warnings"].items())
        lines.append((f"warnings in the records: {counts} (each record's 'warnings' says what)", {"yellow": True}))
    if not summary["complete"]:
        lines.append((
            f"INCOMPLETE: {recorded} of {summary['items_expected']} items ran ({summary['stopped']}); "
            "finish the run with --resume",
            {"red": True, "bold": True},
        ))
    if "vmevalkit" in summary:
        lines.append(("video-generation models, judged (pass rate per domain):", PLAIN))
        lines += [(line, PLAIN) for line in format_grading(summary["vmevalkit"])]
    lines.append((f"results: {results_dir / ITEMS_FILE}, {results_dir / SUMMARY_FILE}", PLAIN))
    return lines


def deselected_benchmarks_line(deselected: int, items: int) -> list[str]:
    """The line that says what the deselected are; ``items``: the dataset's items, each
    deselected test function collected one stand-in for instead of them all."""
    if not deselected:
        return []
    how = f" (one stand-in per test function instead of its {items} items)" if items else ""
    return [
        f"vlm-bench: {deselected} of the deselected are per-item latency benchmarks{how}, "
        "marker benchmark, off by default; pytest evals -m benchmark runs them"
    ]
