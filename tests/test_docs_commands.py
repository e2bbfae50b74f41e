"""Every shell block in README.md and docs/*.md works as written.

Each ```bash block runs in a scratch folder holding a copy of the checkout's evals,
fixtures and configs, with this interpreter's `pytest` and `vlm-bench` first on PATH. A
block that needs a GPU, real weights, a cluster or a long install carries
``<!-- docs-test: parse-only (reason) -->`` on the line above it and is only parsed
(``bash -n``). Running the blocks takes a minute or two, so it carries the ``docs`` marker
(deselected by default; ``pytest -m docs``, and a stage of .ci/run); the checks of the
markup and the parsing run in the default suite.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell"}
MARK = re.compile(r"^<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
COPIED = ("evals", "fixtures", "configs", "examples", "conftest.py", "pyproject.toml")
IGNORED_BY_GIT = {line.strip().rstrip("/") for line in (REPO / ".gitignore").read_text().splitlines()
                  if line.strip() and not line.startswith("#") and "*" not in line}


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    mark: str | None  # the docs-test mark above it, if any
    reason: str | None

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def code_blocks(doc: Path) -> list[Block]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = opening["indent"]
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise AssertionError(f"{doc}:{i + 1}: code block never closed")
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1 : end])
        above = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = MARK.match(above)
        blocks.append(Block(doc, i + 1, opening["lang"], body + "\n", mark["kind"] if mark else None, mark and mark["reason"]))
        i = end + 1
    return blocks


ALL_BLOCKS = [b for doc in DOCS for b in code_blocks(doc)]
SHELL_BLOCKS = [b for b in ALL_BLOCKS if b.lang in SHELL_LANGS]
RUNNABLE = [b for b in SHELL_BLOCKS if b.mark is None]


def test_the_docs_have_shell_blocks_to_run():
    assert len(RUNNABLE) >= 10, [b.id for b in RUNNABLE]
    assert any(b.doc.name == "README.md" for b in RUNNABLE)


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.id)
def test_block_is_marked_correctly(block):
    if block.mark is None:
        # a run of it would install into the environment running the tests (an editable
        # install there repoints everyone's vlm_bench at the scratch copy)
        assert not re.search(r"\bpip3? install\b", block.code), f"{block.id}: an install must be parse-only"
        return
    assert block.lang in SHELL_LANGS, f"{block.id}: a docs-test mark above a {block.lang or 'plain'} block"
    assert block.mark == "parse-only", f"{block.id}: unknown docs-test mark {block.mark!r} (only parse-only)"
    assert block.reason and block.reason.strip(), f"{block.id}: say why it cannot run: parse-only (needs a GPU)"


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.id)
def test_block_parses(block):
    proc = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
    assert proc.returncode == 0, f"{block.id}: {proc.stderr}"


def test_readme_links_into_docs_exist():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links, "README.md links no page of docs/"
    assert [l for l in links if not (REPO / l).is_file()] == []
    linked = {Path(l).name for l in links}
    assert sorted(p.name for p in (REPO / "docs").glob("*.md") if p.name not in linked) == [], "a docs page README does not link"


def test_readme_is_a_short_start_page():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 70


@pytest.fixture
def scratch(tmp_path):
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, symlinks=True)
        else:
            shutil.copy2(src, tmp_path / name)
    return tmp_path


@pytest.mark.docs
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_block_runs(block, scratch):
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    before = {p.name for p in scratch.iterdir()}
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.code],
        cwd=scratch, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"{block.id} failed (exit {proc.returncode}):\n{block.code}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    # what a block writes stays where the checkout ignores it: no untracked files for a user
    left = sorted({p.name for p in scratch.iterdir()} - before - IGNORED_BY_GIT)
    assert left == [], f"{block.id} left {left} in the checkout (write under vlm-results/)"


def text_block_after(doc: Path, heading_text: str) -> list[str]:
    """The lines of the first ```text block after the line holding ``heading_text``."""
    blocks = [b for b in code_blocks(doc) if b.lang == "text"]
    start = next(i for i, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1) if heading_text in line)
    return next(b for b in blocks if b.line > start).code.splitlines()


def test_the_output_shown_in_the_docs_is_what_the_main_command_prints(tmp_path):
    """README's table and options.md's "collected" lines are the output of README's main
    command on the smoke set, as it runs today (an excerpt's "..." line stands for rows left out)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "evals", "--backend=mock", "--dataset", "fixtures/smoke/smoke.jsonl",
         "--results-dir", str(tmp_path / "smoke"), "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed = set(proc.stdout.splitlines())
    table = [line for line in text_block_after(REPO / "README.md", "It ends with a table")
             if not line.startswith(("...", "results:"))]
    collected = text_block_after(REPO / "docs" / "options.md", '## Why "N deselected"')
    assert len(table) >= 4 and len(collected) >= 2
    assert [line for line in table + collected if line not in printed] == [], proc.stdout
