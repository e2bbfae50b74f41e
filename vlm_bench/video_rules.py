"""Rule scores for a generated video, with no model: numpy and OpenCV on the video, the
task's ``first_frame.png`` and ``final_frame.png``.

Four dimensions, each 0-1, as VBVR-EvalKit defines them (its fifth, task-specific one is
replaced here by the per-domain final-frame rule):

- final-frame accuracy: the video's last frame against ``final_frame.png``. Domains with a
  board (sudoku, chess, maze, sliding puzzle) compare it cell by cell: a cell that should
  change must end nearer the expected state than the start, a cell that should stay must
  stay; the score is the share of cells right. Elsewhere the comparison is masked to where
  the first and final frames differ: how far the video went from the first state to the
  final one there, and whether the rest stayed.
- first-frame consistency: structural similarity (SSIM) of the video's first frame with
  ``first_frame.png``.
- temporal smoothness: frame-to-frame change; a change well above the video's usual one
  is a spike (a cut, a teleport), flagged by frame index.
- visual quality: the last frame's sharpness against the expected frame's, and its exposure.

A weighted overall score, and a pass when the final-frame accuracy and the overall reach
the domain's thresholds (``configs/grading/rules.yaml``). A domain the final frame cannot
decide says so (``judgeable: false`` with the reason) instead of a score."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from vlm_bench.config import CONFIG_ROOT, ConfigError, load_yaml
from vlm_bench.utils.video import read_image, video_frames

RULES_FILE = CONFIG_ROOT / "grading" / "rules.yaml"
RULES_VERSION = "2026.12"
WORK_SIDE = 512  # frames are compared at this long side at most
SMALL_SIDE = 128  # and followed through time at this one
METHODS = ("grid", "masked", "none")


@dataclass(frozen=True)
class DomainRule:
    method: str = "masked"
    grid: tuple[int, int] | None = None  # rows, cols of a board
    grid_key: str | None = None  # or where the task metadata says (maze_size, sudoku_data.solution)
    final_threshold: float = 0.8
    overall_threshold: float = 0.6
    reason: str | None = None  # why the final frame cannot decide (method: none)


@dataclass(frozen=True)
class RuleScores:
    judgeable: bool
    method: str
    final_frame_accuracy: float | None = None
    first_frame_consistency: float | None = None
    temporal_smoothness: float | None = None
    visual_quality: float | None = None
    overall: float | None = None
    passed: bool | None = None
    spikes: tuple[int, ...] = ()  # frame indices where the change jumps
    cells: Mapping[str, int] | None = None  # grid: {"right": r, "total": n}
    reason: str | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    version: str = RULES_VERSION

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["spikes"] = [int(i) for i in self.spikes]
        out["passed"] = None if self.passed is None else bool(self.passed)
        out["judgeable"] = bool(self.judgeable)
        out["cells"] = {k: int(v) for k, v in self.cells.items()} if self.cells else None
        out["thresholds"] = {k: float(v) for k, v in self.thresholds.items()}
        for key in ("final_frame_accuracy", "first_frame_consistency", "temporal_smoothness", "visual_quality", "overall"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 4)
        return out


@dataclass(frozen=True)
class RuleBook:
    weights: Mapping[str, float]
    default: DomainRule
    domains: Mapping[str, DomainRule]
    source: str

    def rule(self, domain: str) -> DomainRule:
        return self.domains.get(domain, self.default)


def load_rule_book(path: str | Path = RULES_FILE) -> RuleBook:
    where = str(path)
    data = load_yaml(Path(path))
    weights = {k: float(v) for k, v in (data.get("weights") or {}).items()}
    dims = ("first_frame_consistency", "final_frame_accuracy", "temporal_smoothness", "visual_quality")
    if sorted(weights) != sorted(dims) or any(w < 0 for w in weights.values()) or not sum(weights.values()):
        raise ConfigError(f"{where}: weights must give {', '.join(dims)}, each >= 0")

    def rule(at: str, spec: Mapping[str, Any], base: DomainRule) -> DomainRule:
        spec = dict(spec or {})
        unknown = set(spec) - {"method", "grid", "grid_key", "final_threshold", "overall_threshold", "reason"}
        if unknown:
            raise ConfigError(f"{where}: {at}: unknown key {sorted(unknown)[0]!r}")
        out = DomainRule(**{**asdict(base), **spec})
        if out.method not in METHODS:
            raise ConfigError(f"{where}: {at}: method must be one of {', '.join(METHODS)}")
        if out.method == "grid" and not (out.grid or out.grid_key):
            raise ConfigError(f"{where}: {at}: a grid needs grid: [rows, cols] or grid_key")
        if out.method == "none" and not out.reason:
            raise ConfigError(f"{where}: {at}: method none needs the reason")
        grid = tuple(out.grid) if out.grid else None
        return DomainRule(**{**asdict(out), "grid": grid})

    default = rule("defaults", data.get("defaults") or {}, DomainRule())
    domains = {str(d): rule(f"domains.{d}", spec, default) for d, spec in (data.get("domains") or {}).items()}
    return RuleBook(weights=weights, default=default, domains=domains, source=str(data.get("source", "")))


@functools.lru_cache(maxsize=1)
def default_rule_book() -> RuleBook:
    """configs/grading/rules.yaml, read and checked once per process (not once per video)."""
    return load_rule_book()


# ---------------------------------------------------------------- frames


def fit(frame: np.ndarray, side: int) -> np.ndarray:
    """``frame`` with its long side at most ``side`` (area interpolation)."""
    h, w = frame.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return frame
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class VideoSummary:
    first: np.ndarray  # RGB, full size
    last: np.ndarray
    small: tuple[np.ndarray, ...]  # every frame, grey, long side SMALL_SIDE (float32 0-1)


def _small(rgb: np.ndarray) -> np.ndarray:
    """Grey, long side ``SMALL_SIDE``, 0-1: what the temporal measures compare."""
    return cv2.cvtColor(fit(rgb, SMALL_SIDE), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def read_stills(paths: Sequence[str | Path]) -> VideoSummary:
    """Image files as a video (the static control: the first frame, held)."""
    frames = [read_image(p) for p in paths]
    if not frames:
        raise ValueError("no frames")
    return VideoSummary(frames[0], frames[-1], tuple(_small(f) for f in frames))


def read_video(path: str | Path) -> VideoSummary:
    """One pass over the video: its first and last frames at full size, and every frame
    small and grey for the temporal measures."""
    first = last = None
    small: list[np.ndarray] = []
    for rgb in video_frames(path):
        first = rgb if first is None else first
        last = rgb
        small.append(_small(rgb))
    if first is None:
        raise ValueError(f"no frame decodes from {path}")
    return VideoSummary(first, last, tuple(small))


# ---------------------------------------------------------------- measures


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two same-sized images (grey, Gaussian window 11, sigma 1.5)."""
    x = (cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) if a.ndim == 3 else a).astype(np.float64)
    y = (cv2.cvtColor(b, cv2.COLOR_RGB2GRAY) if b.ndim == 3 else b).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(img):
        return cv2.GaussianBlur(img, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(np.clip(index.mean(), 0.0, 1.0))


def _aligned(frame: np.ndarray, like: np.ndarray) -> np.ndarray:
    if frame.shape[:2] == like.shape[:2]:
        return frame
    return cv2.resize(frame, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_AREA)


CHANGE_LEVEL = 48  # a pixel differs when a channel differs by this much (0-255), after a light blur
MIN_AREA = 0.002  # a cell whose differing blobs cover less than this share of it is unchanged


def _photometric(frame: np.ndarray, like: np.ndarray, level: float = CHANGE_LEVEL) -> np.ndarray:
    """``frame``'s levels moved towards ``like``'s (mean and spread per channel) by at most
    a drift's worth (gain 0.85-1.15, a quarter of the change level and at most 12 levels): a
    generator's brightness or contrast drift is not a wrong state, but a picture that changed
    colour, or a faint change half made, is not corrected into the right one."""
    f, ref = frame.astype(np.float32), like.astype(np.float32)
    mean, ref_mean = f.mean(axis=(0, 1)), ref.mean(axis=(0, 1))
    gain = np.clip(ref.std(axis=(0, 1)) / (f.std(axis=(0, 1)) + 1e-3), 0.85, 1.15)
    limit = min(12.0, 0.25 * level)
    shift = np.clip(ref_mean - mean, -limit, limit)
    return np.clip((f - mean) * gain + mean + shift, 0, 255)


def registered(frame: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``frame`` shifted onto ``like`` (phase correlation, up to 3% of the frame): a
    generator's drift of a few pixels is not a wrong state."""
    a, b = (cv2.cvtColor(x.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32) for x in (like, frame))
    (dx, dy), _ = cv2.phaseCorrelate(a, b)
    h, w = like.shape[:2]
    if abs(dx) > 0.03 * w or abs(dy) > 0.03 * h or (abs(dx) < 0.25 and abs(dy) < 0.25):
        return frame
    return cv2.warpAffine(frame.astype(np.float32), np.float32([[1, 0, -dx], [0, 1, -dy]]), (w, h),
                          borderMode=cv2.BORDER_REPLICATE)


def change_level(first: np.ndarray, final: np.ndarray) -> float:
    """The level at which a pixel counts as changed: a third of the task's own strongest change
    (a faint picture changes faintly; a half-way blend still differs), between 12 and CHANGE_LEVEL."""
    blur = [cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.0) for x in (first, final)]
    strongest = float(np.abs(blur[0] - blur[1]).max())
    return min(float(CHANGE_LEVEL), max(12.0, 0.35 * strongest))


def differing(a: np.ndarray, b: np.ndarray, level: float = CHANGE_LEVEL) -> np.ndarray:
    """Where two same-sized frames differ as shapes do: pixels past ``level`` after a light
    blur, thin lines (a pixel or two of drift along an edge, compression ringing) opened away."""
    blur = [cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.0) for x in (a, b)]
    mask = (np.abs(blur[0] - blur[1]).max(axis=2) > level).astype(np.uint8)
    k = 3
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(bool)
    edge = max(2, round(0.02 * min(mask.shape)))  # the frame's edge: where drift and its padding show, not the task
    opened[:edge], opened[-edge:], opened[:, :edge], opened[:, -edge:] = False, False, False, False
    return opened


