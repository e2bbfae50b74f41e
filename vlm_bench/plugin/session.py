"""The video-QA session's state and its collection hooks: which tests evaluate which item,
the results folder claimed once the items are known, and each item's evaluation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from vlm_bench.config import RunConfig
from vlm_bench.plugin import UID_KEY, UNIT_INPUT
from vlm_bench.types import ItemRecord, Sample

SMOKE_ITEMS = 3  # with a real engine, -m smoke runs this many items of each test function

if TYPE_CHECKING:
    from vlm_bench.evaluate import Evaluator


class VlmBenchSession:
    """The plugin's per-session state and the hooks of collection: the items
    (``selection``), this process's engine (``engine``) and, on the controller, the
    results folder and the records as they arrive (``records``)."""

    def __init__(self, config: pytest.Config, run: RunConfig):
        from vlm_bench.config import run_fingerprint
        from vlm_bench.results import default_results_dir, run_info
        from vlm_bench.session.engine import EngineSession
        from vlm_bench.session.records import RunRecords
        from vlm_bench.session.selection import ItemSelection

        self.config = config
        self.run = run
        self.is_controller = not hasattr(config, "workerinput")  # pytest-xdist workers carry workerinput
        self.results_dir = Path(run.results_dir) if run.results_dir else default_results_dir(f"{run.model.name}-{run.backend}")
        self.selection = ItemSelection(run)
        worker = getattr(config, "workerinput", {}).get("workerid", "main")
        self.engine = EngineSession(run, self.selection.samples, worker, say=self.say if self.is_controller else None)
        self.fingerprint = run_fingerprint(run)
        self.breakdowns = list(dict.fromkeys(b for d in run.datasets for b in d.breakdowns))
        self.plan = {"shard": list(run.shard) if run.shard else None, "limit": run.limit, "categories": list(run.categories)}
        info = dict(run_info(self.fingerprint, self.plan), breakdowns=self.breakdowns)
        self.records = RunRecords(self.results_dir, info, self.breakdowns)
        self._worker_reused: dict[str, dict[str, Any]] | None = None
        self.deselected_benchmarks = 0
        self.terminated: str | None = None  # the signal that stopped the run (SIGTERM)
        if self.is_controller:
            self.stop_on_sigterm()

    def stop_on_sigterm(self) -> None:
        """SIGTERM (a scheduler's cancel, ``kill``) ends the run as Ctrl-C does: the records so
        far stay, the summary says it is incomplete and why, and the exit status is a
        failure. Only where nothing else handles SIGTERM, and only from the main thread."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
            return

        def interrupt(signum: int, frame: Any) -> None:
            self.terminated = signal.Signals(signum).name
            raise KeyboardInterrupt(f"stopped by {self.terminated}")

        signal.signal(signal.SIGTERM, interrupt)
        self._restore_sigterm = lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def end(self) -> None:
        """At unconfigure: the folder's lock released, SIGTERM's default back."""
        self.records.release()
        restore = getattr(self, "_restore_sigterm", None)
        if restore is not None:
            restore()
            self._restore_sigterm = None

    @property
    def reused(self) -> dict[str, dict[str, Any]]:
        """Records of the resumed run. The controller finds them when it claims the folder;
        an xdist worker reads them on first use, after the controller has claimed it."""
        if self.is_controller:
            return self.records.reused
        if self._worker_reused is None:
            self._worker_reused = {}
            if self.config.getoption("vlm_resume"):
                from vlm_bench.results import ITEMS_FILE, resumed_records_seen_by_worker

                self._worker_reused = resumed_records_seen_by_worker(self.results_dir / ITEMS_FILE)
        return self._worker_reused

    def exit(self, exc: Exception) -> None:
        """A server that is down: end the session now (records so far stay; --resume continues)."""
        pytest.exit(f"vlm-bench: {exc}", returncode=pytest.ExitCode.INTERRUPTED)

    def evaluator(self) -> Evaluator | None:
        from vlm_bench.session.engine import SessionStop

        try:
            return self.engine.evaluator()
        except SessionStop as exc:
            self.exit(exc)

    def evaluate(self, node: pytest.Item, sample: Sample) -> tuple[ItemRecord, bool]:
        """(record, reused): a resumed run's record, or a fresh evaluation. Batching looks
        ahead only in a single process; under xdist the next item may run elsewhere, so
        workers look ahead only within the video's questions they were sent."""
        from vlm_bench.session.engine import SessionStop

        if sample.uid in self.reused:
            return ItemRecord(**self.reused[sample.uid]), True
        batch = self.run.model.batch_size - 1 if self.is_controller else 0
        window = max(batch, self.run.concurrency - 1)  # requests in flight need no batching, so workers look ahead too
        ahead = self.selection.after(node, window)
        prefetch = self.selection.after(node, window + self.run.prefetch)[window:] if self.run.prefetch else []
        try:
            return self.engine.evaluate(sample, ahead, prefetch), False
        except SessionStop as exc:
            self.exit(exc)
            raise  # not reached: exit() raises

    # ------------------------------------------------------------ collection

    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        from vlm_bench.config import ConfigError
        from vlm_bench.datasets import DatasetError, missing_media_report

        if not self.run.datasets:
            pytest.fail("vlm-bench: no dataset; pass --dataset FILE.jsonl (or a dataset YAML)", pytrace=False)
        try:
            samples = self.selection.samples()
        except (DatasetError, ConfigError) as exc:
            pytest.fail(f"vlm-bench: {exc}", pytrace=False)
        if self.config.getoption("vlm_missing_media") == "fail" and (missing := missing_media_report(samples)):
            pytest.fail(f"vlm-bench: {missing} (--missing-media=fail)", pytrace=False)
        ids = self.selection.item_ids(samples)
        if len(samples) > 1 and deselected_by_mark(metafunc):
            # -m drops every item of this function (evals/test_latency.py under the default
            # "not benchmark"): one stand-in, not a second copy of the dataset to collect.
            self.selection.stand_ins[metafunc.definition.nodeid] = len(samples)
            samples, ids = samples[:1], ids[:1]
        metafunc.parametrize("vlm_item", samples, ids=ids)

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """The smoke set (``-m smoke``): every mock item, marked once on its module (or
        class) when every item collected there is one, else one by one; with a real engine
        the first ``SMOKE_ITEMS`` items of each test function, a quick check of the engine.
        An xdist worker notes on each item which dataset item it evaluates, for the
        controller's records."""
        smoke: dict[Any, list[pytest.Item] | None] = {}  # parent node -> its smoke items (None: not all are)
        firsts: dict[tuple[Any, Any], int] = {}  # test function -> its items marked so far (a real engine)
        for item in items:
            sample = vlm_sample(item)
            if sample is not None and not self.is_controller and "vlm_evaluate" in getattr(item, "fixturenames", ()):
                item.user_properties.append((UID_KEY, sample.uid))
            if self.run.backend != "mock":
                function = (item.parent, getattr(item, "originalname", None))
                if sample is not None and not item.get_closest_marker("benchmark") and firsts.get(function, 0) < SMOKE_ITEMS:
                    firsts[function] = firsts.get(function, 0) + 1
                    item.add_marker(pytest.mark.smoke)
                continue
            if (mine := smoke.setdefault(item.parent, [])) is None:
                continue
            if sample is not None and not item.get_closest_marker("benchmark"):
                mine.append(item)
            else:
                for earlier in mine:
                    earlier.add_marker(pytest.mark.smoke)
                smoke[item.parent] = None
        for parent, mine in smoke.items():
            if mine:
                parent.add_marker(pytest.mark.smoke)

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """A single process notes the tests that evaluate an item and claims the results
        folder when there are any (or an empty selection to record); every process indexes
        the run order for look-ahead, once (O(items))."""
        has_items, entries = False, []
        for item in session.items:
            if "vlm_item" not in getattr(item, "fixturenames", ()):
                continue
            has_items = True
            if (sample := vlm_sample(item)) is None:
                continue
            if not self.is_controller:
                entries.append((item.nodeid, (item.parent, item.originalname), sample))
            elif "vlm_evaluate" in item.fixturenames:
                self.selection.expect(item.nodeid, sample)
        if not self.is_controller:  # a worker looks ahead only within the work unit it was given
            unit = getattr(self.config, "workerinput", {}).get(UNIT_INPUT)
            self.selection.follow_work_units(entries, unit, self.reused)
            return
        self.selection.collected()
        if has_items and not session.testsfailed and not self.config.option.collectonly:
            self.claim_results_dir()  # first: it finds the resumed run's records, which look-ahead skips
        self.selection.follow_run_order(session.items, vlm_sample, self.reused)

    @pytest.hookimpl
    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected_benchmarks += sum(1 for it in items if vlm_sample(it) is not None and it.get_closest_marker("benchmark"))

    @pytest.hookimpl
    def pytest_report_collectionfinish(self, config: pytest.Config, items: list[pytest.Item]) -> list[str]:
        from vlm_bench.session.terminal import deselected_benchmarks_line

        return deselected_benchmarks_line(self.deselected_benchmarks, max(self.selection.stand_ins.values(), default=0))

    def claim_results_dir(self) -> None:
        """Controller, once the session's items are known and before any runs: lock the
        results folder (a second run is refused here, naming this one) and ready it."""
        from vlm_bench.results import ResultsDirError, describe_holder

        if self.records.lock is not None:
            return
        opt = self.config.getoption
        try:
            stale = self.records.claim(self.fingerprint, resume=opt("vlm_resume"), overwrite=opt("vlm_overwrite"), plan=self.plan)
        except (ResultsDirError, OSError) as exc:
            raise pytest.UsageError(f"vlm-bench: {exc}") from None
        if stale:
            self.say(f"vlm-bench: took over {self.results_dir} from a run that is no longer running "
                     f"({describe_holder(stale)}); it was killed or crashed")

    def say(self, line: str) -> None:
        """A line on the terminal now, also from inside a test (pytest's capture set aside)."""
        import contextlib

        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line, file=sys.stderr)


def deselected_by_mark(metafunc: pytest.Metafunc) -> bool:
    """Whether ``-m`` deselects every item of this test function, judged on the function's
    marks (plus ``smoke``, which pytest_collection_modifyitems gives some of its items)."""
    expression = metafunc.config.option.markexpr
    if not expression:
        return False
    marks = list(metafunc.definition.iter_markers())
    if not any(m.name == "benchmark" for m in marks):
        marks.append(pytest.mark.smoke.mark)
    try:
        from _pytest.mark import MarkMatcher
        from _pytest.mark.expression import Expression

        return not Expression.compile(expression).evaluate(MarkMatcher.from_markers(marks))
    except Exception:  # pytest's internals moved: collect every item, as pytest would
        return False


def vlm_sample(item: pytest.Item) -> Sample | None:
    """The dataset item a collected test evaluates, if any."""
    sample = getattr(getattr(item, "callspec", None), "params", {}).get("vlm_item")
    return sample if isinstance(sample, Sample) else None
