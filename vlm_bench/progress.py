"""What a run shows while it goes: on a terminal, a progress bar with rate and ETA (tqdm's
meter) redrawn in place after each item; elsewhere (a log file, -v) a status line every
``interval`` seconds."""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _pass_rate(passed: int, scored: int) -> str:
    return f"pass rate {100 * passed / scored:.1f}% so far" if scored else "no scored item yet"


def progress_line(done: int, total: int, passed: int, scored: int, elapsed_s: float) -> str:
    share = f" ({100 * done / total:.0f}%)" if total else ""
    eta = f", ETA {_duration(elapsed_s / done * (total - done))}" if done and total > done else ""
    return f"vlm-bench: {done}/{total} items{share}, {_pass_rate(passed, scored)}, {_duration(elapsed_s)} elapsed{eta}"


def progress_bar(done: int, total: int, passed: int, scored: int, elapsed_s: float, width: int = 100) -> str:
    from tqdm import tqdm

    return tqdm.format_meter(done, total or None, elapsed_s, ncols=width, prefix="vlm-bench", unit="item",
                             postfix=_pass_rate(passed, scored))


class Progress:
    """``bar``: redraw one line in place (pytest's own outcome letters for evaluation items
    are left out meanwhile, see the plugin); else a status line every ``interval`` s."""

    def __init__(self, reporter: Any, bar: bool, interval: float, started: float | None = None):
        self.reporter = reporter
        self.bar = bar
        self.interval = interval
        self.started = time.monotonic() if started is None else started  # time.monotonic() of the run's start
        self.last = self.started
        self.drawn = False

    def update(self, done: int, total: int, passed: int, scored: int) -> None:
        now = time.monotonic()
        elapsed = now - self.started
        if self.bar:
            width = max(40, self.reporter._tw.fullwidth - 1)
            self.reporter.rewrite(progress_bar(done, total, passed, scored, elapsed, width), erase=True)
            self.drawn = True
            if done >= total:
                self.finish()
            return
        if now - self.last < self.interval and done < total:
            return
        self.last = now
        self.reporter.ensure_newline()  # after the outcome letters of this line
        self.reporter.write_line(progress_line(done, total, passed, scored, elapsed))

    def finish(self) -> None:
        if self.drawn:
            self.reporter.write_line("")
            self.drawn = False


def progress_display(mode: str, verbosity: int, isatty: bool | None = None, ci: bool | None = None) -> tuple[bool, bool]:
    """(shown, as a bar): ``auto`` shows progress on a terminal at pytest's normal
    verbosity or above (a bar at normal verbosity, status lines with -v), nothing with -q,
    in CI or when the output is not a terminal; ``always`` also prints status lines into a
    log; ``never`` shows nothing."""
    tty = (sys.stdout.isatty() if isatty is None else isatty) and not (bool(os.environ.get("CI")) if ci is None else ci)
    shown = mode == "always" or (mode == "auto" and tty and verbosity >= 0)
    return shown, shown and tty and verbosity == 0
