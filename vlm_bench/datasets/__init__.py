"""Dataset sources: one loader per format, each ``DatasetConfig -> list[Sample]``."""

from __future__ import annotations

from vlm_bench.config import DatasetConfig
from vlm_bench.datasets.jsonl import DatasetError, load_jsonl
from vlm_bench.types import Sample

__all__ = ["DatasetError", "load_samples"]

LOADERS = {"jsonl": load_jsonl}


def load_samples(dataset: DatasetConfig) -> list[Sample]:
    return LOADERS[dataset.format](dataset)
