"""The pytest plugin: options, item parametrization, the session engine fixture, the
per-item record writer and the terminal summary. The work lives in plain modules.

Registered through the ``pytest11`` entry point, so it is active in every pytest session
of an environment where vlm-bench is installed; it does nothing until a test asks for
``vlm_item``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from vlm_bench.config import ConfigError, RunConfig, build_run_config, run_fingerprint
from vlm_bench.datasets import DatasetError, load_samples, select_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.grading import format_grading, grading_summary, is_graded, write_output_tree
from vlm_bench.options import add_options
from vlm_bench.progress import progress_line
from vlm_bench.results import (
    ITEMS_FILE,
    SUMMARY_FILE,
    ResultsDirError,
    ResultsWriter,
    build_manifest,
    format_table,
    prepare_results_dir,
    read_records,
    record_uid,
    run_info,
    summarize,
    utc_now,
    write_json_atomic,
)
from vlm_bench.scheduling import check_gpu_plan, in_shard, visible_gpus, worker_gpus
from vlm_bench.types import ItemRecord, Sample

RECORD_KEY = "vlm_bench_record"
REUSED_KEY = "vlm_bench_reused"
LOAD_ERROR_KEY = "vlm_bench_load_error"
WORKER_KEY = "vlm_bench_worker"
GPUS_INPUT = "vlm_bench_gpus"
PLUGIN_NAME = "vlm_bench_session"
MARKERS = (
    "smoke: fast checks on the mock backend and shipped fixtures only (CI)",
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
    workerinput = getattr(config, "workerinput", {})
    if workerinput.get(GPUS_INPUT) is not None:  # an xdist worker: pin before anything initialises CUDA
        os.environ["CUDA_VISIBLE_DEVICES"] = workerinput[GPUS_INPUT]
    if config.option.help:
        return
    try:
        run = run_config_from_pytest(config)
    except ConfigError as exc:
        raise pytest.UsageError(f"vlm-bench: {exc}") from None
    session = VlmBenchSession(config, run)
    try:
        session.prepare(resume=config.getoption("vlm_resume"), overwrite=config.getoption("vlm_overwrite"))
    except (ResultsDirError, ValueError) as exc:
        raise pytest.UsageError(f"vlm-bench: {exc}") from None
    config.pluginmanager.register(session, PLUGIN_NAME)


def run_config_from_pytest(config: pytest.Config) -> RunConfig:
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
    )


def _get_session(config: pytest.Config) -> "VlmBenchSession":
    session = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if session is None:
        raise RuntimeError("the vlm-bench plugin is not configured in this session")
    return session


class VlmBenchSession:
    """Per-session state the plugin owns: the resolved run, the items, the evaluator and,
    on the controller, the results writer."""

    def __init__(self, config: pytest.Config, run: RunConfig):
        self.config = config
        self.run = run
        self.is_controller = not hasattr(config, "workerinput")  # pytest-xdist workers carry workerinput
        self.started_at = utc_now()
        self.results_dir = Path(run.results_dir) if run.results_dir else default_results_dir(run)
        self._samples: list[Sample] | None = None
        self._evaluator: Evaluator | None = None
        self._positions: dict[int, int] | None = None
        self.fingerprint = run_fingerprint(run)
        self.breakdowns = list(dict.fromkeys(b for d in run.datasets for b in d.breakdowns))
        self.writer = ResultsWriter(self.results_dir, dict(run_info(self.fingerprint), breakdowns=self.breakdowns))
        self.records: list[dict[str, Any]] = []
        self.other_failures = 0
        self.summary: dict[str, Any] | None = None
        self.reused: dict[str, dict[str, Any]] = {}  # dataset/id -> record of a resumed run
        self.reused_count = 0
        self.workers: dict[str, dict[str, Any]] = {}
        self.total_items = 0
        self._started = time.monotonic()
        self._last_progress = self._started
        self.gpus: list[str] = []
        self.gpus_per_worker = 0
        self.load_error: str | None = None  # the engine's, as the controller first heard of it
        self.deselected_benchmarks = 0

    # ------------------------------------------------------------ items and engine

    def samples(self) -> list[Sample]:
        if self._samples is None:
            samples: list[Sample] = []
            for dataset in self.run.datasets:
                chosen = select_samples(load_samples(dataset), self.run.limit, self.run.categories)
                samples.extend(s for s in chosen if in_shard(s.uid, self.run.shard))
            self._samples = samples
        return self._samples

    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            self._evaluator = Evaluator(self.run, self.samples())
            self._evaluator.load()
        return self._evaluator

    def worker_info(self) -> dict[str, Any]:
        """This process's engine loads, GPUs and frame-cache use, for the summary."""
        ev = self.evaluator()
        return {
            "worker": getattr(self.config, "workerinput", {}).get("workerid", "main"),
            "engine_loads": ev.load_count,
            "load_seconds": ev.load_seconds,
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "cpu_threads": getattr(ev.adapter.engine, "cpu_threads", None) if ev.adapter else None,
            "frame_cache": {"hits": ev.cache.hits, "misses": ev.cache.misses} if ev.cache else None,
        }

    def item_ids(self, samples: list[Sample]) -> list[str]:
        if len(self.run.datasets) == 1:
            return [s.id for s in samples]
        return [f"{s.dataset}/{s.id}" for s in samples]

    def upcoming(self, node: pytest.Item, count: int, same_cluster: bool = False) -> list[Sample]:
        """The next ``count`` items this test function runs after ``node`` (in collection
        order), for batching and frame prefetch."""
        if count <= 0:
            return []
        items = node.session.items
        if self._positions is None:
            self._positions = {id(it): i for i, it in enumerate(items)}
        current = node.callspec.params["vlm_item"]
        ahead: list[Sample] = []
        for other in items[self._positions.get(id(node), len(items)) + 1 :]:
            if len(ahead) == count:
                break
            callspec = getattr(other, "callspec", None)
            if getattr(other, "originalname", None) != node.originalname or not callspec or "vlm_item" not in callspec.params:
                continue
            sample = callspec.params["vlm_item"]
            if sample.uid in self.reused or (same_cluster and sample.cluster_key != current.cluster_key):
                continue
            ahead.append(sample)
        return ahead

    def evaluate(self, node: pytest.Item, sample: Sample) -> tuple[ItemRecord, bool]:
        """(record, reused): a resumed run's record, or a fresh evaluation. Batching looks
        ahead only in a single process; under xdist the next item may run elsewhere, so
        workers prefetch frames only for the same video's next questions."""
        if sample.uid in self.reused:
            return ItemRecord(**self.reused[sample.uid]), True
        evaluator = self.evaluator()
        batch = self.run.model.batch_size - 1 if self.is_controller else 0
        ahead = self.upcoming(node, batch)
        evaluator.prefetch(self.upcoming(node, batch + self.run.prefetch, same_cluster=not self.is_controller)[batch:])
        return evaluator.evaluate(sample, ahead), False

    # ------------------------------------------------------------ results

    def prepare(self, resume: bool, overwrite: bool) -> None:
        """Controller: ready the results directory (and, resuming, find the reusable
        records) and plan GPU slices for xdist workers. Workers read the reusable records."""
        if self.is_controller:
            self.reused = prepare_results_dir(self.results_dir, self.fingerprint, resume=resume, overwrite=overwrite)
            self.plan_gpus()
        elif resume and (self.results_dir / ITEMS_FILE).exists():
            self.reused = {record_uid(r): r for r in read_records(self.results_dir / ITEMS_FILE)}

    def plan_gpus(self) -> None:
        workers = getattr(self.config.option, "numprocesses", None)
        if not isinstance(workers, int) or workers < 1:
            return
        per_worker = self.config.getoption("vlm_gpus_per_worker")
        visible = visible_gpus()
        if not visible and per_worker is None:
            return  # CPU-only: nothing to pin
        per_worker = per_worker or 1
        check_gpu_plan(workers, per_worker, visible)
        self.gpus, self.gpus_per_worker = visible, per_worker

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """pytest-xdist, controller side: under --dist loadgroup, items about one video form
        one work unit; other tests are units of their own. Done here rather than with
        xdist_group marks: pytest 9 node ids no longer take the group suffix xdist 3.8
        writes into them, so those marks group nothing."""
        if config.getvalue("dist") != "loadgroup":
            return None
        from xdist.scheduler import LoadScopeScheduling

        groups = {}
        if self.run.datasets:
            try:
                samples = self.samples()
                groups = {pid: _group_name(s) for pid, s in zip(self.item_ids(samples), samples)}
            except (DatasetError, ConfigError):
                pass  # collection reports it

        class VideoGroupScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                if "@" in nodeid:
                    return nodeid.rsplit("@", 1)[-1]
                param = nodeid.rsplit("::", 1)[-1].partition("[")[2][:-1]
                return groups.get(param, nodeid)

        return VideoGroupScheduling(config, log)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist, controller side: give worker gw<k> its own GPU slice."""
        if self.gpus_per_worker:
            index = int(node.gateway.id.removeprefix("gw"))
            node.workerinput[GPUS_INPUT] = ",".join(worker_gpus(index, self.gpus_per_worker, self.gpus))

    @pytest.hookimpl
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "vlm_item" not in metafunc.fixturenames:
            return
        if not self.run.datasets:
            pytest.fail("vlm-bench: no dataset; pass --dataset FILE.jsonl (or a dataset YAML)", pytrace=False)
        try:
            samples = self.samples()
        except (DatasetError, ConfigError) as exc:
            pytest.fail(f"vlm-bench: {exc}", pytrace=False)
        metafunc.parametrize("vlm_item", samples, ids=self.item_ids(samples))

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            callspec = getattr(item, "callspec", None)
            if callspec is None or "vlm_item" not in callspec.params:
                continue
            if self.run.backend == "mock" and not item.get_closest_marker("benchmark"):
                item.add_marker(pytest.mark.smoke)

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total_items = len({
            it.callspec.params["vlm_item"].uid
            for it in session.items
            if "vlm_item" in getattr(getattr(it, "callspec", None), "params", {}) and not it.get_closest_marker("benchmark")
        })

    def show_progress(self) -> bool:
        mode = self.config.getoption("vlm_progress")
        if mode != "auto":
            return mode == "always"
        return sys.stdout.isatty() and self.config.get_verbosity() >= 0 and not os.environ.get("CI")

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_controller:
            return
        props = dict(report.user_properties)
        record = props.get(RECORD_KEY)
        if record is not None and report.when == "call":
            if props.get(REUSED_KEY):
                self.reused_count += 1
            else:
                self.writer.write(record)
            self.records.append(record)
            worker = props.get(WORKER_KEY)
            if worker:
                self.workers[worker["worker"]] = worker
            if props.get(LOAD_ERROR_KEY) and self.load_error is None:
                self.announce_load_error(props[LOAD_ERROR_KEY])
            self.report_progress()
        elif report.failed:
            self.other_failures += 1

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
        return [
            f"vlm-bench: {self.deselected_benchmarks} of the deselected are per-item latency benchmarks "
            "(marker benchmark, off by default); pytest evals -m benchmark runs them"
        ]

    def report_progress(self) -> None:
        now = time.monotonic()
        done = len(self.records)
        if not self.show_progress() or (now - self._last_progress < self.config.getoption("vlm_progress_interval") and done < self.total_items):
            return
        self._last_progress = now
        scored = [r for r in self.records if r.get("passed") is not None or r.get("error") is not None]
        passed = sum(1 for r in scored if r.get("passed"))
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write("\n")  # after the outcome letters of this line
            reporter.write_line(progress_line(done, self.total_items, passed, len(scored), now - self._started))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._evaluator is not None:
            self._evaluator.close()
        if not self.is_controller or not self.records:
            return
        self.writer.close()
        summary = summarize(self.records, self.run.min_pass_rate, self.breakdowns)
        if any(is_graded(r) for r in self.records):
            summary["vmevalkit"] = grading_summary(self.records)
            judge = {"judge_model": self.run.model.name, "backend": self.run.backend, "quant": self.run.quant}
            for dataset in self.run.datasets:
                if dataset.format == "vmevalkit-outputs":
                    mine = [r for r in self.records if r["dataset"] == dataset.name]
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
        if summary["below_min_pass_rate"]:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif session.exitstatus == pytest.ExitCode.TESTS_FAILED and self.other_failures == 0:
            # The threshold is the gate: failed items alone do not fail a run that meets it.
            session.exitstatus = pytest.ExitCode.OK

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.summary is None:
            return
        run = self.run
        terminalreporter.section(f"vlm-bench: {run.model.name} on {run.backend} (quant {run.quant})")
        if self.load_error:
            terminalreporter.write_line(f"the engine did not load: {self.load_error}", red=True)
        for line in format_table(self.summary):
            terminalreporter.write_line(line)
        if self.reused_count:
            terminalreporter.write_line(f"reused {self.reused_count} finished items from the resumed run")
        if "vmevalkit" in self.summary:
            terminalreporter.write_line("video-generation models, judged (pass rate per domain):")
            for line in format_grading(self.summary["vmevalkit"]):
                terminalreporter.write_line(line)
        terminalreporter.write_line(f"results: {self.results_dir / ITEMS_FILE}, {self.results_dir / SUMMARY_FILE}")


def _is_vlm_item(item: pytest.Item) -> bool:
    return "vlm_item" in getattr(getattr(item, "callspec", None), "params", {})


def _group_name(sample: Sample) -> str:
    return "vlm-" + hashlib.sha1(sample.cluster_key.encode("utf-8")).hexdigest()[:12]


def default_results_dir(run: RunConfig) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stamp}-{run.model.name}-{run.backend}")
    return Path(os.environ.get("VLM_BENCH_RESULTS_ROOT", "vlm-results")) / name


# ---------------------------------------------------------------- fixtures and markers


@pytest.fixture(scope="session")
def vlm_run_config(pytestconfig: pytest.Config) -> RunConfig:
    return _get_session(pytestconfig).run


@pytest.fixture(scope="session")
def vlm_evaluator(pytestconfig: pytest.Config) -> Evaluator:
    """The session's one engine, loaded once for all items."""
    return _get_session(pytestconfig).evaluator()


@pytest.fixture
def vlm_evaluate(request: pytest.FixtureRequest):
    """Evaluate one item (or reuse its record from a resumed run) and attach the record to
    this test's report; the controller, which under xdist is another process, writes it."""
    session = _get_session(request.config)

    def evaluate(sample: Sample) -> ItemRecord:
        record, reused = session.evaluate(request.node, sample)
        props = request.node.user_properties
        props.append((RECORD_KEY, record.as_dict()))
        if reused:
            props.append((REUSED_KEY, True))
            return record
        props.append((WORKER_KEY, session.worker_info()))
        load_error = session.evaluator().load_error
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
