"""A real ``transformers serve`` (transformers' own OpenAI-compatible server) on 127.0.0.1
with the tiny InternVL folder, for the tests that need one: one server per test session,
started as soon as collection shows a selected test asks for ``tiny_server`` (its ~10-20 s
start-up then overlaps the tests before it), stopped at the end of the session.

Registered from tests/conftest.py through ``pytest_plugins``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

FIXTURE = "tiny_server"
START_TIMEOUT_S = 240
_KEY = pytest.StashKey["TinyServer"]()


class TinyServer:
    """``python -m transformers.cli.transformers serve DIR`` on a free local port."""

    def __init__(self, log_dir: Path):
        self.log_path = log_dir / "transformers-serve.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.model_dir = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        from vlm_bench.registry.tiny_internvl import ensure_tiny_internvl

        self.model_dir = str(ensure_tiny_internvl())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_UPDATE_CHECK="1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model_dir,
                 "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"],
                stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"transformers serve did not answer /health within {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.log_path.parent, ignore_errors=True)  # a failed start showed its log already


def _die_with_parent() -> None:
    """In the server's process, before exec: on Linux, get SIGTERM when the test process
    dies, so a killed test run (kill -9, a CI timeout) leaves no server behind."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _server(config: pytest.Config) -> TinyServer:
    if _KEY not in config.stash:
        server = TinyServer(Path(tempfile.mkdtemp(prefix="vlm-bench-serve-")))
        server.start()
        config.stash[_KEY] = server
    return config.stash[_KEY]


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    under_xdist = hasattr(session.config, "workerinput") or getattr(session.config.option, "numprocesses", None)
    if not under_xdist and not session.config.option.collectonly and any(FIXTURE in getattr(it, "fixturenames", ()) for it in session.items):
        _server(session.config)  # start now, wait when a test first asks


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_KEY, None)
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def tiny_server(pytestconfig: pytest.Config) -> TinyServer:
    server = _server(pytestconfig)
    server.wait_ready()
    return server