def grid_accuracy(last: np.ndarray, first: np.ndarray, final: np.ndarray, rows: int, cols: int) -> tuple[float, int, int]:
    """(share of cells right, right, total). In each cell: the area where the task changes
    the picture (first vs final) and the area where the video's last frame is still wrong
    (last vs final). A changed cell is right when under a third of its change is left
    wrong; an unchanged cell when almost none of it differs."""
    level = change_level(first, final)
    expected = differing(first, final, level)
    wrong = differing(_photometric(registered(last, final), final, level), final, level)
    h, w = final.shape[:2]
    right = 0
    for r in range(rows):
        for c in range(cols):
            ys, ye, xs, xe = r * h // rows, (r + 1) * h // rows, c * w // cols, (c + 1) * w // cols
            change, error = float(expected[ys:ye, xs:xe].mean()), float(wrong[ys:ye, xs:xe].mean())
            right += error <= (0.35 * change if change >= MIN_AREA else MIN_AREA)
    total = rows * cols
    return right / total, right, total


def masked_accuracy(last: np.ndarray, first: np.ndarray, final: np.ndarray) -> float:
    """Where the task changes the picture (first and final differ): the share of its pixels
    the video's last frame brought within a third of the way from the final state (0.7);
    elsewhere: whether the rest stayed, wrong area against the change's (0.3). With nothing
    to change, the structural similarity."""
    level = change_level(first, final)
    expected = differing(first, final, level)
    if expected.mean() < MIN_AREA / 10:
        return ssim(last, final)
    aligned = _photometric(registered(last, final), final, level)
    wrong = differing(aligned, final, level)
    near = cv2.dilate(expected.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    blur = [cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.0) for x in (first, final, aligned)]
    gap = np.abs(blur[0] - blur[1]).max(axis=2)[expected]  # how far each changed pixel must go
    left = np.abs(blur[2] - blur[1]).max(axis=2)[expected]  # how far it still is
    progress = float((left <= 0.35 * gap).mean())  # the share of the change made (a half-way blend: none)
    area = float(expected.sum())
    kept = 1.0 - min(1.0, float((wrong & ~near).sum()) / max(area, MIN_AREA * wrong.size))
    return 0.7 * progress + 0.3 * kept


