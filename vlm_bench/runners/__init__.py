"""Engines: plain classes with ``load()`` and ``generate_video(...)``; they know nothing of
pytest or of result files. ``create_engine`` imports the chosen one lazily."""

from __future__ import annotations

import importlib
from typing import Any, Mapping, Protocol

from vlm_bench.config import ModelConfig
from vlm_bench.types import DecodeConfig, Generation, VideoInput

ENGINES: Mapping[str, str] = {
    "mock": "vlm_bench.runners.mock_backend:MockEngine",
    "native": "vlm_bench.runners.native_backend:NativeEngine",
    "vlmeval": "vlm_bench.runners.vlmeval_backend:VLMEvalKitEngine",
    "openai": "vlm_bench.runners.openai_backend:OpenAIEngine",
}


# For the one message a session prints when its engine does not load.
ENGINE_INSTALL: Mapping[str, str] = {
    "native": "pip install 'vlm-bench[native]' (part of the standard install; add [quant] for int8/int4)",
    "vlmeval": "pip install 'vlm-bench[vlmeval]', best in an environment of its own (docs/backends.md)",
    "openai": "pip install 'vlm-bench[serve]' (the openai client), and check the server settings (docs/served.md)",
}
ENGINE_ABOUT: Mapping[str, str] = {
    "native": "transformers, in the standard install",
    "vlmeval": "VLMEvalKit",
    "openai": "a model behind an OpenAI-compatible server",
    "mock": "tests the harness only, never a model",
}


def load_failure_advice(backend: str, error: str = "") -> str:
    """How to get past an engine that did not load: the weights where they are missing,
    what to install where a package is, or which other --backend to use."""
    others = " or ".join(f"--backend {name} ({about})" for name, about in ENGINE_ABOUT.items() if name != backend)
    if "model not available" in error:  # the engine is installed; the weights are not here
        return ("To fix: download the weights first (huggingface-cli download <repo>, on a machine that reaches the "
                "hub), or set hf_repo in the model YAML to the local folder that holds them.")
    install = ENGINE_INSTALL.get(backend)
    return (f"To fix: {install}; or" if install else "Or") + f" pick another engine: {others}."


class Engine(Protocol):
    name: str

    def load(self) -> None: ...

    def generate_video(
        self, media: VideoInput, prompt: str, decode: DecodeConfig, model_cfg: ModelConfig | None = None
    ) -> Generation: ...


class EngineUnavailable(RuntimeError):
    pass


class ServerUnavailable(RuntimeError):
    """No item can get past this (a server that is down, refuses the key or stays
    overloaded): the session stops with this message instead of recording it on every
    item; the records written so far stay and ``--resume`` continues."""


def engine_class(backend: str) -> type:
    if backend not in ENGINES:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(ENGINES)}")
    module_name, _, class_name = ENGINES[backend].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise EngineUnavailable(f"backend {backend!r} is not part of this vlm-bench version") from exc
        raise
    return getattr(module, class_name)


def create_engine(backend: str, model_cfg: ModelConfig, *, quant: str = "none", seed: int = 0, **extra: Any):
    """Build (not load) the engine for ``backend``."""
    return engine_class(backend)(model_cfg, quant=quant, seed=seed, **extra)

