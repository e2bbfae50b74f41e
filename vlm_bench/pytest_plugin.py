"""The pytest plugin: options, item parametrization, the session engine fixture, the
per-item record writer and the terminal summary. The work lives in plain modules.

Registered through the ``pytest11`` entry point, so it is active in every pytest session
of an environment where vlm-bench is installed; it does nothing until a test asks for
``vlm_item``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from vlm_bench.generation.options import is_generation_session
from vlm_bench.options import OPTIONS, add_options
from vlm_bench.types import ItemRecord, Sample

# Everything else is imported when a session uses vlm-bench: this module loads in every
# pytest session of an environment where vlm-bench is installed, and numpy, OpenCV and
# PyYAML would cost each such session about 0.4 s and 30 MiB.
if TYPE_CHECKING:
    from vlm_bench.config import RunConfig
    from vlm_bench.evaluate import Evaluator
    from vlm_bench.results import RunLock
    from vlm_bench.runners import ServerUnavailable
    from vlm_bench.scheduling import RunOrder, Upcoming

# Video generation (--generator) is a plugin of its own, loaded with this one; its sessions
# run no video-QA item.
pytest_plugins = ("vlm_bench.generation.plugin",)

RECORD_KEY = "vlm_bench_record"
UID_KEY = "vlm_bench_uid"  # on every report of a test that evaluates an item
REUSED_KEY = "vlm_bench_reused"
LOAD_ERROR_KEY = "vlm_bench_load_error"
WORKER_KEY = "vlm_bench_worker"
TRANSPORT_KEYS = (RECORD_KEY, UID_KEY, REUSED_KEY, LOAD_ERROR_KEY, WORKER_KEY)
UNIT_INPUT = "vlm_bench_unit_size"
PLUGIN_NAME = "vlm_bench_session"
MARKERS = (
    "smoke: a small end-to-end subset (mock items, CLI, records, report, resume, tiny native model); pytest -m smoke",
    "benchmark: latency runs with pytest-benchmark (run with -m benchmark)",
    "gpu: needs a CUDA GPU; skipped with a reason when none is visible",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser.getgroup("vlm-bench", "vlm-bench video QA evaluation").addoption)
    parser.addini("vlm_bench_datasets", "datasets used when --dataset is not given", type="linelist", default=[])
    parser.addini("vlm_bench_model", "model used when --model is not given", default="mock")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    # With pytest-xdist's -n and no --dist, keep each video's questions on one worker so
    # its frames are decoded once (see VlmBenchSession.pytest_xdist_make_scheduler). Only
    # for sessions with vlm-bench datasets: other projects' xdist runs stay as they were.
    has_data = config.getoption("vlm_datasets") or config.getini("vlm_bench_datasets")
    if has_data and getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadgroup"
    under_xdist = getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput")
    if has_data and under_xdist and re.search(r"\bnot\s+benchmark\b", config.option.markexpr or ""):
        # pytest-benchmark switches itself off under xdist and says so in every -n run,
        # even when the benchmarks are deselected anyway; say nothing instead.
        if hasattr(config.option, "benchmark_disable"):
            config.option.benchmark_disable = True


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    workerinput = getattr(config, "workerinput", None)
    if workerinput:  # an xdist worker: pin its GPUs before anything initialises CUDA
        from vlm_bench.scheduling import GPUS_INPUT

        if workerinput.get(GPUS_INPUT) is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = workerinput[GPUS_INPUT]
    if config.option.help or not uses_vlm_bench(config) or is_generation_session(config):
        return  # started on first use (a test asking for vlm_item or a vlm fixture), if any
    start_session(config)


def uses_vlm_bench(config: pytest.Config) -> bool:
    """Whether this session names vlm-bench data or sets a vlm-bench option; other
    sessions get nothing loaded until a test asks for a vlm-bench fixture."""
    if config.getini("vlm_bench_datasets"):
        return True
    return any(config.getoption(opt.dest) not in (None, False, opt.kwargs.get("default")) for opt in OPTIONS)


def start_session(config: pytest.Config) -> "VlmBenchSession":
    from vlm_bench.config import ConfigError
    from vlm_bench.results import ResultsDirError, check_results_dir

    if config.getoption("vlm_resume") and config.getoption("vlm_overwrite"):
        raise pytest.UsageError("vlm-bench: --resume and --overwrite contradict each other; give one")
    try:
        run = run_config_from_pytest(config)
    except ConfigError as exc:
        raise pytest.UsageError(f"vlm-bench: {exc}") from None
    session = VlmBenchSession(config, run)
    try:
        if session.is_controller:
            check_results_dir(session.results_dir)
            session.plan_gpus()
    except (ResultsDirError, ValueError) as exc:
        raise pytest.UsageError(f"vlm-bench: {exc}") from None
    config.pluginmanager.register(session, PLUGIN_NAME)
    return session


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if session is not None and session.lock is not None:
        session.lock.release()


def run_config_from_pytest(config: pytest.Config) -> RunConfig:
    from vlm_bench.config import build_run_config

    opt = config.getoption
    datasets = opt("vlm_datasets")
    if not datasets:
        base = config.inipath.parent if config.inipath else config.rootpath
        datasets = [str(base / d) if (base / d).exists() else d for d in config.getini("vlm_bench_datasets")]
    return build_run_config(
        model=opt("vlm_model") or config.getini("vlm_bench_model"),
        backend=opt("vlm_backend"),
        datasets=datasets,
        quant=opt("vlm_quant"),
        video_overrides={
            "max_frames": opt("vlm_max_frames"),
            "strategy": opt("vlm_frame_strategy"),
            "fps": opt("vlm_fps"),
            "stride": opt("vlm_stride"),
        },
        decode_overrides={"max_new_tokens": opt("vlm_max_new_tokens")},
        seed=opt("vlm_seed"),
        results_dir=opt("vlm_results_dir"),
        min_pass_rate=opt("vlm_min_pass_rate"),
        dataset_roots=opt("vlm_dataset_roots") or (),
        limit=opt("vlm_limit"),
        categories=opt("vlm_categories") or (),
        shard=opt("vlm_shard"),
        all_runs=opt("vlm_all_runs"),
        frame_cache=opt("vlm_frame_cache"),
        frame_cache_gb=opt("vlm_frame_cache_gb"),
        prefetch=opt("vlm_prefetch"),
        server_overrides={
            "base_url": opt("vlm_base_url"),
            "api_key_env": opt("vlm_api_key_env"),
            "model": opt("vlm_served_model"),
            "concurrency": opt("vlm_concurrency"),
        },
        frame_memory_gb=opt("vlm_frame_memory_gb"),
        item_frames_gb=opt("vlm_item_frames_gb"),
    )


def _get_session(config: pytest.Config) -> "VlmBenchSession":
    session = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if session is None:
        try:
            session = start_session(config)
        except pytest.UsageError as exc:
            pytest.fail(str(exc), pytrace=False)
    return session


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vlm_item" in metafunc.fixturenames and not is_generation_session(metafunc.config):
        _get_session(metafunc.config).parametrize(metafunc)


class VlmBenchSession:
    """Per-session state the plugin owns: the resolved run, the items, the evaluator and,
    on the controller, the results folder (its lock and writer) and the summary, built as
    the records arrive (a long run does not keep them)."""

    def __init__(self, config: pytest.Config, run: RunConfig):
        from vlm_bench.config import run_fingerprint
        from vlm_bench.results import ResultsWriter, RunSummary, default_results_dir, run_info, utc_now

        self.config = config
        self.run = run
        self.is_controller = not hasattr(config, "workerinput")  # pytest-xdist workers carry workerinput
        self.started_at = utc_now()
        self.results_dir = Path(run.results_dir) if run.results_dir else default_results_dir(f"{run.model.name}-{run.backend}")
        self._samples: list[Sample] | None = None
        self._sample_of: dict[str, Sample] | None = None  # uid -> sample, for failure_record
        self._evaluator: Evaluator | None = None
        self.build_error: str | None = None  # the evaluator itself could not be built
        self.fingerprint = run_fingerprint(run)
        self.breakdowns = list(dict.fromkeys(b for d in run.datasets for b in d.breakdowns))
        self.plan = {"shard": list(run.shard) if run.shard else None, "limit": run.limit, "categories": list(run.categories)}
        self.writer = ResultsWriter(self.results_dir, dict(run_info(self.fingerprint, self.plan), breakdowns=self.breakdowns))
        self.lock: RunLock | None = None  # the controller's hold on the results folder
        self.running_summary = RunSummary(self.breakdowns)
        self.scored = self.passed = 0  # for the progress line
        self.graded_records: list[dict[str, Any]] = []  # kept for the VMEvalKit grading tree only
        self.recorded: set[str] = set()  # uids of the items with a record
        self.expected: dict[str, str] = {}  # node id -> item uid of each test that evaluates an item
        self.total_items = 0  # distinct items among them
        self.collected_here = False  # a single process: `expected` holds exactly the tests that evaluate
        self.next_in_function: RunOrder | None = None  # look-ahead for batches and prefetch
        self.next_in_group: Upcoming | None = None  # (an xdist worker's, within a video's questions)
        self.empty_reasons: list[str] = []  # why a selection holds no items
        self.other_failures = 0
        self.summary: dict[str, Any] | None = None
        self._reused: dict[str, dict[str, Any]] | None = None  # dataset/id -> record of a resumed run
        self.reused_count = 0
        self.workers: dict[str, dict[str, Any]] = {}
        self._progress: Any = False  # the progress display, built on first use (None: none)
        self.gpus: list[str] = []
        self.gpus_per_worker = 0
        self.unit_size = 0  # items per xdist work unit at most (see pytest_xdist_make_scheduler)
        self.load_error: str | None = None  # the engine's, as the controller first heard of it
        self.stopped_by: str | None = None  # why stop() ended the session (a server that is down)
        self.deselected_benchmarks = 0
        self.stand_ins: dict[str, int] = {}  # test function -> items it stands in for (see parametrize)

    # ------------------------------------------------------------ items and engine

    def samples(self) -> list[Sample]:
        if self._samples is None:
            from vlm_bench.datasets import run_samples

            self._samples, self.empty_reasons = run_samples(self.run)
        return self._samples

    def evaluator(self) -> Evaluator | None:
        """The session's one evaluator (engine loaded once), or None when it cannot be
        built; then every item's record carries ``build_error``. A server that is down
        stops the session instead (``stop``)."""
        if self._evaluator is None and self.build_error is None:
            from vlm_bench.evaluate import Evaluator
            from vlm_bench.runners import ServerUnavailable

            try:
                evaluator = Evaluator(self.run, self.samples())
                evaluator.load()
            except ServerUnavailable as exc:
                self.stop(exc)
            except Exception as exc:
                self.build_error = f"vlm-bench could not set up the evaluation: {type(exc).__name__}: {exc}"
                return None
            self._evaluator = evaluator
        return self._evaluator

    def stop(self, exc: ServerUnavailable) -> None:
        """End the session now: no item can get past this, and recording it on every item
        would only bury the cause. Records written so far stay; --resume continues."""
        if self._evaluator is not None:
            self._evaluator.close()
        self.stopped_by = str(exc)
        pytest.exit(f"vlm-bench: {exc}", returncode=pytest.ExitCode.INTERRUPTED)

    def worker_info(self) -> dict[str, Any]:
        """This process's engine loads, GPUs, frame decodes (and frames shared between
        questions about one video), frame-cache use and engine error, for the summary."""
        ev = self._evaluator
        server = ev.adapter.engine_info() if ev and ev.adapter else None
        return {
            "worker": getattr(self.config, "workerinput", {}).get("workerid", "main"),
            "engine_loads": ev.load_count if ev else 0,
            "load_seconds": ev.load_seconds if ev else None,
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "cpu_threads": getattr(ev.adapter.engine, "cpu_threads", None) if ev and ev.adapter else None,
            "frames": {"decoded": ev.frames.decodes, "shared": ev.frames.memory.hits} if ev else None,
            "frame_cache": {"hits": ev.frames.cache.hits, "misses": ev.frames.cache.misses} if ev and ev.frames.cache else None,
            "error": self.engine_error(),
            **({"server": server} if server else {}),
        }

    def engine_error(self) -> str | None:
        """Why this process's evaluator cannot evaluate any item (it could not be built, or
        its engine did not load), or None."""
        return self.build_error or (self._evaluator.load_error if self._evaluator else None)

    def item_ids(self, samples: list[Sample]) -> list[str]:
        if len(self.run.datasets) == 1:
            return [s.id for s in samples]
        return [f"{s.dataset}/{s.id}" for s in samples]

    @property
    def reused(self) -> dict[str, dict[str, Any]]:
        """Records of the resumed run. The controller finds them when it claims the folder;
        an xdist worker reads them on first use, after the controller has claimed it."""
        if self._reused is None:
            self._reused = {}
            if not self.is_controller and self.config.getoption("vlm_resume"):
                from vlm_bench.results import ITEMS_FILE, resumed_records_seen_by_worker

                self._reused = resumed_records_seen_by_worker(self.results_dir / ITEMS_FILE)
        return self._reused

    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        from vlm_bench.config import ConfigError
        from vlm_bench.datasets import DatasetError, missing_media_report

        if not self.run.datasets:
            pytest.fail("vlm-bench: no dataset; pass --dataset FILE.jsonl (or a dataset YAML)", pytrace=False)
        try:
            samples = self.samples()
        except (DatasetError, ConfigError) as exc:
            pytest.fail(f"vlm-bench: {exc}", pytrace=False)
        if self.config.getoption("vlm_missing_media") == "fail" and (missing := missing_media_report(samples)):
            pytest.fail(f"vlm-bench: {missing} (--missing-media=fail)", pytrace=False)
        ids = self.item_ids(samples)
        if len(samples) > 1 and self.deselected_by_mark(metafunc):
            # -m drops every item of this function (evals/test_latency.py under the default
            # "not benchmark"): one stand-in, not a second copy of the dataset to collect.
            self.stand_ins[metafunc.definition.nodeid] = len(samples)
            samples, ids = samples[:1], ids[:1]
        metafunc.parametrize("vlm_item", samples, ids=ids)

    def deselected_by_mark(self, metafunc: pytest.Metafunc) -> bool:
        """Whether ``-m`` deselects every item of this test function, judged on the
        function's marks (plus ``smoke``, where pytest_collection_modifyitems adds it)."""
        expression = self.config.option.markexpr
        if not expression:
            return False
        marks = list(metafunc.definition.iter_markers())
        if self.run.backend == "mock" and not any(m.name == "benchmark" for m in marks):
            marks.append(pytest.mark.smoke.mark)
        try:
            from _pytest.mark import MarkMatcher
            from _pytest.mark.expression import Expression

            return not Expression.compile(expression).evaluate(MarkMatcher.from_markers(marks))
        except Exception:  # pytest's internals moved: collect every item, as pytest would
            return False

    def evaluate(self, node: pytest.Item, sample: Sample) -> tuple[ItemRecord, bool]:
        """(record, reused): a resumed run's record, or a fresh evaluation. Batching looks
        ahead only in a single process; under xdist the next item may run elsewhere, so
        workers prefetch frames only for the same video's next questions."""
        if sample.uid in self.reused:
            return ItemRecord(**self.reused[sample.uid]), True
        evaluator = self.evaluator()
        if evaluator is None:
            from vlm_bench.evaluate import error_record

            return error_record(self.run, sample, self.build_error or "vlm-bench could not set up the evaluation"), False
        batch = self.run.model.batch_size - 1 if self.is_controller else 0
        window = max(batch, self.run.concurrency - 1)  # requests in flight need no batching, so workers look ahead too
        upcoming = self.next_in_function if self.is_controller else self.next_in_group
        ahead = upcoming.after(node, window) if upcoming is not None and window else []
        if self.run.prefetch and upcoming is not None:
            evaluator.prefetch(upcoming.after(node, window + self.run.prefetch)[window:])
        from vlm_bench.runners import ServerUnavailable

        try:
            return evaluator.evaluate(sample, ahead), False
        except ServerUnavailable as exc:
            self.stop(exc)
            raise  # not reached: stop() exits

    # ------------------------------------------------------------ the results folder

    def claim_results_dir(self) -> None:
        """Controller, once the session's items are known and before any runs: lock the
        results folder (a second run is refused here, naming this one) and ready it."""
        if self.lock is not None:
            return
        from vlm_bench.results import ResultsDirError, RunLock, describe_holder, prepare_results_dir

        try:
            self.lock = RunLock.acquire(self.results_dir)
            self._reused = prepare_results_dir(
                self.results_dir,
                self.fingerprint,
                resume=self.config.getoption("vlm_resume"),
                overwrite=self.config.getoption("vlm_overwrite"),
                plan=self.plan,
            )
        except (ResultsDirError, OSError) as exc:
            if self.lock is not None:
                self.lock.release()
                self.lock = None
            raise pytest.UsageError(f"vlm-bench: {exc}") from None
        if self.lock.stale:
            self.say(
                f"vlm-bench: took over {self.results_dir} from a run that is no longer running "
                f"({describe_holder(self.lock.stale)}); it was killed or crashed"
            )

    def say(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)

    def plan_gpus(self) -> None:
        from vlm_bench.scheduling import plan_worker_gpus

        self.gpus, self.gpus_per_worker = plan_worker_gpus(
            getattr(self.config.option, "numprocesses", None), self.config.getoption("vlm_gpus_per_worker")
        )

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """pytest-xdist, controller side: under --dist loadgroup, items about one video form
        a work unit (several, of ``unit_size`` items, for a video with many questions, so
        even a dataset of one video spreads over the workers); other tests are units of
        their own. Done here rather than with xdist_group marks: pytest 9 node ids no
        longer take the group suffix xdist 3.8 writes into them, so those marks group
        nothing."""
        if config.getvalue("dist") != "loadgroup":
            return None
        from xdist.scheduler import LoadScopeScheduling

        from vlm_bench.config import ConfigError
        from vlm_bench.datasets import DatasetError
        from vlm_bench.scheduling import unit_size, work_units

        units: dict[str, str] = {}
        if self.run.datasets:
            try:
                samples = self.samples()
                workers = config.option.numprocesses if isinstance(config.option.numprocesses, int) else os.cpu_count()
                self.unit_size = unit_size(len(samples), workers or 1)
                units = work_units(samples, self.item_ids(samples), self.unit_size)
            except (DatasetError, ConfigError):
                pass  # collection reports it

        class VideoGroupScheduling(LoadScopeScheduling):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.positions: dict[Any, dict[str, int]] = {}

            def _split_scope(self, nodeid: str) -> str:
                if "@" in nodeid:
                    return nodeid.rsplit("@", 1)[-1]
                return units.get(_param_id(nodeid), nodeid)

            def _assign_work_unit(self, node: Any) -> None:
                # LoadScopeScheduling's, with each test's position in the worker's
                # collection looked up in a dict: xdist searches the list for each test,
                # O(items) per test, minutes for 100,000 items.
                scope, work_unit = self.workqueue.popitem(last=False)
                self.assigned_work.setdefault(node, {})[scope] = work_unit
                positions = self.positions.get(node)
                if positions is None:
                    positions = self.positions[node] = {nid: i for i, nid in enumerate(self.registered_collections[node])}
                node.send_runtest_some([positions[nid] for nid, done in work_unit.items() if not done])

        return VideoGroupScheduling(config, log)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist, controller side: give worker gw<k> its own GPU slice, and the size
        of the work units (its look-ahead stays within the unit it is running)."""
        from vlm_bench.scheduling import give_worker_gpus

        if self.unit_size:
            node.workerinput[UNIT_INPUT] = self.unit_size
        give_worker_gpus(node, self.gpus_per_worker, self.gpus)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """pytest-xdist, controller side: the controller collects nothing itself, so the
        first worker's test ids tell it which items will run; it claims the results folder
        before any test is scheduled. (Ids cannot show which tests evaluate an item; those
        with an item's parameter id count.)"""
        if self.lock is not None or not self.run.datasets or self.config.option.collectonly:
            return
        from vlm_bench.config import ConfigError
        from vlm_bench.datasets import DatasetError

        try:
            samples = self.samples()
        except (DatasetError, ConfigError):
            return  # the workers report the collection error
        uid_of = dict(zip(self.item_ids(samples), (s.uid for s in samples)))
        self.expected = {nid: uid_of[_param_id(nid)] for nid in ids if _param_id(nid) in uid_of}
        self.total_items = len(set(self.expected.values()))
        if self.expected or (not samples and any(_param_id(nid) == "NOTSET" for nid in ids)):
            self.claim_results_dir()
        if self.expected:
            self.preflight()

    def preflight(self) -> None:
        """xdist controller: an engine that can check its server first (the openai
        backend) does it here, so a server that is down stops the run with its URL once,
        not as one crashed worker after another."""
        from vlm_bench.runners import ServerUnavailable, engine_class

        check = getattr(engine_class(self.run.backend), "preflight", None)
        if check is None:
            return
        try:
            check(self.run.model)
        except ServerUnavailable as exc:
            self.stop(exc)

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Mock items are part of the smoke set: marked once on their module (or class)
        when every item collected there is one, else one by one. An xdist worker notes on
        each item which dataset item it evaluates, for the controller's records."""
        smoke: dict[Any, list[pytest.Item] | None] = {}  # parent node -> its smoke items (None: not all are)
        for item in items:
            sample = _vlm_sample(item)
            is_item = sample is not None
            if is_item and not self.is_controller and "vlm_evaluate" in getattr(item, "fixturenames", ()):
                item.user_properties.append((UID_KEY, sample.uid))
            if self.run.backend != "mock":
                continue
            mine = smoke.setdefault(item.parent, [])
            if mine is None:
                continue
            if is_item and not item.get_closest_marker("benchmark"):
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
        """Index the run order for look-ahead, once (O(items)). A single process (not
        xdist): note the items that will be evaluated and claim the results folder when
        there are any (or an empty selection to record)."""
        from vlm_bench.scheduling import RunOrder, Upcoming, work_units

        has_items = False
        entries = []
        units = {}
        if not self.is_controller and self.run.datasets:
            samples = self.samples()
            size = getattr(self.config, "workerinput", {}).get(UNIT_INPUT) or len(samples)
            units = work_units(samples, self.item_ids(samples), size)
        for item in session.items:
            if "vlm_item" not in getattr(item, "fixturenames", ()):
                continue
            has_items = True
            sample = _vlm_sample(item)
            if sample is None:
                continue
            if self.is_controller:
                if "vlm_evaluate" in item.fixturenames:
                    self.expected[item.nodeid] = sys.intern(sample.uid)
            else:
                entries.append((item.nodeid, (item.parent, item.originalname, units.get(_param_id(item.nodeid))), sample))
        if self.is_controller:
            self.collected_here = True
            self.total_items = len(set(self.expected.values()))
        if self.is_controller and has_items and not session.testsfailed and not self.config.option.collectonly:
            self.claim_results_dir()  # first: it finds the resumed run's records, which look-ahead skips
        if self.is_controller:
            self.next_in_function = RunOrder(session.items, _vlm_sample, self.reused)
        else:  # a worker prefetches only within the work unit it was given: one video's questions
            self.next_in_group = Upcoming(entries, self.reused)

    def progress(self):
        """The run's progress display, or None: a bar on a terminal at pytest's normal
        verbosity, status lines with -v or --progress always elsewhere; nothing with -q, in
        CI or when the output is not a terminal, unless asked."""
        if self._progress is False:
            mode = self.config.getoption("vlm_progress")
            verbosity = self.config.get_verbosity()
            tty = sys.stdout.isatty() and not os.environ.get("CI")
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            wanted = mode == "always" or (mode == "auto" and tty and verbosity >= 0)
            self._progress = None
            if wanted and reporter is not None:
                from vlm_bench.progress import Progress

                bar = tty and verbosity == 0
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
        if record is not None and report.when == "call":
            self.add_record(record, reused=bool(props.get(REUSED_KEY)), worker=props.get(WORKER_KEY))
            if props.get(LOAD_ERROR_KEY) and self.load_error is None:
                self.announce_load_error(props[LOAD_ERROR_KEY])
        elif report.failed and record is None and report.when in ("setup", "call") and (uid := self.uid_of(report, props)):
            # the test failed before its item was evaluated: the item still gets its record
            self.add_record(self.failure_record(uid, report), reused=False, worker=None)
        elif report.failed:
            self.other_failures += 1

    def uid_of(self, report: pytest.TestReport, props: dict[str, Any]) -> str | None:
        """The dataset item a test evaluates: noted on the report by an xdist worker; in a
        single process, known from collection."""
        return props.get(UID_KEY) or (self.expected.get(report.nodeid) if self.collected_here else None)

    def add_record(self, record: dict[str, Any], reused: bool, worker: dict[str, Any] | None) -> None:
        from vlm_bench.grading import is_graded
        from vlm_bench.results import record_uid

        uid = sys.intern(record_uid(record))  # the string self.expected holds: one copy per item
        if uid in self.recorded:
            return  # one record per item, whatever a test does
        self.recorded.add(uid)
        if reused:
            self.reused_count += 1
        else:
            self.writer.write(record)
        self.running_summary.add(record)
        if record.get("passed") is not None or record.get("error") is not None:
            self.scored += 1
            self.passed += bool(record.get("passed"))
        if is_graded(record):
            self.graded_records.append(record)
        if worker:
            self.workers[worker["worker"]] = worker
        self.report_progress()

    def failure_record(self, uid: str, report: pytest.TestReport) -> dict[str, Any]:
        from vlm_bench.evaluate import error_record

        if self._sample_of is None:  # built on the first such failure, not per failure
            self._sample_of = {s.uid: s for s in self.samples()}
        sample = self._sample_of[uid]
        crash = getattr(report.longrepr, "reprcrash", None)
        lines = [line for line in str(report.longreprtext).splitlines() if line.strip()]
        why = crash.message if crash is not None else (lines[-1].strip() if lines else report.outcome)
        return error_record(self.run, sample, f"the test failed in {report.when} before evaluating the item: {why}").as_dict()

    def announce_load_error(self, error: str) -> None:
        """Once per session, as soon as the first item reports it: the engine did not load,
        why, and what to do. Each item's failure then only points here."""
        from vlm_bench.runners import load_failure_advice

        self.load_error = error
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write("\n")
            reporter.write_line(f"vlm-bench: the engine did not load, so every item fails: {error}", red=True, bold=True)
            reporter.write_line(f"vlm-bench: {load_failure_advice(self.run.backend)}")

    @pytest.hookimpl
    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected_benchmarks += sum(1 for it in items if _is_vlm_item(it) and it.get_closest_marker("benchmark"))

    @pytest.hookimpl
    def pytest_report_collectionfinish(self, config: pytest.Config, items: list[pytest.Item]) -> list[str]:
        if not self.deselected_benchmarks:
            return []
        stood_in = sum(self.stand_ins.values())
        how = f" (one stand-in per test for its {stood_in} items)" if stood_in else ""
        return [
            f"vlm-bench: {self.deselected_benchmarks} of the deselected are per-item latency benchmarks{how}, "
            "marker benchmark, off by default; pytest evals -m benchmark runs them"
        ]

    def report_progress(self) -> None:
        progress = self.progress()
        if progress is not None:
            progress.update(len(self.recorded), self.total_items, self.passed, self.scored)

    def stop_reason(self, session: pytest.Session, exitstatus: int) -> str:
        if self.stopped_by:
            return self.stopped_by
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            return str(session.shouldfail or session.shouldstop or "interrupted")
        return str(session.shouldfail or session.shouldstop or "some items did not run")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._progress:
            self._progress.finish()  # a bar cut short (-x, Ctrl-C) ends its line
        if self._evaluator is not None:
            self._evaluator.close()
        if self.is_controller and (self._evaluator is not None or self.build_error is not None):
            self.workers["main"] = self.worker_info()  # a single process: no report carried it
        if not self.is_controller or self.lock is None:
            return
        from vlm_bench.grading import grading_summary, write_output_tree
        from vlm_bench.results import SUMMARY_FILE, build_manifest, write_json_atomic

        self.writer.close()
        if not self.recorded:
            self.writer.start()  # an empty selection still leaves items.jsonl and run.json
            self.writer.close()
        summary = self.running_summary.result(self.run.min_pass_rate)
        not_run = set(self.expected.values()) - self.recorded
        summary["complete"] = not not_run
        summary["items_expected"] = self.total_items
        summary["items_not_run"] = len(not_run)
        summary["stopped"] = self.stop_reason(session, exitstatus) if not_run else None
        summary["note"] = "; ".join(self.empty_reasons) or None
        errors = sorted({w["error"] for w in self.workers.values() if w.get("error")})
        summary["engine_error"] = "; ".join(errors) or None
        if self.graded_records:
            summary["vmevalkit"] = grading_summary(self.graded_records)
            judge = {"judge_model": self.run.model.name, "backend": self.run.backend, "quant": self.run.quant}
            for dataset in self.run.datasets:
                if dataset.format == "vmevalkit-outputs":
                    mine = [r for r in self.graded_records if r["dataset"] == dataset.name]
                    write_output_tree(self.results_dir, mine, Path(dataset.root).name, judge)
        summary["results_dir"] = str(self.results_dir)
        summary["reused"] = self.reused_count
        summary["workers"] = dict(sorted(self.workers.items()))
        summary["manifest"] = build_manifest(self.run.as_dict(), self.started_at)
        threads = {name: w["cpu_threads"] for name, w in summary["workers"].items() if w.get("cpu_threads")}
        if threads:  # torch's thread count on a CPU: one entry when every worker chose alike
            distinct = {tuple(t.items()) for t in threads.values()}
            summary["manifest"]["cpu_threads"] = next(iter(threads.values())) if len(distinct) == 1 else threads
        write_json_atomic(self.results_dir / SUMMARY_FILE, summary)
        self.summary = summary
        if self.run.min_pass_rate is None:
            return
        if summary["below_min_pass_rate"] or not summary["complete"]:
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif session.exitstatus == pytest.ExitCode.TESTS_FAILED and self.other_failures == 0:
            # The threshold is the gate: failed items alone do not fail a run that meets it.
            session.exitstatus = pytest.ExitCode.OK

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summary is None:
            return
        from vlm_bench.grading import format_grading
        from vlm_bench.results import ITEMS_FILE, SUMMARY_FILE, format_table

        run, summary = self.run, self.summary
        terminalreporter.section(f"vlm-bench: {run.model.name} on {run.backend} (quant {run.quant})")
        if self.load_error:
            terminalreporter.write_line(f"the engine did not load: {self.load_error}", red=True)
        if summary["note"]:
            terminalreporter.write_line(f"no items selected: {summary['note']}")
        for line in format_table(summary):
            terminalreporter.write_line(line)
        if self.reused_count:
            terminalreporter.write_line(f"reused {self.reused_count} finished items from the resumed run")
        if not summary["complete"]:
            terminalreporter.write_line(
                f"INCOMPLETE: {len(self.recorded)} of {summary['items_expected']} items ran ({summary['stopped']}); "
                "finish the run with --resume",
                red=True,
                bold=True,
            )
        if "vmevalkit" in summary:
            terminalreporter.write_line("video-generation models, judged (pass rate per domain):")
            for line in format_grading(summary["vmevalkit"]):
                terminalreporter.write_line(line)
        terminalreporter.write_line(f"results: {self.results_dir / ITEMS_FILE}, {self.results_dir / SUMMARY_FILE}")


def _is_vlm_item(item: pytest.Item) -> bool:
    return "vlm_item" in getattr(getattr(item, "callspec", None), "params", {})


def _param_id(nodeid: str) -> str:
    """The parameter id of a test id (``test_x.py::test_f[abc]`` -> ``abc``)."""
    return nodeid.rsplit("::", 1)[-1].partition("[")[2][:-1]


def _vlm_sample(item: pytest.Item) -> Sample | None:
    sample = getattr(getattr(item, "callspec", None), "params", {}).get("vlm_item")
    return sample if isinstance(sample, Sample) else None


def drop_transport(props: list[tuple[str, Any]]) -> None:
    if any(key in TRANSPORT_KEYS for key, _ in props):
        props[:] = [(key, value) for key, value in props if key not in TRANSPORT_KEYS]


# ---------------------------------------------------------------- fixtures and markers


@pytest.fixture(scope="session")
def vlm_run_config(pytestconfig: pytest.Config) -> RunConfig:
    return _get_session(pytestconfig).run


@pytest.fixture(scope="session")
def vlm_evaluator(pytestconfig: pytest.Config) -> Evaluator:
    """The session's one engine, loaded once for all items."""
    session = _get_session(pytestconfig)
    evaluator = session.evaluator()
    if evaluator is None:
        pytest.fail(session.build_error or "vlm-bench could not set up the evaluation", pytrace=False)
    return evaluator


@pytest.fixture
def vlm_evaluate(request: pytest.FixtureRequest):
    """Evaluate one item (or reuse its record from a resumed run) and attach the record to
    this test's report; the controller, which under xdist is another process, writes it.
    Whatever goes wrong, the item gets a record carrying the error."""
    session = _get_session(request.config)

    def evaluate(sample: Sample) -> ItemRecord:
        try:
            record, reused = session.evaluate(request.node, sample)
            data = record.as_dict()
        except pytest.exit.Exception:  # the session stops (a server that is down): no record
            raise
        except Exception as exc:
            from vlm_bench.evaluate import error_record

            record, reused = error_record(session.run, sample, f"vlm-bench internal error on item {sample.id!r}: {type(exc).__name__}: {exc}"), False
            data = record.as_dict()
        props = request.node.user_properties
        props.append((RECORD_KEY, data))
        if reused:
            props.append((REUSED_KEY, True))
            return record
        if not session.is_controller:  # a single process adds its own at the end
            props.append((WORKER_KEY, session.worker_info()))
        load_error = session.engine_error()
        if load_error and record.error == load_error:
            props.append((LOAD_ERROR_KEY, load_error))
            # said once at the top of the run (and kept in the record), not once per item
            pytest.fail(f"{sample.id}: the engine did not load (the reason is at the top of this run)", pytrace=False)
        return record

    return evaluate


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        reason = gpu_unavailable_reason()
        if reason:
            pytest.skip(reason)


def gpu_unavailable_reason() -> str | None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "needs a CUDA GPU: torch is not installed"
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU: none is visible to torch"
    return None
