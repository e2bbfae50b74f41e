"""Plain-text tables for the command line, below both CLIs (``vlm-bench models``,
``datasets``, ``generators``)."""

from __future__ import annotations

from typing import Sequence


def table_lines(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def print_table(rows: Sequence[Sequence[str]]) -> None:
    for line in table_lines(rows):
        print(line)
