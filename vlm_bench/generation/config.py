"""The generator config types: the settings a generation runs with, how an API
generator talks to its provider, and one catalog entry (``GeneratorConfig``). Plain data,
below both the generator interface (``base``) and the catalog's loading (``catalog``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from vlm_bench.checks import ConfigError, check_number, is_int, plain

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
    retry_base_s: float = 2.0  # backoff: base * 2**attempt with jitter, or Retry-After; both at most max_retry_wait_s
    max_retry_wait_s: float = 60.0  # the longest wait between two attempts
    usd_per_second: float | None = None  # list price per second of video, for the dry run's estimate
    usd_per_video: float | None = None
    first_frame: str = "data_uri"  # data_uri, bytes, file, or url (needs an uploader: --upload-to)
    upload_to: str | None = None  # s3://bucket/prefix: where first frames go when the API needs a URL
    upload_url_expires_s: int = 86400

    @classmethod
    def of(cls, cfg: GeneratorConfig) -> APIConfig:
        return cls(**cfg.api)


API_KEYS = tuple(f.name for f in fields(APIConfig))
FIRST_FRAME_MODES = ("data_uri", "bytes", "file", "url")


KINDS = ("open_source", "api")
RESIZE_MODES = ("fixed", "max_area", "none")  # none: the first frame as it is; the pipeline resizes it
GENERATOR_DEVICES = ("cpu", "cuda")
NEEDS_KEYS = ("extra", "gpu_memory_gb", "api_key", "repository", "notes")


@dataclass(frozen=True)
class GeneratorConfig:
    name: str
    family: str
    kind: str
    engine: str | None = None  # "package.module:Class"
    model: str | None = None  # hub id or local folder
    revision: str | None = None
    local_build: str | None = None  # a tiny pipeline vlm-bench builds locally
    pipeline: str | None = None  # diffusers pipeline class
    defaults: Mapping[str, Any] = field(default_factory=dict)  # GenerationSettings fields
    call_args: Mapping[str, Any] = field(default_factory=dict)  # passed to the pipeline call as they are
    prompt_suffix: str = ""  # appended to every task prompt (SANA-Video's motion score)
    component_dtypes: Mapping[str, str] = field(default_factory=dict)  # e.g. {vae: float32}
    resize: str = "fixed"  # first frame -> width x height; or max_area: keep its aspect ratio
    size_multiple: int = 16  # height and width are multiples of this
    frame_multiple: int = 1  # num_frames = k * frame_multiple + 1 when > 1
    concurrency: int = 1  # tasks in flight at once (API generators)
    api: Mapping[str, Any] = field(default_factory=dict)  # APIConfig fields (API generators)
    unavailable: str | None = None  # what it needs that this version lacks
    frames_rounded_down: bool = False  # a reference asks for counts off the k*frame_multiple+1 grid; the pipeline makes the one below
    omit_args: tuple[str, ...] = ()  # settings used (first-frame size, the video's fps) but not passed to the pipeline
    scheduler_args: Mapping[str, Any] = field(default_factory=dict)  # the scheduler rebuilt from its config with these
    generator_device: str = "cpu"  # where the seeded torch.Generator lives (a reference's cuda; cpu without a GPU)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> a reference's settings (--preset)
    preset: Mapping[str, Any] | None = None  # the preset applied: name, source, notes
    needs: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    path: str | None = None

    def settings(self, overrides: Mapping[str, Any] | None = None, *, cuda: bool | None = None) -> GenerationSettings:
        """The entry's defaults under the command line's overrides (``None`` = not set).
        On a CPU the YAML's GPU dtype gives way to float32 unless the command line sets one."""
        merged = {k: v for k, v in self.defaults.items() if v is not None}
        if cuda is False:
            merged["dtype"] = "float32"
        merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
        settings = GenerationSettings(**merged)
        check_settings(self, settings)
        return settings

    def as_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


def frames_made(cfg: GeneratorConfig, asked: int | None) -> int | None:
    """The frames the pipeline makes when asked for ``asked``: the count itself, or for an
    entry whose reference asks off the grid, the k * frame_multiple + 1 at or below it."""
    if asked is None or not cfg.frames_rounded_down or cfg.frame_multiple <= 1:
        return asked
    return (asked - 1) // cfg.frame_multiple * cfg.frame_multiple + 1


def check_setting_values(where: str, values: Mapping[str, Any]) -> None:
    for key in ("num_frames", "height", "width", "steps"):
        value = values.get(key)
        if value is not None and (not is_int(value) or value < 1):
            raise ConfigError(f"{where}: {key} must be a whole number >= 1, got {value!r}")
    for key in ("fps", "guidance_scale"):
        if values.get(key) is not None:
            check_number(where, key, values[key], zero_ok=key == "guidance_scale")
    if values.get("seed") is not None and not is_int(values["seed"]):
        raise ConfigError(f"{where}: seed must be a whole number, got {values['seed']!r}")
    if values.get("dtype") is not None and values["dtype"] not in DTYPES:
        raise ConfigError(f"{where}: dtype must be one of {', '.join(DTYPES)}, got {values['dtype']!r}")
    if values.get("cpu_offload") is not None and values["cpu_offload"] not in CPU_OFFLOAD:
        raise ConfigError(f"{where}: cpu_offload must be one of {', '.join(CPU_OFFLOAD)}, got {values['cpu_offload']!r}")


def check_settings(cfg: GeneratorConfig, settings: GenerationSettings) -> None:
    """Settings the generator cannot honour fail before any task runs."""
    where = f"generator {cfg.name!r}"
    check_setting_values(where, settings.as_dict())
    if cfg.kind == "api":
        unused = [k for k, v in settings.as_dict().items()
                  if k not in API_SETTING_KEYS and v not in (None, False, "none", GenerationSettings.__dataclass_fields__[k].default)]
        if unused:
            raise ConfigError(
                f"{where} is an API generator: {', '.join(unused)} do not apply to it (it takes --seed and "
                "--negative-prompt where the provider does); its request is the catalog entry's call_args: "
                "copy its YAML, edit call_args and pass the copy to --generator"
            )
    if (cfg.frame_multiple > 1 and settings.num_frames is not None and (settings.num_frames - 1) % cfg.frame_multiple
            and not cfg.frames_rounded_down):
        k = max(1, round((settings.num_frames - 1) / cfg.frame_multiple))
        raise ConfigError(
            f"{where}: num_frames must be k*{cfg.frame_multiple}+1 (e.g. {k * cfg.frame_multiple + 1}), got {settings.num_frames}"
        )
    for key in ("height", "width"):
        value = getattr(settings, key)
        if value is not None and value % cfg.size_multiple and cfg.resize != "max_area":  # max_area: only the area counts
            raise ConfigError(f"{where}: {key} must be a multiple of {cfg.size_multiple}, got {value}")


