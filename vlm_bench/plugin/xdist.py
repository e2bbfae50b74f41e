"""pytest-xdist glue on the controller: a video's questions travel together as work
units, each worker gets its own GPU slice, and the first worker's collection tells the
controller which items will run (it claims the results folder then)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from vlm_bench.plugin import UNIT_INPUT
from vlm_bench.plugin.session import VlmBenchSession


class XdistHooks:
    def __init__(self, session: VlmBenchSession):
        self.session = session
        self.config = session.config
        self.selection = session.selection
        self.records = session.records
        self.engine = session.engine
        self.run = session.run
        self.gpus: list[str] = []
        self.gpus_per_worker = 0
        self.unit_size = 0  # items per xdist work unit at most (see pytest_xdist_make_scheduler)

    def plan_gpus(self) -> None:
        from vlm_bench.scheduling import plan_worker_gpus

        self.gpus, self.gpus_per_worker = plan_worker_gpus(
            getattr(self.config.option, "numprocesses", None), self.config.getoption("vlm_gpus_per_worker")
        )

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """pytest-xdist, controller side: under --dist loadgroup, a video's questions form
        work units of at most ``unit_size`` items (scheduling.video_group_scheduler)."""
        if config.getvalue("dist") != "loadgroup":
            return None
        from vlm_bench.config import ConfigError
        from vlm_bench.datasets import DatasetError
        from vlm_bench.scheduling import unit_size, video_group_scheduler, work_units

        units: dict[str, str] = {}
        if self.run.datasets:
            try:
                samples = self.selection.samples()
                workers = config.option.numprocesses if isinstance(config.option.numprocesses, int) else os.cpu_count()
                self.unit_size = unit_size(len(samples), workers or 1)
                units = work_units(samples, self.selection.item_ids(samples), self.unit_size)
            except (DatasetError, ConfigError):
                pass  # collection reports it
        return video_group_scheduler(config, log, units)

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
        before any test is scheduled, and an engine with a server checks it once here."""
        from vlm_bench.config import ConfigError
        from vlm_bench.datasets import DatasetError
        from vlm_bench.scheduling import param_id
        from vlm_bench.session.engine import SessionStop

        if self.records.lock is not None or not self.run.datasets or self.config.option.collectonly:
            return
        try:
            self.selection.expect_ids(ids)
        except (DatasetError, ConfigError):
            return  # the workers report the collection error
        if self.selection.expected or (not self.selection.samples() and any(param_id(nid) == "NOTSET" for nid in ids)):
            self.session.claim_results_dir()
        if self.selection.expected:
            try:
                self.engine.preflight()
            except SessionStop as exc:
                self.session.exit(exc)

