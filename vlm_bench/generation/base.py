"""The generator interface: one task pair, the result of one generation, and the protocol
every generator follows (local pipelines and commercial APIs). The settings types are in
``generation/config.py``.

The protocol mirrors VMEvalKit's ``ModelWrapper.generate(image_path, text_prompt,
duration, output_filename, **kwargs)`` and its result dict (success, video_path, error,
duration_seconds, generation_id, model, status, metadata), typed. Engines never import
pytest and never write the output tree; the runner (``generation/run.py``) does.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from vlm_bench.generation.config import GenerationSettings, GeneratorConfig

@dataclass(frozen=True)
class GenerationTask:
    """One VMEvalKit task pair: ``<questions>/<domain>_task/<task_id>/``."""

    domain: str
    task_id: str
    task_dir: str
    prompt: str
    dataset: str = ""
    question_data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def uid(self) -> str:
        return f"{self.dataset}/{self.id}"

    @property
    def id(self) -> str:
        return f"{self.domain}/{self.task_id}"

    @property
    def first_frame(self) -> Path:
        return Path(self.task_dir) / "first_frame.png"


@dataclass(frozen=True)
class GenerationResult:
    """What ``generate`` returns: VMEvalKit's eight result fields, plus a download URL
    for generators that host their videos.

    ``status`` is ``success``, ``failed``, or ``pending``: an API generation that was
    submitted (``generation_id``) but not fetched in this run (the poll timeout, polls or
    the download failing past their retries). The runner keeps a pending task's staging
    folder, so the next run polls that id again instead of paying for a new one."""

    success: bool
    video_path: str | None
    error: str | None
    duration_seconds: float
    generation_id: str
    model: str
    status: str  # "success", "failed" or "pending"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    video_url: str | None = None


class Generator(Protocol):
    """A video generator, built from its catalog entry and the session's settings.

    ``load()`` runs once per session (per xdist worker). ``generate`` writes the video to
    ``output_filename`` (the runner's temporary path; it checks and renames it) and never
    raises for a failed generation: it returns ``success=False`` with the error.

    Generators that submit work elsewhere and poll (commercial APIs) call
    ``on_submitted(generation_id)`` as soon as they have an id, before polling: the runner
    stores it, and a killed run resumes polling that id (``resume_id``) instead of paying
    for a second generation. ``resumable`` says whether a generator can do that;
    ``concurrency`` is how many tasks the runner may keep in flight at once.
    """

    name: str
    resumable: bool
    concurrency: int
    load_count: int

    def load(self) -> None: ...

    def generate(
        self,
        image_path: str | Path,
        text_prompt: str,
        duration: float | None,
        output_filename: str | Path,
        *,
        resume_id: str | None = None,
        on_submitted: Callable[[str], None] | None = None,
    ) -> GenerationResult: ...

    def close(self) -> None: ...


class GeneratorUnavailable(RuntimeError):
    """The chosen generator cannot run here (not in this version, a missing extra,
    missing weights); the session stops before any task."""


def generator_class(import_path: str) -> type:
    """``package.module:Class``, imported only when that generator is chosen."""
    module_name, _, class_name = import_path.partition(":")
    if not class_name:
        raise GeneratorUnavailable(f"engine {import_path!r} must look like 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise GeneratorUnavailable(f"engine module {module_name!r} is not part of this vlm-bench version") from exc
        raise
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise GeneratorUnavailable(f"engine {import_path!r}: {module_name} has no {class_name}") from None


def create_generator(cfg: GeneratorConfig, settings: GenerationSettings) -> Generator:
    """Build (not load) the generator a catalog entry names."""
    if cfg.unavailable:
        raise GeneratorUnavailable(f"generator {cfg.name!r} is not available in this version: needs {cfg.unavailable}")
    if not cfg.engine:
        raise GeneratorUnavailable(f"generator {cfg.name!r} names no engine")
    return generator_class(cfg.engine)(cfg, settings)
