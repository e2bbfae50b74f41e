"""SubRip (.srt) subtitles: the lines on screen at given moments of a video."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

_TIME = re.compile(r"(\d+):(\d{2}):(\d{2})[,.](\d{1,3})")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def _seconds(stamp: str) -> float:
    m = _TIME.fullmatch(stamp.strip())
    if not m:
        raise ValueError(f"not an SRT time: {stamp!r}")
    h, mi, s, ms = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def parse_srt(path: str | Path) -> list[Cue]:
    text = Path(path).read_text(encoding="utf-8-sig", errors="replace").replace("\r\n", "\n")
    cues = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line for line in block.split("\n") if line.strip()]
        arrow = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if arrow is None:
            continue
        start, _, end = lines[arrow].partition("-->")
        body = " ".join(lines[arrow + 1 :]).replace("\\N", " ")
        body = re.sub(r"<[^>]+>", "", body).strip()  # <i>, <font ...> markup
        if body:
            cues.append(Cue(_seconds(start), _seconds(end.split()[0]), body))
    return cues


def lines_at(cues: Iterable[Cue], timestamps: Iterable[float]) -> list[str]:
    """For each moment, the cue whose time span holds it (as Video-MME's reference code
    picks them); a cue spanning several sampled frames is given once."""
    cues = list(cues)
    picked: list[str] = []
    for t in timestamps:
        cue = next((c for c in cues if c.start < t < c.end), None)
        if cue is not None and (not picked or picked[-1] != cue.text):
            picked.append(cue.text)
    return picked
