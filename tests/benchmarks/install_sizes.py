"""How big and how slow each install of vlm-bench is, measured: a fresh virtual environment
per install, ``pip install -e ".[extra]"`` from this checkout, its wall time and the size
of the environment on disk. README.md's install table comes from this script.

    python tests/benchmarks/install_sizes.py            # core, serve, native, test (several minutes)
    python tests/benchmarks/install_sizes.py serve      # one of them
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALLS = {"core": ".", "serve": ".[serve]", "native": ".[native]", "test": ".[test]"}


def size_mb(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return round(total / 2**20)


def measure(name: str, target: str) -> tuple[int, float, int | None]:
    """(exit status, seconds, MB of the environment)."""
    venv = Path(tempfile.mkdtemp(prefix=f"vlm-bench-install-{name}-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        started = time.monotonic()
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-e", target], cwd=REPO,
                              capture_output=True, text=True)
        took = time.monotonic() - started
        cuda = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "nvidia"
        print(f"{name:>7}: pip install -e \"{target}\": exit {done.returncode}, {took:.0f} s, {size_mb(venv)} MB"
              + (f" ({size_mb(cuda)} MB of CUDA libraries)" if cuda.is_dir() else ""), flush=True)
        return done.returncode, took, size_mb(venv)
    finally:
        shutil.rmtree(venv, ignore_errors=True)


if __name__ == "__main__":
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    for name in sys.argv[1:] or INSTALLS:
        measure(name, INSTALLS[name])
