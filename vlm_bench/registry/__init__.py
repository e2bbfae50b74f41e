"""The catalog of model families: plain data with string import paths, imported lazily."""

from __future__ import annotations

import importlib
from typing import Mapping

ADAPTERS: Mapping[str, str] = {
    "internvl3": "vlm_bench.registry.model_adapters.internvl3:InternVL3Adapter",
    "mock": "vlm_bench.registry.model_adapters.base:ModelAdapter",
}


def adapter_class(family: str) -> type:
    if family not in ADAPTERS:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(ADAPTERS)}")
    module_name, _, class_name = ADAPTERS[family].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
