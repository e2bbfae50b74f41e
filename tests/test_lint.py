"""pyflakes over the library (from the test extra): no undefined name, no unused import,
no unused variable. A module that re-exports names lists them in ``__all__``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vlm_bench"


def test_pyflakes_finds_nothing_in_the_library():
    pytest.importorskip("pyflakes", reason="pyflakes comes with the test extra: pip install -e '.[test]'")
    done = subprocess.run([sys.executable, "-m", "pyflakes", str(PACKAGE)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_pyflakes_would_see_an_undefined_name(tmp_path):
    pytest.importorskip("pyflakes", reason="pyflakes comes with the test extra: pip install -e '.[test]'")
    (tmp_path / "m.py").write_text("def f():\n    return undefined_name\n")
    done = subprocess.run([sys.executable, "-m", "pyflakes", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1 and "undefined name 'undefined_name'" in done.stdout