def temporal_smoothness(small: Sequence[np.ndarray]) -> tuple[float, tuple[int, ...]]:
    """1 for a video whose frame-to-frame change never jumps above its usual change; a
    jump of 0.15 (mean grey level, 0-1) above it gives 0. Spikes: the frames after which
    the change is over 4x the median and over 0.02."""
    if len(small) < 2:
        return 1.0, ()
    diffs = np.array([float(np.abs(b - a).mean()) for a, b in zip(small, small[1:])])
    baseline = float(np.median(diffs))
    spikes = tuple(int(i) + 1 for i in np.nonzero((diffs > 4 * baseline) & (diffs > 0.02))[0])
    return 1.0 - min(1.0, max(0.0, float(diffs.max()) - baseline) / 0.15), spikes


def visual_quality(last: np.ndarray, reference: np.ndarray) -> float:
    """0.6 sharpness (variance of the Laplacian, against the expected frame's, capped at 1)
    and 0.4 exposure (mean level against the expected frame's)."""
    grey, ref = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float64) for x in (last, reference))
    sharp = cv2.Laplacian(grey, cv2.CV_64F).var()
    ref_sharp = cv2.Laplacian(ref, cv2.CV_64F).var()
    sharpness = 1.0 if ref_sharp < 1e-6 else min(1.0, sharp / ref_sharp)
    exposure = 1.0 - min(1.0, abs(grey.mean() - ref.mean()) / 128.0)
    return 0.6 * sharpness + 0.4 * exposure


