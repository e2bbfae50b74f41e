"""Rule scores for generated videos (vlm_bench/video_rules.py): each measure on frames made
here, and the verdicts on the labelled set (videos that reach the task's final state or
not, by construction) in the look the thresholds were set on and in a held-out look."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FIXTURES
from vlm_bench.datasets.vmevalkit import read_metadata
from vlm_bench.video_rules import (
    VideoSummary,
    grid_accuracy,
    grid_of,
    load_rule_book,
    score_video,
    ssim,
    temporal_smoothness,
    visual_quality,
)

QUESTIONS = FIXTURES / "benchmarks" / "vmevalkit_questions"
GRID_DOMAINS = ("sudoku", "maze", "chess", "sliding_puzzle")


def board(cells: dict[tuple[int, int], int], size: int = 240, n: int = 3) -> np.ndarray:
    """A white n x n board with black lines and a filled square per (row, col) -> grey level."""
    img = np.full((size, size, 3), 255, np.uint8)
    step = size // n
    for (r, c), level in cells.items():
        cv2.rectangle(img, (c * step + step // 4, r * step + step // 4), (c * step + 3 * step // 4, r * step + 3 * step // 4),
                      (level, 0, 255 - level), -1)
    for i in range(n + 1):
        cv2.line(img, (i * step, 0), (i * step, size), (0, 0, 0), 2)
        cv2.line(img, (0, i * step), (size, i * step), (0, 0, 0), 2)
    return img


def test_ssim_is_one_for_the_same_picture_and_lower_for_another():
    a = board({(0, 0): 200})
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, board({(2, 2): 200})) < 0.95


def test_grid_accuracy_counts_the_cells_that_end_right():
    first, final = board({(0, 0): 200}), board({(2, 2): 200})  # the piece moves from a corner to the other
    assert grid_accuracy(final, first, final, 3, 3) == (1.0, 9, 9)
    assert grid_accuracy(first, first, final, 3, 3)[1] == 7  # never moved: both cells wrong
    wrong = board({(2, 1): 200})  # moved, to the wrong cell
    assert grid_accuracy(wrong, first, final, 3, 3)[1] == 7
    drifted = cv2.warpAffine(final, np.float32([[1, 0, 2], [0, 1, 1]]), (240, 240), borderMode=cv2.BORDER_REPLICATE)
    # a generator's drift of a pixel or two is not a wrong state
    assert grid_accuracy(drifted, first, final, 3, 3)[0] == 1.0


def test_a_cut_is_a_spike_and_a_steady_change_is_not():
    ramp = [np.full((16, 16), i / 40, np.float32) for i in range(20)]
    score, spikes = temporal_smoothness(ramp)
    assert spikes == () and score > 0.95
    cut = ramp[:10] + [np.full((16, 16), 0.9, np.float32)] * 10
    score, spikes = temporal_smoothness(cut)
    assert spikes == (10,) and score < 0.1


def test_quality_falls_with_blur_and_with_a_wrong_exposure():
    sharp = board({(1, 1): 100})
    assert visual_quality(sharp, sharp) == pytest.approx(1.0)
    assert visual_quality(cv2.GaussianBlur(sharp, (0, 0), 4), sharp) < 0.7
    assert visual_quality((sharp * 0.3).astype(np.uint8), sharp) < 0.8


def test_grid_sizes_come_from_the_task_metadata():
    book = load_rule_book()
    for domain, want in (("sudoku", (3, 3)), ("maze", (3, 3)), ("sliding_puzzle", (3, 3)), ("chess", (8, 8)), ("raven", (3, 3))):
        task = next(QUESTIONS.glob(f"{domain}_task/*"))
        assert grid_of(book.rule(domain), read_metadata(task)) == want, domain


def test_a_domain_the_final_frame_cannot_decide_says_so(tmp_path):
    still = board({})
    video = VideoSummary(still, still, (np.zeros((4, 4), np.float32),))
    hanoi = score_video(video, None, None, "tower_of_hanoi")
    assert hanoi.judgeable is False and "legal single-disk moves" in hanoi.reason and hanoi.passed is None
    no_final = score_video(video, None, tmp_path / "absent.png", "sudoku")
    assert no_final.judgeable is False and "no final_frame.png" in no_final.reason


def labelled_accuracy(root: Path) -> tuple[dict[str, list[bool]], dict[str, dict]]:
    labels = json.loads((root / "labels.json").read_text())["labels"]
    right: dict[str, list[bool]] = {}
    scores = {}
    for key, truth in sorted(labels.items()):
        case, domain_dir, task = key.split("/")
        run = root / case / domain_dir / task
        result = score_video(run / "video" / "video.mp4", run / "question" / "first_frame.png",
                             run / "question" / "final_frame.png", domain_dir.removesuffix("_task"),
                             read_metadata(run / "question"))
        right.setdefault(domain_dir.removesuffix("_task"), []).append(result.passed == truth)
        scores[key] = result.as_dict()
    return right, scores


@pytest.mark.parametrize("look", ["tuning", "held-out"])
def test_rules_tell_right_from_wrong_final_states_on_the_labelled_set(tmp_path, look):
    """At least 90% right on the board domains (the issue's bar), in both looks; every
    domain's verdicts are recorded for the docs' table."""
    pytest.importorskip("av")
    from vlm_bench.generation.labelled import make_labelled_set

    make_labelled_set(QUESTIONS, tmp_path, domains=GRID_DOMAINS + ("raven", "rotation"), seed=0 if look == "tuning" else 1,
                      look=look)
    right, scores = labelled_accuracy(tmp_path)
    grid = [ok for d in GRID_DOMAINS for ok in right[d]]
    assert len(grid) == 4 * 5
    assert sum(grid) / len(grid) >= 0.9, {d: right[d] for d in GRID_DOMAINS}
    # a video that stays on its first frame never passes, in any domain
    assert not any(s["passed"] for k, s in scores.items() if k.startswith("synthetic-static/"))
