"""Run the performance benchmarks and write what they measured into docs/performance.md.

    python tests/benchmarks/performance_table.py          # every benchmark (about 25 minutes on 2 cores)
    python tests/benchmarks/performance_table.py --dry    # print the table, leave the docs alone

Each benchmark prints its ratio and fails past its bound (tests/benchmarks/perf_report.py);
the lines they append to $VLM_BENCH_PERF_OUT become the table between the markers in
docs/performance.md, with the machine, the date and the load average around the run.
Extra arguments go to pytest (``-k native`` runs a subset; the table then holds only it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- performance-table: begin -->", "<!-- performance-table: end -->"
BENCHMARKS = [
    "tests/benchmarks/test_bench_scale.py",
    "tests/benchmarks/test_bench_readers.py",
    "tests/benchmarks/test_bench_native.py",
    "tests/benchmarks/test_bench_xdist.py",
    "tests/benchmarks/test_bench_long_runs.py",
]


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def measure(extra: list[str]) -> tuple[list[dict], str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "perf.jsonl"
        env = dict(os.environ, VLM_BENCH_PERF_OUT=str(out), OMP_NUM_THREADS="1")
        before, started = load(), time.strftime("%Y-%m-%d %H:%M")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "benchmark", "-p", "no:cacheprovider", "-q",
                               *BENCHMARKS, *extra], cwd=REPO, env=env)
        lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    note = (f"measured {started} on {lines[0]['machine'] if lines else os.uname().nodename}, load average "
            f"(1/5/15 min) {before} before and {load()} after; pytest exit status {proc.returncode}")
    return lines, note


def table(lines: list[dict], note: str) -> str:
    rows = ["| measured | value | bound | met | how |", "| --- | --- | --- | --- | --- |"]
    for r in lines:
        sign = ">=" if r["higher_is_better"] else "<="
        unit = r["unit"] if r["unit"] != "x" else "x"
        rows.append(f"| {r['name']} | {r['value']:.3g}{unit} | {sign} {r['bound']}{unit} | "
                    f"{'yes' if r['ok'] else '**no**'} | {r['detail'].strip('()')} |")
    return "\n".join([f"_{note}; written by `python tests/benchmarks/performance_table.py`._", "", *rows])


def main(argv: list[str]) -> int:
    dry = "--dry" in argv
    lines, note = measure([a for a in argv if a != "--dry"])
    text = table(lines, note)
    print(text)
    if not dry:
        doc = DOC.read_text(encoding="utf-8")
        head, _, rest = doc.partition(BEGIN)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")
    return 0 if lines and all(r["ok"] for r in lines) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
