"""Which items a session runs, and which run after a given one.

The items are loaded once (``datasets.run_samples``); each becomes a test whose parameter
id is its id (``dataset/id`` when a run has several datasets). The controller notes which
tests evaluate which item, so it knows at the end which items never ran. Look-ahead
(batches, requests in flight, frame prefetch) follows the collected order in a single
process, and stays inside the work unit it was sent on an xdist worker."""

from __future__ import annotations

import sys
from typing import Any, Callable, Container, Iterable, Sequence

from vlm_bench.config import RunConfig
from vlm_bench.scheduling import RunOrder, Upcoming, param_id, work_units
from vlm_bench.types import Sample


class ItemSelection:
    """The run's items and the tests that evaluate them."""

    def __init__(self, run: RunConfig):
        self.run = run
        self._samples: list[Sample] | None = None
        self._sample_of: dict[str, Sample] | None = None  # uid -> sample, built on first use
        self.empty_reasons: list[str] = []  # why a selection holds no items
        self.expected: dict[str, str] = {}  # test id -> item uid, for each test that evaluates an item
        self.total_items = 0  # distinct items among them
        self.collected_here = False  # a single process: ``expected`` holds exactly the tests that evaluate
        self.stand_ins: dict[str, int] = {}  # test function -> items it stands in for (deselected by -m)
        self._order: RunOrder | Upcoming | None = None

    def samples(self) -> list[Sample]:
        if self._samples is None:
            from vlm_bench.datasets import run_samples

            self._samples, self.empty_reasons = run_samples(self.run)
        return self._samples

    def sample(self, uid: str) -> Sample:
        if self._sample_of is None:
            self._sample_of = {s.uid: s for s in self.samples()}
        return self._sample_of[uid]

    def item_ids(self, samples: Sequence[Sample]) -> list[str]:
        if len(self.run.datasets) == 1:
            return [s.id for s in samples]
        return [f"{s.dataset}/{s.id}" for s in samples]

    # ------------------------------------------------------------ which tests evaluate an item

    def expect(self, nodeid: str, sample: Sample) -> None:
        """A single process, at collection: this test evaluates this item."""
        self.expected[nodeid] = sys.intern(sample.uid)

    def collected(self) -> None:
        self.collected_here = True
        self.total_items = len(set(self.expected.values()))

    def expect_ids(self, ids: Iterable[str]) -> None:
        """The xdist controller, from a worker's collected test ids (the controller
        collects nothing itself): tests with an item's parameter id evaluate it."""
        uid_of = dict(zip(self.item_ids(self.samples()), (s.uid for s in self.samples())))
        self.expected = {nid: uid_of[param_id(nid)] for nid in ids if param_id(nid) in uid_of}
        self.total_items = len(set(self.expected.values()))

    def uid_of_test(self, nodeid: str) -> str | None:
        """The item a test evaluates, where collection in this process says so."""
        return self.expected.get(nodeid) if self.collected_here else None

    def not_run(self, recorded: Container[str]) -> set[str]:
        return {uid for uid in self.expected.values() if uid not in recorded}

    # ------------------------------------------------------------ look-ahead

    def follow_run_order(self, items: Sequence[Any], sample_of: Callable[[Any], Sample | None], skip: Container[str]) -> None:
        """A single process: what runs next is the next collected item of the same test function."""
        self._order = RunOrder(items, sample_of, skip)

    def follow_work_units(self, entries: Sequence[tuple[str, Any, Sample]], unit: int | None, skip: Container[str]) -> None:
        """An xdist worker: what runs next is the next item of the same test function and
        the same work unit (``entries``: test id, its parent and function, its sample)."""
        units = {}
        if self.run.datasets:
            samples = self.samples()
            units = work_units(samples, self.item_ids(samples), unit or len(samples))
        keyed = [(nid, (*where, units.get(param_id(nid))), sample) for nid, where, sample in entries]
        self._order = Upcoming(keyed, skip)

    def after(self, node: Any, count: int) -> list[Sample]:
        return self._order.after(node, count) if self._order is not None and count > 0 else []