# ---------------------------------------------------------------- a task


def grid_of(rule: DomainRule, question_data: Mapping[str, Any]) -> tuple[int, int] | None:
    if rule.grid:
        return rule.grid
    value: Any = question_data
    for part in str(rule.grid_key).split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    if isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)):
        return int(m.group(1)), int(m.group(2))  # "3x3"
    if isinstance(value, (list, tuple)) and value and math.isqrt(len(value)) ** 2 == len(value):
        side = math.isqrt(len(value))  # a flattened square board (sudoku's solution)
        return side, side
    return None


def score_video(
    video: str | Path | VideoSummary,
    first_frame: str | Path | None,
    final_frame: str | Path | None,
    domain: str,
    question_data: Mapping[str, Any] | None = None,
    book: RuleBook | None = None,
) -> RuleScores:
    book = book or default_rule_book()
    rule = book.rule(domain)
    thresholds = {"final_frame_accuracy": rule.final_threshold, "overall": rule.overall_threshold}
    if rule.method == "none":
        return RuleScores(judgeable=False, method="none", reason=rule.reason, thresholds=thresholds)
    if final_frame is None or not Path(final_frame).is_file():
        return RuleScores(judgeable=False, method=rule.method, reason="the task has no final_frame.png to compare with",
                          thresholds=thresholds)
    summary = video if isinstance(video, VideoSummary) else read_video(video)
    # at the video's own resolution (at most WORK_SIDE): the expected frames lose the detail
    # a generator's smaller frames never had, so only what differs in the picture counts
    side = min(WORK_SIDE, max(summary.last.shape[:2]))
    final = fit(read_image(final_frame), side)
    first = _aligned(fit(read_image(first_frame), side), final) if first_frame and Path(first_frame).is_file() else None
    last = _aligned(summary.last, final)
    cells = None
    if rule.method == "grid" and (grid := grid_of(rule, question_data or {})) is not None and first is not None:
        accuracy, right, total = grid_accuracy(last, first, final, *grid)
        cells, method = {"right": right, "total": total, "rows": grid[0], "cols": grid[1]}, "grid"
    elif first is not None:
        accuracy, method = masked_accuracy(last, first, final), "masked"
    else:
        accuracy, method = ssim(last, final), "ssim"
    consistency = ssim(_aligned(summary.first, first), first) if first is not None else None
    smooth, spikes = temporal_smoothness(summary.small)
    quality = visual_quality(last, final)
    dims = {"final_frame_accuracy": accuracy, "first_frame_consistency": consistency,
            "temporal_smoothness": smooth, "visual_quality": quality}
    used = {k: w for k, w in book.weights.items() if dims[k] is not None}
    overall = sum(dims[k] * w for k, w in used.items()) / sum(used.values())
    passed = bool(accuracy >= rule.final_threshold - 1e-9 and overall >= rule.overall_threshold - 1e-9)
    return RuleScores(judgeable=True, method=method, final_frame_accuracy=accuracy, first_frame_consistency=consistency,
                      temporal_smoothness=smooth, visual_quality=quality, overall=overall, passed=passed,
                      spikes=spikes, cells=cells, thresholds=thresholds)


def score_task_media(media: str | Sequence[str], question_dir: str | Path, domain: str,
                     question_data: Mapping[str, Any] | None = None, book: RuleBook | None = None) -> RuleScores:
    """Rule scores of a generated video (a file, or image files standing for one) for the
    task in ``question_dir`` (its first_frame.png and final_frame.png)."""
    summary = read_video(media) if isinstance(media, (str, Path)) else read_stills(media)
    folder = Path(question_dir)
    return score_video(summary, folder / "first_frame.png", folder / "final_frame.png", domain, question_data, book)
