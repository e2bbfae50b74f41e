"""pytest glue for video generation: with ``--generator``, each VMEvalKit task pair is one
test (``gen_task``), a session fixture loads the generator once per process, each task's
record goes to ``items.jsonl`` and the terminal shows the generation summary. Without
``--generator`` the generation tests are deselected; with it, the video-QA tests are.

Loaded by ``vlm_bench.pytest_plugin`` (``pytest_plugins``); the work is in
``vlm_bench.generation.run``.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from vlm_bench.generation.options import GENERATION_OPTIONS, SETTING_DESTS, is_generation_session, setting_overrides
from vlm_bench.options import add_options

# The rest loads when a session uses --generator: this module loads in every pytest session.
if TYPE_CHECKING:
    from vlm_bench.generation.base import GenerationTask
    from vlm_bench.generation.config import GeneratorConfig
    from vlm_bench.generation.run import GenerationRunner
    from vlm_bench.types import ItemRecord

RECORD_KEY = "vlm_bench_generation_record"
REUSED_KEY = "vlm_bench_generation_reused"
WORKER_KEY = "vlm_bench_generation_worker"
PLUGIN_NAME = "vlm_bench_generation"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser.getgroup("vlm-bench generation", "vlm-bench video generation (VMEvalKit task pairs)").addoption,
                GENERATION_OPTIONS)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.option.help or not is_generation_session(config):
        return
    from vlm_bench.config import ConfigError
    from vlm_bench.datasets import DatasetError
    from vlm_bench.generation.base import GeneratorUnavailable
    from vlm_bench.results import ResultsDirError

    from vlm_bench.utils.logs import redact_url_credentials_in_logs

    redact_url_credentials_in_logs()
    session = None
    try:
        session = GenerationSession(config)
        if config.getoption("gen_dry_run"):
            lines = session.dry_run()
        else:
            session.prepare()
    except (ConfigError, DatasetError, ResultsDirError, GeneratorUnavailable, OSError, ValueError) as exc:
        if session is not None:
            session.records.release()
        raise pytest.UsageError(f"vlm-bench: {exc}") from None
    if config.getoption("gen_dry_run"):
        writer = config.get_terminal_writer()
        for line in lines:
            writer.line(line)
        config.pluginmanager.register(DryRun(), PLUGIN_NAME)
        return
    config.pluginmanager.register(session, PLUGIN_NAME)


class DryRun:
    """--dry-run: the plan is printed at configure time; no test is collected or run."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool:
        return True

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(session, GenerationSession):
        session.records.release()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Generation and video-QA tests never run in one session."""
    unwanted = "vlm_item" if is_generation_session(config) else "gen_task"
    keep, drop = [], []
    for item in items:
        (drop if unwanted in getattr(item, "fixturenames", ()) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        config.stash[_DESELECTED] = (unwanted, len(drop))


_DESELECTED = pytest.StashKey[tuple]()


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    unwanted, count = config.stash.get(_DESELECTED, (None, 0))
    if unwanted == "gen_task":
        return [f"vlm-bench: {count} of the deselected {'is' if count == 1 else 'are'} video generation, which runs with --generator"]
    if unwanted == "vlm_item":
        return [f"vlm-bench: {count} of the deselected {'is' if count == 1 else 'are'} video QA, which does not run with --generator"]
    return []


def _session(config: pytest.Config) -> "GenerationSession":
    session = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if session is None:
        raise RuntimeError("no generation session: pass --generator NAME (see `vlm-bench generators`)")
    return session


class GenerationSession:
    """The generation run the plugin owns: generator entry, settings, tasks (``selection``),
    the runner (per process) and, on the controller, the results folder and the records
    (``records``)."""

    def __init__(self, config: pytest.Config):
        from vlm_bench.config import ConfigError, build_run_config
        from vlm_bench.generation.catalog import resolve_generator, with_preset, with_transport
        from vlm_bench.results import default_results_dir, run_info
        from vlm_bench.session.records import RunRecords
        from vlm_bench.session.selection import ItemSelection

        self.config = config
        opt = config.getoption
        self.is_controller = not hasattr(config, "workerinput")
        self.cfg: "GeneratorConfig" = with_preset(resolve_generator(opt("gen_generator")), opt("vlm_preset"))
        if not opt("gen_outputs_dir"):
            raise ConfigError("--generator needs --outputs-dir: the experiment folder the videos go to "
                              "(VMEvalKit's data/outputs/<experiment>)")
        self.outputs_dir = Path(opt("gen_outputs_dir")).expanduser().resolve()
        datasets = opt("vlm_datasets")
        if not datasets:
            raise ConfigError("--generator needs task pairs: --dataset vmevalkit --dataset-root <questions folder>")
        self.run = build_run_config(model="mock", backend="mock", datasets=datasets, dataset_roots=opt("vlm_dataset_roots") or (),
                                    limit=opt("vlm_limit"), categories=opt("vlm_categories") or (), shard=opt("vlm_shard"),
                                    seed=opt("vlm_seed") or 0)
        self.overrides = setting_overrides({dest: opt(dest) for dest in SETTING_DESTS})
        self.requested = self.cfg.settings(self.overrides)  # checked now; the dtype is settled per process
        if opt("vlm_concurrency"):
            self.cfg = replace(self.cfg, concurrency=opt("vlm_concurrency"))
        self.cfg = with_transport(self.cfg, base_url=opt("vlm_base_url"), api_key_env=opt("vlm_api_key_env"),
                                  upload_to=opt("gen_upload_to"))
        self.max_generations = opt("gen_max_generations")
        self.results_dir = Path(opt("vlm_results_dir")) if opt("vlm_results_dir") else default_results_dir(f"generate-{self.cfg.name}")
        self.fingerprint = {
            "generator": self.cfg.name,
            # where requests go and how many at once do not change the videos: not part of the fingerprint
            "generator_config": {k: v for k, v in self.cfg.as_dict().items()
                                 if k not in ("path", "description", "needs", "api", "concurrency", "presets")},
            "settings": self.requested.as_dict(),
            "outputs_dir": str(self.outputs_dir),
            "override": bool(opt("gen_override")),
            "datasets": [{"name": d.name, "format": d.format, "sha256": d.content_hash()} for d in self.run.datasets],
        }
        self.records = RunRecords(self.results_dir, run_info(self.fingerprint), [("domain",)], keep=True)
        self.selection = ItemSelection(self.run)
        self._tasks: list["GenerationTask"] | None = None
        self._runner: "GenerationRunner | None" = None
        self.reused: dict[str, dict[str, Any]] = {}
        self.summary: dict[str, Any] | None = None
        self.gpus: list[str] = []
        self.gpus_per_worker = 0
        self.total = 0
        self.probe = None
        self.left_for_later = 0
        self._started = time.monotonic()
        self._progress: Any = False  # status lines, built on first use (None: not shown)

    def prepare(self) -> None:
        """Fail fast: the generator must be runnable here (in this version, its extra
        installed, its weights present) before any task; then the results directory."""
        from vlm_bench.generation.base import create_generator
        from vlm_bench.results import ITEMS_FILE, resumed_records_seen_by_worker
        from vlm_bench.scheduling import plan_worker_gpus

        generator = self.probe = create_generator(self.cfg, self.requested)
        if hasattr(generator, "check"):
            generator.check()
        endpoint = getattr(generator, "base_url", None) or getattr(generator, "default_base_url", None)
        if endpoint:  # an API generator: a dead endpoint stops the run here, naming it
            from vlm_bench.generation.engines.api import probe_endpoint

            probe_endpoint(endpoint)
        opt = self.config.getoption
        if self.is_controller:  # a second run on this folder is refused here
            self.records.claim(self.fingerprint, resume=opt("vlm_resume"), overwrite=opt("vlm_overwrite"))
            self.reused = self.records.reused
            self.gpus, self.gpus_per_worker = plan_worker_gpus(getattr(self.config.option, "numprocesses", None),
                                                               opt("vlm_gpus_per_worker"))
        elif opt("vlm_resume"):
            self.reused = resumed_records_seen_by_worker(self.results_dir / ITEMS_FILE)

    def plan(self, tasks: list["GenerationTask"], generator) -> list:
        from vlm_bench.generation.plan import plan

        return plan(tasks, self.outputs_dir, self.cfg.name, override=bool(self.config.getoption("gen_override")),
                    resumable=bool(getattr(generator, "resumable", False)), max_generations=self.max_generations)

    def dry_run(self) -> list[str]:
        """What the run would send, task by task; nothing is sent, uploaded or written."""
        from vlm_bench.generation.base import create_generator
        from vlm_bench.generation.plan import dry_run_lines

        generator = create_generator(self.cfg, self.requested)
        return dry_run_lines(self.cfg, self.requested, generator, self.plan(self.tasks(), generator), self.outputs_dir)

    def tasks(self) -> list["GenerationTask"]:
        from vlm_bench.generation.run import tasks_from_samples

        if self._tasks is None:
            self._tasks = tasks_from_samples(self.selection.samples(), self.run.datasets)
        return self._tasks

    def runner(self) -> "GenerationRunner":
        """This process's runner; its generator loads once, here (one pipeline per worker)."""
        from vlm_bench.generation.run import GenerationRunner

        if self._runner is None:
            settings = self.cfg.settings(self.overrides, cuda=_cuda_available() if self.cfg.kind == "open_source" else None)
            runner = GenerationRunner(self.cfg, settings, self.outputs_dir, override=self.config.getoption("gen_override"),
                                      rules=self.config.getoption("vlm_score") not in ("none", "judge"),
                                      max_generations=self.max_generations)
            runner.load()
            self._runner = runner
        return self._runner

    def worker_info(self) -> dict[str, Any]:
        runner = self._runner
        return {
            "worker": getattr(self.config, "workerinput", {}).get("workerid", "main"),
            "generator_loads": runner.load_count if runner else 0,
            "load_seconds": round(runner.load_seconds, 3) if runner else None,
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def upcoming(self, node: pytest.Item, count: int) -> list["GenerationTask"]:
        """The next ``count`` tasks of this test function after ``node`` (API generators
        submit them ahead)."""
        return self.selection.after(node, count)

    # ------------------------------------------------------------ hooks

    @pytest.hookimpl
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        from vlm_bench.config import ConfigError
        from vlm_bench.datasets import DatasetError

        if "gen_task" not in metafunc.fixturenames:
            return
        try:
            tasks = self.tasks()
        except (DatasetError, ConfigError) as exc:
            pytest.fail(f"vlm-bench: {exc}", pytrace=False)
        ids = [t.id if len(self.run.datasets) == 1 else f"{t.dataset}/{t.id}" for t in tasks]
        metafunc.parametrize("gen_task", tasks, ids=ids)

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """--max-generations: tasks past the cap of new submissions are left for a later run."""
        if self.max_generations is None:
            return
        tasks = [t for t in map(_task_of, items) if t is not None]
        later = {p.task.uid for p in self.plan(tasks, self.probe) if p.action == "later"}
        keep, drop = [], []
        for item in items:
            task = _task_of(item)
            (drop if task is not None and task.uid in later else keep).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
            self.left_for_later = len(drop)

    @pytest.hookimpl
    def pytest_report_collectionfinish(self, config: pytest.Config, items: list[pytest.Item]) -> list[str]:
        if not self.left_for_later:
            return []
        return [f"vlm-bench: {self.left_for_later} task(s) deselected by --max-generations {self.max_generations}: "
                "left for a later run"]

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = sum(1 for it in session.items if "gen_task" in getattr(getattr(it, "callspec", None), "params", {}))
        self.selection.follow_run_order(session.items, _task_of, self.reused)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist, controller side: give worker gw<k> its own GPU slice."""
        from vlm_bench.scheduling import give_worker_gpus

        give_worker_gpus(node, self.gpus_per_worker, self.gpus)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        record = props.get(RECORD_KEY)
        if not self.is_controller or record is None or report.when != "call":
            return
        # a --resume'd record is in items.jsonl already
        self.records.add(record, reused=bool(props.get(REUSED_KEY)), worker=props.get(WORKER_KEY))
        self.report_progress()

    def report_progress(self) -> None:
        """A status line every --progress-interval seconds (and at the end), where shown."""
        if self._progress is False:
            from vlm_bench.progress import Progress, progress_display

            shown, _ = progress_display(self.config.getoption("vlm_progress"), self.config.get_verbosity())
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            self._progress = None
            if shown and reporter is not None:
                self._progress = Progress(reporter, False, self.config.getoption("vlm_progress_interval"), self._started)
        if self._progress is not None:
            done = len(self.records.recorded)
            self._progress.update(done, self.total, self.records.passed, done)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from vlm_bench.generation.summary import generation_summary
        from vlm_bench.utils.http import redact_url

        if self._runner is not None:
            self._runner.close()
        if not self.is_controller or not self.records.kept:
            return
        generator = self.cfg.as_dict()
        if generator["api"].get("base_url"):  # never a user:password@ written out
            generator["api"] = {**generator["api"], "base_url": redact_url(generator["api"]["base_url"])}
        manifest = {"generator": generator, "settings": self.requested.as_dict(), "outputs_dir": str(self.outputs_dir),
                    "seed": self.requested.seed}
        fields = {"generation": generation_summary(self.records.kept, self.cfg.name, self.outputs_dir)}
        self.summary = self.records.finish(fields, manifest)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from vlm_bench.generation.summary import generation_lines

        if self.summary is None:
            return
        terminalreporter.section(f"vlm-bench generation: {self.cfg.name} ({self.cfg.family})")
        for line in generation_lines(self.summary, self.outputs_dir / self.cfg.name, self.results_dir):
            terminalreporter.write_line(line)


def _task_of(item: pytest.Item) -> "GenerationTask | None":
    return getattr(getattr(item, "callspec", None), "params", {}).get("gen_task")


def _cuda_available() -> bool | None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch.cuda.is_available()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def vlm_generation_runner(pytestconfig: pytest.Config) -> "GenerationRunner":
    """The session's generator, loaded once (per xdist worker) for all tasks."""
    from vlm_bench.generation.base import GeneratorUnavailable

    try:
        return _session(pytestconfig).runner()
    except GeneratorUnavailable as exc:
        pytest.fail(f"vlm-bench: {exc}", pytrace=False)


@pytest.fixture
def vlm_generate(request: pytest.FixtureRequest, vlm_generation_runner: "GenerationRunner"):
    """Generate one task's video (or find it finished) and attach its record to this
    test's report; the controller, which under xdist is another process, writes it."""
    session = _session(request.config)

    def generate(task: GenerationTask) -> tuple["ItemRecord", bool]:
        props = request.node.user_properties
        from vlm_bench.types import ItemRecord

        if task.uid in session.reused:  # --resume: this results directory already holds its record
            props.append((REUSED_KEY, True))
            record, reused = ItemRecord(**session.reused[task.uid]), True
        else:
            vlm_generation_runner.prefetch(session.upcoming(request.node, vlm_generation_runner.ahead_limit()))
            record, reused = vlm_generation_runner.run(task)
            props.append((WORKER_KEY, session.worker_info()))
        props.append((RECORD_KEY, record.as_dict()))
        return record, reused

    return generate
