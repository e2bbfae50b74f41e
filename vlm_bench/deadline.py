"""At most so many seconds per item (``--item-timeout``): an item that overruns is
abandoned, gets an error record, and the run goes on.

Python cannot stop a thread, so the item runs in a daemon thread of its own: one past its
time is left to end when it ends (a request's own timeout, a decode that finishes) and
never holds up the process's exit; its result is dropped. A stuck native ``generate``
keeps its GPU busy until it returns; a request to a server that never answers is what this
is for."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable


class ItemTimeout(Exception):
    """An item ran past --item-timeout; its record says so and the run goes on."""


class DaemonPool:
    """``ThreadPoolExecutor``'s ``submit`` and ``shutdown`` over daemon threads, which the
    interpreter does not wait for at exit (an executor's threads are joined, so one stuck
    request would hold the process up to its own timeout)."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "vlm-bench-item"):
        self.max_workers = max_workers
        self.prefix = thread_name_prefix
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stuck = 0  # threads left to abandoned tasks: replaced, so the pool keeps its width

    def submit(self, call: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._tasks.put((future, call, args))
        if len(self._threads) < self.max_workers + self._stuck:
            thread = threading.Thread(target=self._work, name=f"{self.prefix}_{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def replace_stuck(self) -> None:
        """One thread is held by an abandoned task: let the pool start another."""
        self._stuck += 1

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, call, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                future.set_exception(exc)

    def shutdown(self, wait: bool = False, cancel_futures: bool = True) -> None:
        while cancel_futures:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                task[0].cancel()
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


class Deadline:
    """Waits at most ``seconds`` for an item: run in a thread of its own (``run``), or
    already in flight since it was submitted (``started`` then ``wait``)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._pool: DaemonPool | None = None
        self._submitted: dict[Future, float] = {}

    def run(self, call: Callable[..., Any], *args: Any) -> Any:
        if self._pool is None:
            self._pool = DaemonPool(1)
        future = self._pool.submit(call, *args)
        try:
            return self.wait(future, started=time.monotonic())
        except ItemTimeout:
            self._pool.shutdown()  # its thread ends with its task; the next item gets a fresh one
            self._pool = None
            raise

    def started(self, future: Future) -> None:
        """A request submitted now (in flight): its time counts from here."""
        self._submitted[future] = time.monotonic()

    def wait(self, future: Future, started: float | None = None) -> Any:
        """The future's result, waiting until ``seconds`` after it started (or now)."""
        begun = started if started is not None else self._submitted.pop(future, time.monotonic())
        try:
            return future.result(timeout=max(0.0, begun + self.seconds - time.monotonic()))
        except FutureTimeout:
            raise ItemTimeout(f"did not finish within --item-timeout {self.seconds:g} s (a request that never "
                              "returns, or a stuck decode); it was abandoned and the run went on") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
