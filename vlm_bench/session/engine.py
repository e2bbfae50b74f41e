"""The engine of a session: one evaluator per process, loaded on first use; what this
process tells the summary about it; and the stop a server that is down calls for."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from vlm_bench.config import RunConfig
from vlm_bench.types import ItemRecord, Sample

SETUP_FAILED = "vlm-bench could not set up the evaluation"


class SessionStop(Exception):
    """No item can get past this (a server that is down, or refuses the key): the session
    ends now; the records written so far stay and ``--resume`` continues."""


class EngineSession:
    """One process's evaluator (engine loaded once), or the reason it could not be built;
    then every item's record carries ``build_error``."""

    def __init__(self, run: RunConfig, samples: Callable[[], Sequence[Sample]], worker: str = "main",
                 say: Callable[[str], None] | None = None):
        self.run = run
        self._samples = samples
        self.worker = worker
        self.say = say  # a line for the user before a wait that could look like a hang
        self._evaluator = None
        self.build_error: str | None = None  # the evaluator itself could not be built
        self.stopped_by: str | None = None  # why the session stopped (a server that is down)

    def evaluator(self):
        """The evaluator, built and loaded on first use; None when it cannot be built.
        Raises SessionStop for a server that is down."""
        if self._evaluator is None and self.build_error is None:
            from vlm_bench.evaluate import Evaluator
            from vlm_bench.runners import ServerUnavailable

            try:
                evaluator = Evaluator(self.run, self._samples())
                self.announce_wait()
                evaluator.load()
            except ServerUnavailable as exc:
                raise self.stop(exc) from None
            except Exception as exc:
                self.build_error = f"{SETUP_FAILED}: {type(exc).__name__}: {exc}"
                return None
            self._evaluator = evaluator
        return self._evaluator

    def stop(self, exc: Exception) -> SessionStop:
        """Close the engine and say why the session ends (the caller raises it)."""
        self.close()
        self.stopped_by = str(exc)
        return SessionStop(self.stopped_by)

    def preflight(self) -> None:
        """An engine that can check its server first (the openai backend) does it before
        any worker starts, so a server that is down stops the run once, with its URL."""
        from vlm_bench.runners import ServerUnavailable, engine_class

        check = getattr(engine_class(self.run.backend), "preflight", None)
        if check is None:
            return
        self.announce_wait()
        try:
            check(self.run.model)
        except ServerUnavailable as exc:
            raise self.stop(exc) from None

    def announce_wait(self) -> None:
        """Say what loading the engine waits for, where that can take a while (a server)."""
        from vlm_bench.runners import engine_class

        waiting = getattr(engine_class(self.run.backend), "waiting_for", None)
        if waiting is not None and self.say is not None:
            self.say(f"vlm-bench: {waiting(self.run.model)}")

    def evaluate(self, sample: Sample, ahead: Sequence[Sample], prefetch: Sequence[Sample]) -> ItemRecord:
        """The item's record, with ``ahead`` generated alongside it (a batch, or requests in
        flight) and the frames of ``prefetch`` decoded in the background."""
        from vlm_bench.evaluate import error_record
        from vlm_bench.runners import ServerUnavailable

        evaluator = self.evaluator()
        if evaluator is None:
            return error_record(self.run, sample, self.build_error or SETUP_FAILED)
        if prefetch:
            evaluator.prefetch(prefetch)
        try:
            return evaluator.evaluate(sample, ahead)
        except ServerUnavailable as exc:
            raise self.stop(exc) from None

    @property
    def started(self) -> bool:
        return self._evaluator is not None or self.build_error is not None

    def engine_error(self) -> str | None:
        """Why this process cannot evaluate any item (the evaluator could not be built, or
        its engine did not load), or None."""
        return self.build_error or (self._evaluator.load_error if self._evaluator else None)

    def worker_info(self) -> dict[str, Any]:
        """This process's engine loads, GPUs, frame decodes (and frames shared between
        questions about one video), frame-cache use and engine error, for the summary."""
        ev = self._evaluator
        adapter = ev.adapter if ev else None
        info = adapter.engine_info() if adapter else None
        frames = ev.frames if ev else None
        return {
            "worker": self.worker,
            "engine_loads": ev.load_count if ev else 0,
            "load_seconds": ev.load_seconds if ev else None,
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "cpu_threads": getattr(adapter.engine, "cpu_threads", None) if adapter else None,
            "frames": {"decoded": frames.decodes, "shared": frames.memory.hits} if frames else None,
            "frame_cache": {"hits": frames.cache.hits, "misses": frames.cache.misses} if frames and frames.cache else None,
            "error": self.engine_error(),
            # the served model's server, or the engine's device, dtype, attention, cache, batch
            **({"server" if self.run.backend == "openai" else "engine": info} if info else {}),
        }

    def close(self) -> None:
        if self._evaluator is not None:
            self._evaluator.close()
