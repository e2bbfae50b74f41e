"""Splitting work across processes and machines: shards of items, GPU slices for
pytest-xdist workers, and the look-ahead over the items a process runs next. Plain
Python; the plugin applies it."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
from typing import Any, Callable, Container, Hashable, Iterable, Mapping, Sequence


def param_id(nodeid: str) -> str:
    """The parameter id of a test id (``test_x.py::test_f[abc]`` -> ``abc``)."""
    return nodeid.rsplit("::", 1)[-1].partition("[")[2][:-1]


def shard_of(uid: str, count: int) -> int:
    """A stable shard for an item: a hash of its id, so reordering a dataset moves nothing."""
    return int(hashlib.sha1(uid.encode("utf-8")).hexdigest()[:12], 16) % count


def in_shard(uid: str, shard: tuple[int, int] | None) -> bool:
    return shard is None or shard_of(uid, shard[1]) == shard[0]


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries: the outer
    CUDA_VISIBLE_DEVICES when set (its entries are kept as given: ids or UUIDs), else
    every GPU ``nvidia-smi -L`` lists. Never initialises CUDA in this process."""
    env = os.environ if environ is None else environ
    outer = env.get("CUDA_VISIBLE_DEVICES")
    if outer is not None:
        return [d.strip() for d in outer.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def worker_gpus(worker_index: int, gpus_per_worker: int, visible: Sequence[str]) -> list[str]:
    """Worker k's own slice of the visible GPUs: entries k*K .. k*K+K-1 of the outer list
    (mapped through it, so an outer CUDA_VISIBLE_DEVICES=4,5,6,7 gives worker 0 GPU 4)."""
    start = worker_index * gpus_per_worker
    if gpus_per_worker < 1 or start + gpus_per_worker > len(visible):
        raise ValueError(
            f"worker {worker_index} needs GPUs {start}..{start + gpus_per_worker - 1} of the visible ones, "
            f"but {len(visible)} are visible ({','.join(visible) or 'none'})"
        )
    return list(visible[start : start + gpus_per_worker])


GPUS_INPUT = "vlm_bench_gpus"  # the xdist worker input that carries a worker's GPU slice


def give_worker_gpus(node: Any, gpus_per_worker: int, visible: Sequence[str]) -> None:
    """pytest-xdist, controller side: put worker gw<k>'s own slice of the visible GPUs in
    its workerinput; the worker pins it (CUDA_VISIBLE_DEVICES) in its pytest_configure."""
    if gpus_per_worker:
        index = int(node.gateway.id.removeprefix("gw"))
        node.workerinput[GPUS_INPUT] = ",".join(worker_gpus(index, gpus_per_worker, visible))


def check_gpu_plan(workers: int, gpus_per_worker: int, visible: Sequence[str]) -> None:
    if workers * gpus_per_worker > len(visible):
        raise ValueError(
            f"{workers} workers x {gpus_per_worker} GPUs need {workers * gpus_per_worker} GPUs, "
            f"{len(visible)} are visible ({','.join(visible) or 'none'}); lower -n or --gpus-per-worker"
        )


MIN_UNIT = 4  # a video's questions are split no finer than this


def video_group(sample: Any) -> str:
    """The name of a video's questions as one group (a hash of the video, or cluster)."""
    return "vlm-" + hashlib.sha1(sample.cluster_key.encode("utf-8")).hexdigest()[:12]


def unit_size(items: int, workers: int) -> int:
    """The most items of one video an xdist work unit holds: a quarter of each worker's
    share (at least ``MIN_UNIT``), so a video with many questions (or a dataset of one
    video) still spreads over the workers, each decoding it once per unit."""
    return max(MIN_UNIT, math.ceil(items / (max(1, workers) * 4)))


def work_units(samples: Sequence[Any], ids: Sequence[str], size: int) -> dict[str, str]:
    """Test parameter id -> xdist work unit: a video's questions together, in runs of at
    most ``size`` consecutive items."""
    by_video: dict[str, list[str]] = {}
    for pid, sample in zip(ids, samples):
        by_video.setdefault(video_group(sample), []).append(pid)
    units: dict[str, str] = {}
    for name, pids in by_video.items():
        for k, pid in enumerate(pids):
            units[pid] = name if len(pids) <= size else f"{name}-{k // size}"
    return units


class Upcoming:
    """The items a process runs after a given one, for frame prefetch on an xdist worker
    (which runs the work units it is sent, not the collected order).

    Built once from the collected items, in order, as ``(node id, list key, sample)``:
    items with the same list key (one test function and one work unit) form one list, and
    ``after`` is a slice of it. Items in ``skip`` (records reused from a resumed run) are
    left out."""

    def __init__(self, entries: Iterable[tuple[str, Hashable, Any]], skip: Container[str] = ()):
        lists: dict[Hashable, list[Any]] = {}
        self._where: dict[str, tuple[list[Any], int]] = {}
        for key, list_key, sample in entries:
            if sample.uid in skip:
                continue
            same = lists.setdefault(list_key, [])
            self._where[key] = (same, len(same))
            same.append(sample)

    def after(self, item: Any, count: int) -> list[Any]:
        where = self._where.get(item.nodeid)
        if where is None or count <= 0:
            return []
        same, position = where
        return same[position + 1 : position + 1 + count]


class RunOrder:
    """The items a single process runs after a given one, of the same test function, for
    batching and frame prefetch. pytest runs the collected items in order, so a cursor
    follows the run: no memory per item, and O(count) per call (a test function's items
    are collected together; the walk stops where the next function starts). Items in
    ``skip`` (records reused from a resumed run) are passed over."""

    def __init__(self, items: Sequence[Any], sample_of: Callable[[Any], Any], skip: Container[str] = ()):
        self.items = items
        self.sample_of = sample_of
        self.skip = skip
        self._cursor = 0
        self._index: dict[int, int] | None = None  # built only if items run out of order

    def _position(self, item: Any) -> int | None:
        items = self.items
        for j in range(self._cursor, min(self._cursor + 64, len(items))):
            if items[j] is item:
                self._cursor = j
                return j
        if self._index is None:  # a plugin reordered or reran items: index them once
            self._index = {id(it): k for k, it in enumerate(items)}
        position = self._index.get(id(item))
        if position is not None:
            self._cursor = position
        return position

    def after(self, item: Any, count: int) -> list[Any]:
        if count <= 0:
            return []
        start = self._position(item)
        if start is None:
            return []
        ahead: list[Any] = []
        parent, name = item.parent, getattr(item, "originalname", None)
        items = self.items
        for j in range(start + 1, len(items)):
            other = items[j]
            if other.parent is not parent or getattr(other, "originalname", None) != name:
                break
            sample = self.sample_of(other)
            if sample is None or sample.uid in self.skip:
                continue
            ahead.append(sample)
            if len(ahead) == count:
                break
        return ahead


def plan_worker_gpus(workers: object, gpus_per_worker: int | None) -> tuple[list[str], int]:
    """(visible GPUs, GPUs per worker) for ``workers`` pytest-xdist workers, or ([], 0)
    when nothing is to be pinned (no xdist, or a CPU-only machine and no
    --gpus-per-worker). Raises ValueError when the plan does not fit."""
    if not isinstance(workers, int) or workers < 1:
        return [], 0
    visible = visible_gpus()
    if not visible and gpus_per_worker is None:
        return [], 0
    gpus_per_worker = gpus_per_worker or 1
    check_gpu_plan(workers, gpus_per_worker, visible)
    return visible, gpus_per_worker


def video_group_scheduler(config: Any, log: Any, units: Mapping[str, str]) -> Any:
    """pytest-xdist's LoadScopeScheduling with the work units above: items about one video
    form a unit (several, for a video with many questions), other tests are units of their
    own. Done this way rather than with xdist_group marks: pytest 9 node ids no longer take
    the group suffix xdist 3.8 writes into them, so those marks group nothing."""
    from xdist.scheduler import LoadScopeScheduling

    class VideoGroupScheduling(LoadScopeScheduling):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.positions: dict[Any, dict[str, int]] = {}

        def _split_scope(self, nodeid: str) -> str:
            if "@" in nodeid:
                return nodeid.rsplit("@", 1)[-1]
            return units.get(param_id(nodeid), nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            # LoadScopeScheduling's, with each test's position in the worker's collection
            # looked up in a dict: xdist searches the list for each test, O(items) per
            # test, minutes for 100,000 items.
            scope, work_unit = self.workqueue.popitem(last=False)
            self.assigned_work.setdefault(node, {})[scope] = work_unit
            positions = self.positions.get(node)
            if positions is None:
                positions = self.positions[node] = {nid: i for i, nid in enumerate(self.registered_collections[node])}
            node.send_runtest_some([positions[nid] for nid, done in work_unit.items() if not done])

    return VideoGroupScheduling(config, log)
