"""The controller's view of the tests as they report: each item's record written once as
it arrives (a test that failed before evaluating its item still leaves one), the
progress display, the engine's load error said once, and the summary at the end."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vlm_bench.plugin import LOAD_ERROR_KEY, RECORD_KEY, REUSED_KEY, TRANSPORT_KEYS, UID_KEY, WORKER_KEY
from vlm_bench.plugin.session import VlmBenchSession


class ReportHooks:
    def __init__(self, session: VlmBenchSession):
        self.session = session
        self.is_controller = session.is_controller
        self.config = session.config
        self.selection = session.selection
        self.records = session.records
        self.engine = session.engine
        self.run = session.run
        self.results_dir = session.results_dir
        self.graded_records: list[dict[str, Any]] = []  # kept for the VMEvalKit grading tree only
        self._progress: Any = False  # the progress display, built on first use (None: none)
        self.load_error: str | None = None  # the engine's, as the controller first heard of it
        self.other_failures = 0
        self.summary: dict[str, Any] | None = None
        self.write_error: str | None = None  # the results folder could not be written (a full disk)

    def progress(self):
        """The run's progress display (progress.progress_display), or None."""
        if self._progress is False:
            from vlm_bench.progress import Progress, progress_display

            shown, bar = progress_display(self.config.getoption("vlm_progress"), self.config.get_verbosity())
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            self._progress = None
            if shown and reporter is not None:
                self._progress = Progress(reporter, bar, self.config.getoption("vlm_progress_interval"))
        return self._progress

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if self.is_controller:
            self.progress()  # its clock starts with the first item, not when the first one ends

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config):
        """While the bar shows progress, an evaluation item's outcome letter would break it
        up: leave it out (its failure is still reported in full at the end)."""
        if report.when != "call" or not self.is_controller:
            return None
        progress = self.progress()
        if progress is None or not progress.bar or RECORD_KEY not in dict(report.user_properties):
            return None
        return report.outcome, "", report.outcome.upper()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport):
        """Controller: take the record that came with the report. Everywhere, once the
        other plugins (xdist's sender among them) have seen the report: drop what vlm-bench
        put on it, since pytest keeps every report to the end of the session."""
        if self.is_controller:
            self.take_report(report)
        try:
            return (yield)
        finally:
            drop_transport(report.user_properties)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """The call report has copied the record from the item's properties; the item,
        also kept to the end, need not hold it too."""
        report = yield
        if call.when == "call":
            drop_transport(item.user_properties)
        return report

    def take_report(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        record = props.get(RECORD_KEY)
        uid = props.get(UID_KEY) or self.selection.uid_of_test(report.nodeid)
        if record is not None and report.when == "call":
            self.add_record(record, reused=bool(props.get(REUSED_KEY)), worker=props.get(WORKER_KEY))
            if props.get(LOAD_ERROR_KEY) and self.load_error is None:
                self.announce_load_error(props[LOAD_ERROR_KEY])
        elif report.failed and record is None and report.when in ("setup", "call") and uid:
            # the test failed before its item was evaluated: the item still gets its record
            self.add_record(self.failure_record(uid, report), reused=False, worker=None)
        elif report.failed:
            self.other_failures += 1

    def add_record(self, record: dict[str, Any], reused: bool, worker: dict[str, Any] | None) -> None:
        from vlm_bench.grading import is_graded
        from vlm_bench.results import ResultsWriteError

        try:
            added = self.records.add(record, reused=reused, worker=worker)
        except ResultsWriteError as exc:  # a full disk: one clear line, not an internal error per item
            self.write_error = str(exc)
            pytest.exit(f"vlm-bench: {exc}; free space, then finish the run with --resume", returncode=pytest.ExitCode.INTERRUPTED)
        if added:
            if is_graded(record):
                self.graded_records.append(record)
            if (progress := self.progress()) is not None:
                records = self.records
                progress.update(len(records.recorded), self.selection.total_items, records.passed, records.scored)

    def failure_record(self, uid: str, report: pytest.TestReport) -> dict[str, Any]:
        from vlm_bench.evaluate import error_record

        crash = getattr(report.longrepr, "reprcrash", None)
        lines = [line for line in str(report.longreprtext).splitlines() if line.strip()]
        why = crash.message if crash is not None else (lines[-1].strip() if lines else report.outcome)
        error = f"the test failed in {report.when} before evaluating the item: {why}"
        return error_record(self.run, self.selection.sample(uid), error).as_dict()

    def announce_load_error(self, error: str) -> None:
        """Once per session, as soon as the first item reports it: the engine did not load,
        why, and what to do. Each item's failure then only points here."""
        from vlm_bench.runners import load_failure_advice

        self.load_error = error
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write("\n")
            reporter.write_line(f"vlm-bench: the engine did not load, so every item fails: {error}", red=True, bold=True)
            reporter.write_line(f"vlm-bench: {load_failure_advice(self.run.backend, error)}")

    # ------------------------------------------------------------ the end

    def stop_reason(self, session: pytest.Session, exitstatus: int) -> str:
        if self.engine.stopped_by:
            return self.engine.stopped_by
        if self.write_error:
            return self.write_error
        if self.session.terminated:
            return f"stopped by {self.session.terminated}"
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            return str(session.shouldfail or session.shouldstop or "interrupted")
        return str(session.shouldfail or session.shouldstop or "some items did not run")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._progress:
            self._progress.finish()  # a bar cut short (-x, Ctrl-C) ends its line
        self.engine.close()
        if self.is_controller and self.engine.started:
            self.records.workers["main"] = self.engine.worker_info()  # a single process: no report carried it
        if not self.is_controller or self.records.lock is None:
            return
        from vlm_bench.results import ResultsWriteError

        try:
            self.summary = summary = self.finish_summary(session, exitstatus)
        except ResultsWriteError as exc:
            self.write_error = self.write_error or str(exc)
            session.exitstatus = pytest.ExitCode.INTERRUPTED
            return
        if self.run.min_pass_rate is None:
            return
        if summary["below_min_pass_rate"] or not summary["complete"]:
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif session.exitstatus == pytest.ExitCode.TESTS_FAILED and self.other_failures == 0:
            # The threshold is the gate: failed items alone do not fail a run that meets it.
            session.exitstatus = pytest.ExitCode.OK

    def finish_summary(self, session: pytest.Session, exitstatus: int) -> dict[str, Any]:
        from vlm_bench.grading import grade_run

        not_run = self.selection.not_run(self.records.recorded)
        errors = sorted({w["error"] for w in self.records.workers.values() if w.get("error")})
        fields: dict[str, Any] = {
            "complete": not not_run,
            "items_expected": self.selection.total_items,
            "items_not_run": len(not_run),
            "stopped": self.stop_reason(session, exitstatus) if not_run else None,
            "note": "; ".join(self.selection.empty_reasons) or None,
            "engine_error": "; ".join(errors) or None,
        }
        if self.graded_records:
            fields["vmevalkit"] = grade_run(self.run, self.graded_records, self.results_dir)
        fields["reused"] = self.records.reused_count
        extra = {key: same_or_each(self.records.workers, key) for key in ("cpu_threads", "engine")}
        return self.records.finish(fields, self.run.as_dict(), min_pass_rate=self.run.min_pass_rate,
                                   manifest_extra={k: v for k, v in extra.items() if v})

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summary is None and self.write_error:
            terminalreporter.write_line(f"vlm-bench: the results could not be written: {self.write_error}; no summary. "
                                        "Free space, then finish the run with --resume", red=True, bold=True)
        if self.summary is None:
            return
        from vlm_bench.session.terminal import summary_lines, title

        terminalreporter.section(title(self.run.model.name, self.run.backend, self.run.quant))
        lines = summary_lines(self.summary, load_error=self.load_error, recorded=len(self.records.recorded),
                              reused=self.records.reused_count, results_dir=self.results_dir)
        for text, markup in lines:
            terminalreporter.write_line(text, **markup)


def same_or_each(workers: dict[str, dict[str, Any]], key: str) -> Any:
    """What the workers report under ``key`` (torch's threads, the engine): one value when
    every worker reports the same, else each worker's; None when none reports it."""
    values = {name: w[key] for name, w in sorted(workers.items()) if w.get(key)}
    if not values:
        return None
    distinct = {json.dumps(v, sort_keys=True) for v in values.values()}
    return next(iter(values.values())) if len(distinct) == 1 else values


def drop_transport(props: list[tuple[str, Any]]) -> None:
    if any(key in TRANSPORT_KEYS for key, _ in props):
        props[:] = [(key, value) for key, value in props if key not in TRANSPORT_KEYS]
