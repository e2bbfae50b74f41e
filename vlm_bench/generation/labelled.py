"""A labelled set of generated-looking videos, for measuring how far a grader (rule scores,
a judge model, a judge protocol) agrees with the truth.

From a questions tree (``<domain>_task/<task_id>/first_frame.png`` and ``final_frame.png``)
it writes a VMEvalKit output tree, one pseudo-generator per way a video can end, and
``labels.json``: for each video, whether it ends in the task's expected final state,
true by construction. The videos look generated: a morph from the first frame to their
end state at the size a generator would give, then H.264 at a generator-like quality, a
little blur, a pixel of drift and flicker.

- ``synthetic-solves``: morphs to the expected final frame and holds it (right).
- ``synthetic-jumps``: holds the first frame, then cuts to the final one (right; not smooth).
- ``synthetic-static``: never leaves the first frame (wrong).
- ``synthetic-halfway``: stops halfway between the two (wrong).
- ``synthetic-wrong-end``: morphs to a wrong final state, the expected one with two of its
  changed regions swapped or, where the task changes one region only, that region mirrored
  (wrong)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

LABELS_FILE = "labels.json"
CASES = {  # pseudo-generator -> whether its videos end in the expected state
    "synthetic-solves": True,
    "synthetic-jumps": True,
    "synthetic-static": False,
    "synthetic-halfway": False,
    "synthetic-wrong-end": False,
}
FRAMES = 25
FPS = 8


@dataclass(frozen=True)
class Look:
    """How generated the videos look: their size, blur, drift (pixels), flicker, noise and
    H.264 quality. ``tuning`` is the look the rule thresholds were set on; ``held-out``
    was never used to set them."""

    side: int  # the long side of the videos
    blur: float
    drift: float
    flicker: float
    noise: float
    crf: int


LOOKS = {
    "tuning": Look(side=320, blur=0.7, drift=1.0, flicker=0.03, noise=1.5, crf=26),
    "held-out": Look(side=480, blur=1.2, drift=3.0, flicker=0.06, noise=3.0, crf=32),
}


def _read(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _sized(frame: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = side / max(h, w)
    size = (max(2, round(w * scale) // 2 * 2), max(2, round(h * scale) // 2 * 2))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def wrong_end(first: np.ndarray, final: np.ndarray, rows: int = 4, cols: int = 4) -> np.ndarray:
    """The expected final state made wrong. The region (of ``rows`` x ``cols``) that the
    task changes most is swapped with the region whose content differs from it most (a
    board's cell: a wrong digit, a piece or the agent on the wrong square); if every region
    looks alike, it is mirrored left to right."""
    h, w = final.shape[:2]
    boxes = [(r * h // rows, (r + 1) * h // rows, c * w // cols, (c + 1) * w // cols) for r in range(rows) for c in range(cols)]

    def region(img: np.ndarray, box) -> np.ndarray:
        return img[box[0]:box[1], box[2]:box[3]].astype(np.int16)

    changed = max(boxes, key=lambda b: float(np.abs(region(first, b) - region(final, b)).mean()))
    same_shape = [b for b in boxes if b != changed and region(final, b).shape == region(final, changed).shape]
    partner = max(same_shape, key=lambda b: float(np.abs(region(final, b) - region(final, changed)).mean()), default=None)
    out = final.copy()
    if partner is not None and np.abs(region(final, partner) - region(final, changed)).mean() > 8:
        a, b = final[changed[0]:changed[1], changed[2]:changed[3]].copy(), final[partner[0]:partner[1], partner[2]:partner[3]].copy()
        out[changed[0]:changed[1], changed[2]:changed[3]], out[partner[0]:partner[1], partner[2]:partner[3]] = b, a
    else:
        out[changed[0]:changed[1], changed[2]:changed[3]] = final[changed[0]:changed[1], changed[2]:changed[3]][:, ::-1]
    # where that leaves the change looking right (flat pictures, symmetric shapes), the
    # changed pixels take the opposite colour: a wrong end by construction
    change = np.abs(first.astype(np.int16) - final.astype(np.int16)).max(axis=2) > 24
    if change.any() and np.abs(out.astype(np.int16) - final.astype(np.int16)).max(axis=2)[change].mean() < 40:
        out[change] = 255 - final[change]
    return out


def _frames(first: np.ndarray, end: np.ndarray, case: str, rng: np.random.Generator, look: Look) -> list[np.ndarray]:
    import cv2

    first, end = first.astype(np.float32), end.astype(np.float32)
    if case == "synthetic-jumps":
        weights = [0.0] * (FRAMES - 6) + [1.0] * 6
    elif case == "synthetic-static":
        weights = [0.0] * FRAMES
    elif case == "synthetic-halfway":
        weights = [min(0.5, 0.5 * i / (FRAMES // 2)) for i in range(FRAMES)]
    else:
        weights = [min(1.0, i / (FRAMES - 6)) for i in range(FRAMES)]
    frames = []
    for i, a in enumerate(weights):
        frame = (1 - a) * first + a * end
        frame = cv2.GaussianBlur(frame, (0, 0), look.blur)
        dx, dy = (float(v) for v in rng.uniform(-look.drift, look.drift, 2))
        frame = cv2.warpAffine(frame, np.float32([[1, 0, dx], [0, 1, dy]]), (frame.shape[1], frame.shape[0]),
                               borderMode=cv2.BORDER_REPLICATE)
        frame = frame * float(rng.uniform(1 - look.flicker, 1 + look.flicker)) + rng.normal(0, look.noise, frame.shape).astype(np.float32)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def make_labelled_set(questions: str | Path, out: str | Path, domains: Iterable[str] | None = None, seed: int = 0,
                      look: str = "tuning") -> Path:
    """Write the labelled tree under ``out`` (``<generator>/<domain>_task/<task_id>/video/
    video.mp4``, each with a ``question/`` copy) and ``out/labels.json``; returns the label file."""
    import shutil

    import cv2

    from vlm_bench.datasets.vmevalkit import read_metadata
    from vlm_bench.utils.synthetic import write_video
    from vlm_bench.video_rules import grid_of, load_rule_book

    book = load_rule_book()
    if look not in LOOKS:
        raise ValueError(f"look must be one of {', '.join(LOOKS)}, got {look!r}")
    style = LOOKS[look]

    questions, out = Path(questions), Path(out)
    wanted = set(domains) if domains else None
    labels: dict[str, bool] = {}
    rng = np.random.default_rng(seed)
    tasks = sorted(p for p in questions.glob("*_task/*") if (p / "final_frame.png").is_file() and (p / "first_frame.png").is_file())
    for task in tasks:
        domain = task.parent.name.removesuffix("_task")
        if wanted is not None and domain not in wanted:
            continue
        first, final = _sized(_read(task / "first_frame.png"), style.side), _sized(_read(task / "final_frame.png"), style.side)
        if final.shape != first.shape:
            final = cv2.resize(final, (first.shape[1], first.shape[0]), interpolation=cv2.INTER_AREA)
        grid = grid_of(book.rule(domain), read_metadata(task)) if book.rule(domain).method == "grid" else None
        ends = {"synthetic-wrong-end": wrong_end(first, final, *(grid or (4, 4)))}
        for case, right in CASES.items():
            run = out / case / task.parent.name / task.name
            (run / "video").mkdir(parents=True, exist_ok=True)
            write_video(run / "video" / "video.mp4", _frames(first, ends.get(case, final), case, rng, style), fps=FPS,
                        options={"crf": str(style.crf), "preset": "veryfast"})
            shutil.copytree(task, run / "question", dirs_exist_ok=True)
            labels[f"{case}/{task.parent.name}/{task.name}"] = right
    path = out / LABELS_FILE
    path.write_text(json.dumps({"labels": labels, "cases": CASES, "seed": seed, "look": look, "look_settings": asdict(style)},
                               indent=1, sort_keys=True) + "\n")
    return path
