"""Dataset sources: one loader per format, each ``DatasetConfig -> list[Sample]``."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from vlm_bench.config import DatasetConfig, RunConfig
from vlm_bench.datasets.common import DatasetError
from vlm_bench.datasets.jsonl import load_jsonl
from vlm_bench.datasets.mvbench import load_mvbench
from vlm_bench.datasets.nextqa import load_nextqa
from vlm_bench.datasets.videomme import load_videomme
from vlm_bench.datasets.vmevalkit import load_vmevalkit
from vlm_bench.datasets.vmevalkit_outputs import load_vmevalkit_outputs
from vlm_bench.scheduling import in_shard
from vlm_bench.scoring import check_scorer
from vlm_bench.types import Sample

__all__ = ["DatasetError", "load_samples", "missing_media_report", "run_samples", "select_samples"]

LOADERS: dict[str, Callable[[DatasetConfig], list[Sample]]] = {
    "jsonl": load_jsonl,
    "videomme": load_videomme,
    "mvbench": load_mvbench,
    "nextqa": load_nextqa,
    "vmevalkit": load_vmevalkit,
    "vmevalkit-outputs": load_vmevalkit_outputs,
}


def load_samples(dataset: DatasetConfig) -> list[Sample]:
    """The dataset's items, each checked to be scorable (its scorer, the scorer's
    arguments, its options and its answer) before any runs."""
    samples = LOADERS[dataset.format](dataset)
    for sample in samples:
        try:
            check_scorer(sample.scorer, sample.scorer_args, sample.answer, sample.options)
        except ValueError as exc:
            raise DatasetError(f"{sample.source or dataset.name}: item {sample.id!r}: {exc}") from None
    return samples


def select_samples(samples: Sequence[Sample], limit: int | None = None, categories: Iterable[str] = ()) -> list[Sample]:
    """The subset a run asked for, the same every time: items in any of ``categories``
    (a value of any category dimension, or ``dim=value``), then ``limit`` of them spread
    evenly over the dataset (so a sorted dataset is not cut to its first part)."""
    wanted = set(categories)
    if wanted:
        samples = [s for s in samples if _in_categories(s, wanted)]
    if limit is not None and len(samples) > limit:
        n = len(samples)
        samples = [samples[int((j + 0.5) * n / limit)] for j in range(limit)]
    return list(samples)


def run_samples(run: RunConfig) -> tuple[list[Sample], list[str]]:
    """A run's items: each dataset loaded, its selection (--categories, --limit) taken and
    this shard's part kept; with, when that leaves no item, why (one reason per dataset)."""
    samples: list[Sample] = []
    reasons = []
    for dataset in run.datasets:
        loaded = load_samples(dataset)
        chosen = select_samples(loaded, run.limit, run.categories)
        mine = [s for s in chosen if in_shard(s.uid, run.shard)]
        if not loaded:
            reasons.append(f"dataset {dataset.name!r} holds no items ({dataset.path or dataset.root})")
        elif not chosen:
            reasons.append(
                f"--categories {','.join(run.categories)} matched none of the {len(loaded)} items of "
                f"dataset {dataset.name!r} (its categories: {', '.join(_categories_of(loaded)) or 'none'})"
            )
        elif not mine:
            reasons.append(
                f"shard {run.shard[0]}/{run.shard[1]} holds none of the {len(chosen)} items of "
                f"dataset {dataset.name!r} (items go to shards by a hash of their id)"
            )
        samples.extend(mine)
    return samples, (reasons if not samples else [])


def _categories_of(samples: Sequence[Sample]) -> list[str]:
    found = {s.category for s in samples if s.category} | {f"{k}={v}" for s in samples for k, v in s.categories.items()}
    return sorted(found)[:12]


def _in_categories(sample: Sample, wanted: set[str]) -> bool:
    values = {sample.category} | set(sample.categories.values())
    pairs = {f"{k}={v}" for k, v in sample.categories.items()}
    return bool(wanted & (values | pairs))


def missing_media_report(samples: Sequence[Sample]) -> str | None:
    """One line naming the items whose media the download lacks, by dataset and category
    (an MVBench task), with an example path; None when nothing is missing."""
    missing = [s for s in samples if s.missing_media is not None]
    if not missing:
        return None
    counts: dict[tuple[str, str], int] = {}
    for s in missing:
        key = (s.dataset, s.category or "-")
        counts[key] = counts.get(key, 0) + 1
    parts = ", ".join(f"{d} {c}: {n}" for (d, c), n in sorted(counts.items()))
    return f"{len(missing)} items' media are missing ({parts}); e.g. {missing[0].missing_media}"
