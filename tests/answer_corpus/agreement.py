"""The agreement table in docs/scoring.md: how often each extractor scores the
hand-labelled multiple-choice corpus (mc.jsonl) as a human would. An extractor agrees on
a response when the set of reference letters it would score as correct is exactly the
labelled letter (or empty, for a response that commits to no option).

    python tests/answer_corpus/agreement.py      # prints the table
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Sequence

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):
    sys.path.insert(0, str(HERE.parent.parent))

from tests.answer_corpus.peers import PEERS  # noqa: E402
from vlm_bench.answers import extract_choice, extract_number, extract_yesno  # noqa: E402


def load(name: str) -> list[dict]:
    with open(HERE / f"{name}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def vlm_bench_accepts(response: str, options: Sequence[str]) -> set[str]:
    got = extract_choice(response, options)
    return {got} if got else set()


EXTRACTORS: dict[str, Callable[[str, Sequence[str]], set[str]]] = {"vlm-bench": vlm_bench_accepts, **PEERS}


def agreement() -> tuple[list[str], dict[str, dict[str, tuple[int, int]]]]:
    """(styles in corpus order, extractor -> style (and "all") -> (agreeing, total))."""
    rows = load("mc")
    styles = list(dict.fromkeys(r["style"] for r in rows))
    table: dict[str, dict[str, tuple[int, int]]] = {}
    for name, accepts in EXTRACTORS.items():
        counts = {s: [0, 0] for s in ["all", *styles]}
        for r in rows:
            ok = accepts(r["response"], r["options"]) == ({r["label"]} if r["label"] else set())
            for key in ("all", r["style"]):
                counts[key][0] += ok
                counts[key][1] += 1
        table[name] = {k: (a, n) for k, (a, n) in counts.items()}
    return styles, table


def markdown_table() -> str:
    styles, table = agreement()
    columns = ["all", *styles]
    totals = table["vlm-bench"]
    head = "| extractor | " + " | ".join(f"{c} ({totals[c][1]})" for c in columns) + " |"
    lines = [head, "|" + " --- |" * (len(columns) + 1)]
    for name, counts in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * counts[c][0] / counts[c][1]:.0f}%" for c in columns) + " |")
    return "\n".join(lines)


KINDS = {"yesno": "yes/no", "numeric": "numeric", "mc": "multiple choice"}


def heldout_accuracy() -> dict[str, tuple[int, int]]:
    """kind -> (responses read as labelled, responses) on the held-out corpus."""
    out = {}
    for kind in KINDS:
        rows = [r for r in load("heldout") if r["kind"] == kind]
        if kind == "yesno":
            read = [extract_yesno(r["response"]) for r in rows]
        elif kind == "numeric":
            read = [extract_number(r["response"]) for r in rows]
        else:
            read = [extract_choice(r["response"], r["options"]) for r in rows]
        out[kind] = (sum(got == r["label"] for got, r in zip(read, rows)), len(rows))
    return out


def heldout_table() -> str:
    accuracy = heldout_accuracy()
    lines = ["| held-out corpus | responses | read as labelled | accuracy |", "| --- | --- | --- | --- |"]
    for kind, name in KINDS.items():
        ok, total = accuracy[kind]
        lines.append(f"| {name} | {total} | {ok} | {100 * ok / total:.1f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
    print()
    print(heldout_table())
