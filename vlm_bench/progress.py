"""A one-line progress report for long runs: items done, pass rate so far, ETA."""

from __future__ import annotations


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def progress_line(done: int, total: int, passed: int, scored: int, elapsed_s: float) -> str:
    share = f" ({100 * done / total:.0f}%)" if total else ""
    rate = f"pass rate {100 * passed / scored:.1f}% so far" if scored else "no scored item yet"
    eta = f", ETA {_duration(elapsed_s / done * (total - done))}" if done and total > done else ""
    return f"vlm-bench: {done}/{total} items{share}, {rate}, {_duration(elapsed_s)} elapsed{eta}"
