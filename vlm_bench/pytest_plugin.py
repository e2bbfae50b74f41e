"""The pytest plugin: options, item parametrization, the session engine fixture, the
per-item record writer and the terminal summary. The work lives in plain modules.

Registered through the ``pytest11`` entry point, so it is active in every pytest session
of an environment where vlm-bench is installed; it does nothing until a test asks for
``vlm_item``.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from vlm_bench.config import ConfigError, RunConfig, build_run_config
from vlm_bench.datasets import DatasetError, load_samples, select_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.options import add_options
from vlm_bench.results import (
    ITEMS_FILE,
    SUMMARY_FILE,
    ResultsWriter,
    build_manifest,
    format_table,
    summarize,
    utc_now,
    write_json_atomic,
)
from vlm_bench.types import ItemRecord, Sample

RECORD_KEY = "vlm_bench_record"
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


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if config.option.help:
        return
    try:
        run = run_config_from_pytest(config)
    except ConfigError as exc:
        raise pytest.UsageError(f"vlm-bench: {exc}") from None
    session = VlmBenchSession(config, run)
    if session.is_controller:
        session.prepare_results_dir(overwrite=config.getoption("vlm_overwrite"))
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
        self.writer = ResultsWriter(self.results_dir)
        self.records: list[dict[str, Any]] = []
        self.other_failures = 0
        self.summary: dict[str, Any] | None = None

    # ------------------------------------------------------------ items and engine

    def samples(self) -> list[Sample]:
        if self._samples is None:
            samples: list[Sample] = []
            for dataset in self.run.datasets:
                samples.extend(select_samples(load_samples(dataset), self.run.limit, self.run.categories))
            self._samples = samples
        return self._samples

    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            self._evaluator = Evaluator(self.run, self.samples())
            self._evaluator.load()
        return self._evaluator

    def item_ids(self, samples: list[Sample]) -> list[str]:
        if len(self.run.datasets) == 1:
            return [s.id for s in samples]
        return [f"{s.dataset}/{s.id}" for s in samples]

    def lookahead(self, node: pytest.Item) -> list[Sample]:
        """With ``batch_size > 1``, the items the same test function runs next, so they are
        generated in one batch. Not under xdist, where the next item may run elsewhere."""
        size = self.run.model.batch_size
        if size <= 1 or not self.is_controller:
            return []
        items = node.session.items
        if self._positions is None:
            self._positions = {id(it): i for i, it in enumerate(items)}
        ahead = []
        for other in items[self._positions.get(id(node), len(items)) + 1 :]:
            callspec = getattr(other, "callspec", None)
            if len(ahead) == size - 1:
                break
            if getattr(other, "originalname", None) == node.originalname and callspec and "vlm_item" in callspec.params:
                ahead.append(callspec.params["vlm_item"])
        return ahead

    # ------------------------------------------------------------ results

    def prepare_results_dir(self, overwrite: bool) -> None:
        existing = [self.results_dir / n for n in (ITEMS_FILE, SUMMARY_FILE) if (self.results_dir / n).exists()]
        if existing and not overwrite:
            raise pytest.UsageError(
                f"vlm-bench: {self.results_dir} already holds results ({existing[0].name}); "
                "choose another --results-dir or pass --overwrite to replace them"
            )
        for path in existing:
            path.unlink()

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
        if self.run.backend != "mock":
            return
        for item in items:
            callspec = getattr(item, "callspec", None)
            if callspec is not None and "vlm_item" in callspec.params and not item.get_closest_marker("benchmark"):
                item.add_marker(pytest.mark.smoke)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_controller:
            return
        record = next((value for key, value in report.user_properties if key == RECORD_KEY), None)
        if record is not None and report.when == "call":
            self.writer.write(record)
            self.records.append(record)
        elif report.failed:
            self.other_failures += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.is_controller or not self.records:
            return
        self.writer.close()
        breakdowns = dict.fromkeys(b for d in self.run.datasets for b in d.breakdowns)
        summary = summarize(self.records, self.run.min_pass_rate, breakdowns)
        summary["results_dir"] = str(self.results_dir)
        summary["manifest"] = build_manifest(self.run.as_dict(), self.started_at)
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
        for line in format_table(self.summary):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"results: {self.results_dir / ITEMS_FILE}, {self.results_dir / SUMMARY_FILE}")


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
def vlm_evaluate(request: pytest.FixtureRequest, vlm_evaluator: Evaluator):
    """Evaluate one item and attach its record to this test's report (written to
    items.jsonl by the controller, which under xdist is not this process)."""

    session = _get_session(request.config)

    def evaluate(sample: Sample) -> ItemRecord:
        record = vlm_evaluator.evaluate(sample, session.lookahead(request.node))
        request.node.user_properties.append((RECORD_KEY, record.as_dict()))
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
