"""The pytest plugin: options, the hooks that start a vlm-bench session, and the fixtures.
A session's own hooks are in ``vlm_bench.plugin`` (collection and evaluation, xdist,
reports); the work lives in plain modules below them (``vlm_bench.session`` and down).

Registered through the ``pytest11`` entry point, so it is active in every pytest session
of an environment where vlm-bench is installed; it does nothing until a test asks for
``vlm_item``.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import pytest

from vlm_bench.generation.options import is_generation_session
from vlm_bench.options import OPTIONS, add_options
from vlm_bench.plugin import LOAD_ERROR_KEY, RECORD_KEY, REUSED_KEY, WORKER_KEY
from vlm_bench.types import ItemRecord, Sample

# Everything else is imported when a session uses vlm-bench: this module loads in every
# pytest session of an environment where vlm-bench is installed, and numpy, OpenCV and
# PyYAML would cost each such session about 0.4 s and 30 MiB.
if TYPE_CHECKING:
    from vlm_bench.config import RunConfig
    from vlm_bench.evaluate import Evaluator
    from vlm_bench.plugin.session import VlmBenchSession

# Video generation (--generator) is a plugin of its own, loaded with this one; its sessions
# run no video-QA item.
pytest_plugins = ("vlm_bench.generation.plugin",)

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
    # its frames are decoded once (see vlm_bench.plugin.xdist). Only
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
    from vlm_bench.plugin.reports import ReportHooks
    from vlm_bench.plugin.session import VlmBenchSession
    from vlm_bench.plugin.xdist import XdistHooks
    from vlm_bench.results import ResultsDirError, check_results_dir
    from vlm_bench.utils.logs import redact_url_credentials_in_logs

    if config.getoption("vlm_resume") and config.getoption("vlm_overwrite"):
        raise pytest.UsageError("vlm-bench: --resume and --overwrite contradict each other; give one")
    try:
        run = run_config_from_pytest(config)
    except ConfigError as exc:
        raise pytest.UsageError(f"vlm-bench: {exc}") from None
    redact_url_credentials_in_logs()
    session = VlmBenchSession(config, run)
    xdist = XdistHooks(session)
    try:
        if session.is_controller:
            check_results_dir(session.results_dir)
            xdist.plan_gpus()
            if run.datasets and not config.option.help:
                session.selection.samples()  # every bad line of the data, said once, before collection
    except (ResultsDirError, ValueError) as exc:
        raise pytest.UsageError(f"vlm-bench: {exc}") from None
    config.pluginmanager.register(session, PLUGIN_NAME)
    config.pluginmanager.register(xdist, f"{PLUGIN_NAME}_xdist")
    config.pluginmanager.register(ReportHooks(session), f"{PLUGIN_NAME}_reports")
    return session


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if session is not None:
        session.end()


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
        seed=opt("vlm_seed") or 0,
        results_dir=opt("vlm_results_dir"),
        min_pass_rate=opt("vlm_min_pass_rate"),
        dataset_roots=opt("vlm_dataset_roots") or (),
        limit=opt("vlm_limit"),
        categories=opt("vlm_categories") or (),
        shard=opt("vlm_shard"),
        all_runs=opt("vlm_all_runs"),
        questions_root=opt("vlm_questions_root"),
        preset=opt("vlm_preset"),
        grading={"score": opt("vlm_score"), "protocol": opt("vlm_judge_protocol")},
        frame_cache=opt("vlm_frame_cache"),
        frame_cache_gb=opt("vlm_frame_cache_gb"),
        prefetch=opt("vlm_prefetch"),
        server_overrides={
            "base_url": opt("vlm_base_url"),
            "api_key_env": opt("vlm_api_key_env"),
            "model": opt("vlm_served_model"),
            "concurrency": opt("vlm_concurrency"),
            "adaptive": opt("vlm_adaptive_concurrency") or None,
            "timeout_s": opt("vlm_request_timeout"),
            "max_retry_wait_s": opt("vlm_max_retry_wait"),
        },
        frame_memory_gb=opt("vlm_frame_memory_gb"),
        item_frames_gb=opt("vlm_item_frames_gb"),
        model_overrides={"batch_size": opt("vlm_batch_size"), "attn_implementation": opt("vlm_attn"), "compile": opt("vlm_compile")},
        item_timeout_s=opt("vlm_item_timeout"),
        max_response_kb=opt("vlm_max_response_kb"),
        context_policy=opt("vlm_context_policy"),
        max_model_len=opt("vlm_max_model_len"),
        judge={"model": opt("vlm_judge_model"), "base_url": opt("vlm_judge_base_url"),
               "api_key_env": opt("vlm_judge_api_key_env"), "cache_dir": opt("vlm_judge_cache")},
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
        pytest.fail(session.engine.build_error or "vlm-bench could not set up the evaluation", pytrace=False)
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
            props.append((WORKER_KEY, session.engine.worker_info()))
        load_error = session.engine.engine_error()
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
