"""Rule scores against the labelled set: per domain, how many videos the rules call right,
in the look the thresholds were set on ("tuning") and in one they never saw ("held-out").
The figures in docs/grading.md come from this script.

    python tests/benchmarks/rule_agreement.py            # both looks, every fixture domain
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vlm_bench.datasets.vmevalkit import read_metadata  # noqa: E402
from vlm_bench.generation.labelled import make_labelled_set  # noqa: E402
from vlm_bench.video_rules import load_rule_book, score_video  # noqa: E402

QUESTIONS = REPO / "fixtures" / "benchmarks" / "vmevalkit_questions"


def measure(look: str, seed: int) -> dict[str, list[int]]:
    book = load_rule_book()
    with tempfile.TemporaryDirectory() as tmp:
        labels = json.loads(make_labelled_set(QUESTIONS, tmp, seed=seed, look=look).read_text())["labels"]
        per_domain: dict[str, list[int]] = {}
        for key, truth in labels.items():
            case, domain_dir, task = key.split("/")
            run = Path(tmp) / case / domain_dir / task
            domain = domain_dir.removesuffix("_task")
            result = score_video(run / "video" / "video.mp4", run / "question" / "first_frame.png",
                                 run / "question" / "final_frame.png", domain, read_metadata(run / "question"), book)
            right = per_domain.setdefault(f"{domain} ({book.rule(domain).method})", [0, 0])
            right[0] += result.passed == truth
            right[1] += 1
    return dict(sorted(per_domain.items()))


def main() -> None:
    started = time.perf_counter()
    results = {look: measure(look, seed) for look, seed in (("tuning", 0), ("held-out", 1))}
    print(f"{'domain (method)':<34} {'tuning':>8} {'held-out':>9}")
    for domain in results["tuning"]:
        cells = [f"{results[look][domain][0]}/{results[look][domain][1]}" for look in results]
        print(f"{domain:<34} {cells[0]:>8} {cells[1]:>9}")
    for look, per_domain in results.items():
        boards = [v for k, v in per_domain.items() if k.split()[0] in ("sudoku", "maze", "chess", "sliding_puzzle")]
        right, total = sum(v[0] for v in per_domain.values()), sum(v[1] for v in per_domain.values())
        b_right, b_total = sum(v[0] for v in boards), sum(v[1] for v in boards)
        print(f"{look}: {right}/{total} right ({100 * right / total:.1f}%); boards (sudoku, maze, chess, sliding puzzle) "
              f"{b_right}/{b_total} ({100 * b_right / b_total:.1f}%)")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
