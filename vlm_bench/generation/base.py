"""The generator interface: the settings a generation runs with, one task pair, the result
of one generation, and the protocol every generator follows (local pipelines now,
commercial APIs next).

The protocol mirrors VMEvalKit's ``ModelWrapper.generate(image_path, text_prompt,
duration, output_filename, **kwargs)`` and its result dict (success, video_path, error,
duration_seconds, generation_id, model, status, metadata), typed. Engines never import
pytest and never write the output tree; the runner (``generation/run.py``) does.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

if TYPE_CHECKING:
    from vlm_bench.generation.catalog import GeneratorConfig

CPU_OFFLOAD = ("none", "model", "sequential")
DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class GenerationSettings:
    """How one generator makes each video. ``None`` leaves a choice to the generator
    (an API's own default, a pipeline's own default)."""

    num_frames: int | None = None
    fps: float | None = None
    height: int | None = None
    width: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    seed: int = 0
    dtype: str | None = None  # on a GPU; float32 on a CPU unless set on the command line
    cpu_offload: str = "none"
    vae_tiling: bool = False
    vae_slicing: bool = False
    negative_prompt: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds of video asked for (VMEvalKit's ``duration``)."""
        if self.num_frames and self.fps:
            return round(self.num_frames / self.fps, 3)
        return None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SETTING_KEYS = tuple(f.name for f in fields(GenerationSettings))
# The settings an API generator takes from the command line; the rest of its request is
# its catalog entry's call_args.
API_SETTING_KEYS = ("seed", "negative_prompt")


@dataclass(frozen=True)
class APIConfig:
    """How an API generator talks to its provider: the catalog entry's ``api`` mapping,
    under the command line's --base-url and --upload-to. Where and how fast requests go,
    not what the video is, so none of it is part of a run's fingerprint. The key is never
    here: only the name of its environment variable (``needs.api_key``)."""

    provider: str | None = None  # requests_per_minute is shared by the entries of one provider
    base_url: str | None = None  # None: the SDK's own
    requests_per_minute: float | None = None  # every request to the provider from this process
    poll_interval_s: float = 5.0
    poll_timeout_s: float = 1200.0  # then the task stays pending; the next run polls it again
    timeout_s: float = 120.0  # one request
    connect_timeout_s: float = 10.0
    max_retries: int = 5  # per request, on 429, 5xx and connection errors
    retry_base_s: float = 2.0  # backoff: base * 2**attempt with jitter (at most 60 s), or Retry-After
    usd_per_second: float | None = None  # list price per second of video, for the dry run's estimate
    usd_per_video: float | None = None
    first_frame: str = "data_uri"  # data_uri, bytes, file, or url (needs an uploader: --upload-to)
    upload_to: str | None = None  # s3://bucket/prefix: where first frames go when the API needs a URL
    upload_url_expires_s: int = 86400

    @classmethod
    def of(cls, cfg: "GeneratorConfig") -> "APIConfig":
        return cls(**cfg.api)


API_KEYS = tuple(f.name for f in fields(APIConfig))
FIRST_FRAME_MODES = ("data_uri", "bytes", "file", "url")


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


def create_generator(cfg: "GeneratorConfig", settings: GenerationSettings) -> Generator:
    """Build (not load) the generator a catalog entry names."""
    if cfg.unavailable:
        raise GeneratorUnavailable(f"generator {cfg.name!r} is not available in this version: needs {cfg.unavailable}")
    if not cfg.engine:
        raise GeneratorUnavailable(f"generator {cfg.name!r} names no engine")
    return generator_class(cfg.engine)(cfg, settings)
