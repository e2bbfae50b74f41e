"""Model and dataset YAML configs: loading, schema checks and precedence.

Precedence for frame settings, lowest first: built-in defaults < model ``video`` <
dataset ``video`` < the item's own ``video`` overrides < command-line options. Decode
settings: the adapter's defaults < model ``decode`` < dataset ``decode`` < command line.
A ``null`` in a YAML means "not set here" and never hides a lower layer's value.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import string
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from vlm_bench.checks import ConfigError, check_number
from vlm_bench.checks import is_int as _is_int
from vlm_bench.checks import is_number as _is_number
from vlm_bench.checks import plain as _plain
from vlm_bench.types import BACKENDS, FRAME_STRATEGIES, MAX_FRAMES, QUANTIZATIONS, SEED_RANGE, DecodeConfig, VideoConfig

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
MODELS_DIR = CONFIG_ROOT / "models"
DATASETS_DIR = CONFIG_ROOT / "datasets"

FAMILIES = ("internvl3", "mock")
DATASET_FORMATS = ("jsonl", "videomme", "mvbench", "nextqa", "vmevalkit", "vmevalkit-outputs")
VIDEO_KEYS = tuple(f.name for f in fields(VideoConfig))
DECODE_KEYS = tuple(f.name for f in fields(DecodeConfig))
VISION_KEYS = ("short_side", "max_num_tiles")
IMAGE_FORMATS = ("png", "jpeg")

DEFAULT_PROMPTS = {
    "open": "{question}",
    "mc": "{question}\n{options}\nAnswer with the option's letter from the given choices directly.",
}


def cache_root() -> Path:
    """Where vlm-bench keeps what it builds or writes once (the tiny model, frame files):
    $VLM_BENCH_CACHE, else ~/.cache/vlm-bench."""
    return Path(os.environ.get("VLM_BENCH_CACHE", Path.home() / ".cache" / "vlm-bench"))


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class ModelConfig:
    name: str
    family: str
    engine: str = "native"
    hf_repo: str | None = None
    local_build: str | None = None  # a checkpoint vlm-bench builds locally (tiny-internvl3)
    model_name: str | None = None
    revision: str | None = None
    quantization: str = "none"
    dtype: str | None = None
    device_map: str | None = None
    attn_implementation: str | None = "sdpa"
    trust_remote_code: bool = False
    batch_size: int = 1
    system_prompt: str | None = None
    vlmeval_dataset: str | None = None  # the dataset name VLMEvalKit's model is told (vlmeval backend)
    server: Mapping[str, Any] = field(default_factory=dict)  # the openai backend's server (see ServerConfig)
    vision_args: Mapping[str, Any] = field(default_factory=dict)
    video: Mapping[str, Any] = field(default_factory=dict)
    decode: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    # family "mock" only
    responses: Mapping[str, str] = field(default_factory=dict)
    default_response: str | None = None
    delay_ms: float = 0.0
    path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


MOCK_ONLY_KEYS = ("responses", "default_response", "delay_ms")


@dataclass(frozen=True)
class ServerConfig:
    """An OpenAI-compatible server for the openai backend (the model YAML's ``server``
    mapping, under the command line's --base-url, --api-key-env, --served-model,
    --concurrency). The key itself is never part of any config: only the name of the
    environment variable that holds it."""

    base_url: str | None = None  # e.g. http://127.0.0.1:23333/v1
    api_key_env: str | None = None  # the environment variable holding the key; None: no key
    model: str | None = None  # the model id on the server; None: the first of GET /models
    concurrency: int = 1  # requests in flight
    timeout_s: float = 600.0  # one request, start to last byte
    connect_timeout_s: float = 5.0
    max_retries: int = 5  # on 429, 5xx, timeouts and connection errors
    retry_base_s: float = 1.0  # backoff: base * 2**attempt (capped at 60 s), or the server's Retry-After
    # How frame labels and images are laid out: a placeholder such as "<image>" (vLLM) or
    # "<IMAGE_TOKEN>" (lmdeploy) puts labels and placeholders in one text part and the
    # images after it; "none" interleaves text and image parts (OpenAI style, transformers
    # serve); "auto" picks by the server's owned_by in GET /models (vllm, lmdeploy, else none)
    frame_placeholder: str = "auto"
    frame_size: int | None = None  # side of the square each video frame is resized to; None: vision_args.short_side or 448
    image_format: str = "png"  # png is lossless; jpeg makes smaller requests
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # engine-specific request fields

    @classmethod
    def of(cls, model_cfg: "ModelConfig") -> "ServerConfig":
        return cls(**model_cfg.server)


SERVER_KEYS = tuple(f.name for f in fields(ServerConfig))
SERVER_FLAGS = {"base_url": "--base-url", "api_key_env": "--api-key-env", "model": "--served-model", "concurrency": "--concurrency"}
# Where and how fast requests go; not what the model sees, so not part of a run's fingerprint.
SERVER_TRANSPORT_KEYS = ("base_url", "api_key_env", "concurrency", "timeout_s", "connect_timeout_s", "max_retries", "retry_base_s")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an environment variable's name (fullmatch)


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    format: str
    path: str | None  # the annotation file (absolute); for root-based formats: under root
    root: str | None = None  # media root; relative media paths resolve against it
    video: Mapping[str, Any] = field(default_factory=dict)
    decode: Mapping[str, Any] = field(default_factory=dict)
    scorer: str | None = None
    prompt: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    config_path: str | None = None
    annotations: str | None = None  # root-based formats: the annotation file or folder, relative to root
    source: Mapping[str, Any] = field(default_factory=dict)  # format-specific settings
    breakdowns: tuple[tuple[str, ...], ...] = ()  # category dimensions (and crosses) for the summary
    docs: str | None = None  # where users get the data
    vlmeval_dataset: str | None = None  # overrides the model's for the vlmeval backend

    @property
    def media_root(self) -> Path:
        if self.root:
            return Path(self.root)
        if self.path is None:
            raise ConfigError(f"dataset {self.name!r} has no root")
        return Path(self.path).parent

    def prompt_template(self, kind: str) -> str:
        if kind in self.prompt:
            return self.prompt[kind]
        if kind in DEFAULT_PROMPTS:
            return DEFAULT_PROMPTS[kind]
        raise ConfigError(f"dataset {self.name!r}: no prompt template {kind!r} (set prompt.{kind})")

    def with_root(self, root: str | os.PathLike) -> "DatasetConfig":
        root_path = Path(root).expanduser().resolve()
        path = str(root_path / self.annotations) if self.annotations is not None else self.path
        return replace(self, root=str(root_path), path=path)

    def content_hash(self) -> str:
        target = Path(self.path) if self.path else None
        if target is None or not target.exists():
            return ""
        if target.is_dir():
            digest = hashlib.sha256()
            for child in sorted(target.rglob("*")):
                if child.is_file() and child.suffix in (".json", ".jsonl", ".csv", ".tsv", ".txt", ".parquet"):
                    digest.update(str(child.relative_to(target)).encode())
                    digest.update(file_sha256(child).encode())
            return digest.hexdigest()
        return file_sha256(target)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- checks


def _check_keys(where: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def _check_mapping(where: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def check_video(where: str, video: Mapping[str, Any]) -> dict[str, Any]:
    """Check one layer of frame settings (partial); returns it without nulls."""
    video = _check_mapping(where, video)
    _check_keys(where, video, VIDEO_KEYS)
    out = {k: v for k, v in video.items() if v is not None}
    if "max_frames" in out and (not _is_int(out["max_frames"]) or not 1 <= out["max_frames"] <= MAX_FRAMES):
        raise ConfigError(f"{where}: max_frames must be a whole number from 1 to {MAX_FRAMES}, got {out['max_frames']!r}")
    if "strategy" in out and out["strategy"] not in FRAME_STRATEGIES:
        raise ConfigError(f"{where}: strategy must be one of {', '.join(FRAME_STRATEGIES)}, got {out['strategy']!r}")
    if "stride" in out and (not _is_int(out["stride"]) or out["stride"] < 1):
        raise ConfigError(f"{where}: stride must be a whole number >= 1, got {out['stride']!r}")
    if "fps" in out and not (_is_number(out["fps"]) and out["fps"] > 0):
        raise ConfigError(f"{where}: fps must be a finite number > 0, got {out['fps']!r}")
    return out


def check_decode(where: str, decode: Mapping[str, Any]) -> dict[str, Any]:
    decode = _check_mapping(where, decode)
    _check_keys(where, decode, DECODE_KEYS)
    out = {k: v for k, v in decode.items() if v is not None}
    if "max_new_tokens" in out and (not _is_int(out["max_new_tokens"]) or out["max_new_tokens"] < 1):
        raise ConfigError(f"{where}: max_new_tokens must be a whole number >= 1, got {out['max_new_tokens']!r}")
    if "temperature" in out and not (_is_number(out["temperature"]) and out["temperature"] >= 0):
        raise ConfigError(f"{where}: temperature must be a finite number >= 0, got {out['temperature']!r}")
    if "stop" in out:
        stop = out["stop"]
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise ConfigError(f"{where}: stop must be a list of non-empty strings, got {out['stop']!r}")
        out["stop"] = tuple(stop)
    return out


def check_server(where: str, server: Mapping[str, Any]) -> dict[str, Any]:
    """Check one layer of server settings (partial); returns it without nulls."""
    server = _check_mapping(where, server)
    _check_keys(where, server, SERVER_KEYS)
    out = {k: v for k, v in server.items() if v is not None}
    url = out.get("base_url")
    if url is not None and (not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url)):
        raise ConfigError(f"{where}: base_url must be an http(s) URL such as http://127.0.0.1:23333/v1, got {url!r}")
    env = out.get("api_key_env")
    if env is not None and (not isinstance(env, str) or not ENV_NAME.fullmatch(env)):
        raise ConfigError(
            f"{where}: api_key_env must be the NAME of an environment variable holding the key (never the key itself), got a value that is not a variable name"
        )
    for key in ("model", "frame_placeholder"):
        if key in out and (not isinstance(out[key], str) or not out[key]):
            raise ConfigError(f"{where}: {key} must be a non-empty string, got {out[key]!r}")
    for key, low in (("concurrency", 1), ("max_retries", 0), ("frame_size", 1)):
        if key in out and (not _is_int(out[key]) or out[key] < low):
            raise ConfigError(f"{where}: {key} must be a whole number >= {low}, got {out[key]!r}")
    for key, zero_ok in (("timeout_s", False), ("connect_timeout_s", False), ("retry_base_s", True)):
        if out.get(key) is not None:
            check_number(where, key, out[key], zero_ok=zero_ok)
    if "image_format" in out and out["image_format"] not in IMAGE_FORMATS:
        raise ConfigError(f"{where}: image_format must be one of {', '.join(IMAGE_FORMATS)}, got {out['image_format']!r}")
    if "extra_body" in out:
        out["extra_body"] = dict(_check_mapping(f"{where}: extra_body", out["extra_body"]))
    return out


def _yaml_text(where: str, key: str, value: Any) -> str:
    """A setting that must be text; YAML reads unquoted yes/no/true/false/on/off as booleans."""
    if isinstance(value, str):
        return value
    hint = " (YAML reads an unquoted yes/no/on/off as true/false: put it in quotes)" if isinstance(value, bool) else " (put it in quotes)"
    raise ConfigError(f"{where}: {key} must be text, got {value!r}{hint}")


def check_vision(where: str, vision: Mapping[str, Any]) -> dict[str, Any]:
    vision = _check_mapping(where, vision)
    _check_keys(where, vision, VISION_KEYS)
    for key in VISION_KEYS:
        if key in vision and vision[key] is not None and not (_is_int(vision[key]) and vision[key] >= 1):
            raise ConfigError(f"{where}: {key} must be a whole number >= 1, got {vision[key]!r}")
    return {k: v for k, v in vision.items() if v is not None}


PROMPT_FIELDS = {"vmevalkit": ("prompt", "goal"), "item": ("question", "options"), "subtitles": ("subtitles",)}


def check_prompt(where: str, kind: str, template: Any) -> str:
    """A prompt template may use only the fields its kind fills in: ``{question}`` and
    ``{options}`` (plus ``{subtitles}`` in ``*_subtitles``), or ``{prompt}`` and ``{goal}``
    in ``vmevalkit_*``. Literal braces are written ``{{`` and ``}}``."""
    if not isinstance(template, str):
        raise ConfigError(f"{where}: prompt.{kind} must be a string")
    if kind.startswith("vmevalkit_"):
        allowed = PROMPT_FIELDS["vmevalkit"]
    else:
        allowed = PROMPT_FIELDS["item"] + (PROMPT_FIELDS["subtitles"] if kind.endswith("_subtitles") else ())
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"{where}: prompt.{kind} is not a valid template ({exc}); write literal braces as {{{{ and }}}}") from None
    for name in fields:
        base = name.split(".")[0].split("[")[0]
        if base not in allowed:
            shown = "{" + name + "}"
            raise ConfigError(f"{where}: prompt.{kind} uses the unknown field {shown}; it may use {', '.join('{' + a + '}' for a in allowed)}")
    return template


def resolve_video(*layers: Mapping[str, Any], where: str = "frame settings") -> VideoConfig:
    """Merge partial frame settings, lowest precedence first, and check the result."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    cfg = VideoConfig(**merged)
    if cfg.strategy == "stride" and not cfg.stride:
        raise ConfigError(f"{where}: strategy 'stride' needs a stride (--stride or video.stride)")
    if cfg.strategy == "fps" and not cfg.fps:
        raise ConfigError(f"{where}: strategy 'fps' needs an fps (--fps or video.fps)")
    return cfg


def resolve_decode(*layers: Mapping[str, Any]) -> DecodeConfig:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    if "stop" in merged:
        merged["stop"] = tuple(merged["stop"])
    return DecodeConfig(**merged)


# ---------------------------------------------------------------- loading


def _load_yaml(path: Path) -> Mapping[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


MODEL_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name not in ("name", "path"))


def load_model_config(path: str | Path, name: str | None = None) -> ModelConfig:
    path = Path(path)
    data = dict(_load_yaml(path))
    where = str(path)
    _check_keys(where, data, MODEL_KEYS)
    family = data.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"{where}: family must be one of {', '.join(FAMILIES)}, got {family!r}")
    if family != "mock":
        for key in MOCK_ONLY_KEYS:
            if key in data:
                raise ConfigError(f"{where}: key {key!r} is only valid for family 'mock'")
    engine = data.get("engine", "mock" if family == "mock" else "native")
    if engine not in BACKENDS:
        raise ConfigError(f"{where}: engine must be one of {', '.join(BACKENDS)}, got {engine!r}")
    quant = str(data.get("quantization", "none"))
    if quant not in QUANTIZATIONS:
        raise ConfigError(f"{where}: quantization must be one of {', '.join(QUANTIZATIONS)}, got {quant!r}")
    vision = check_vision(f"{where}: vision_args", data.get("vision_args"))
    responses = _check_mapping(f"{where}: responses", data.get("responses"))
    responses = {str(k): _yaml_text(f"{where}: responses", str(k), v) for k, v in responses.items()}
    if data.get("default_response") is not None:
        _yaml_text(where, "default_response", data["default_response"])
    if "delay_ms" in data and not (_is_number(data["delay_ms"]) and data["delay_ms"] >= 0):
        raise ConfigError(f"{where}: delay_ms must be a finite number >= 0 (milliseconds), got {data['delay_ms']!r}")
    batch_size = data.get("batch_size", 1)
    if not _is_int(batch_size) or batch_size < 1:
        raise ConfigError(f"{where}: batch_size must be a whole number >= 1, got {batch_size!r}")
    data.update(
        engine=engine,
        quantization=quant,
        vision_args=dict(vision),
        video=check_video(f"{where}: video", data.get("video")),
        decode=check_decode(f"{where}: decode", data.get("decode")),
        info=dict(_check_mapping(f"{where}: info", data.get("info"))),
        server=check_server(f"{where}: server", data.get("server")),
        responses=responses,
    )
    return ModelConfig(name=name or path.stem, path=str(path.resolve()), **data)


DATASET_KEYS = tuple(f.name for f in fields(DatasetConfig) if f.name not in ("config_path",))


def load_dataset_config(path: str | Path) -> DatasetConfig:
    """A JSONL file, or a dataset YAML. JSONL datasets name their annotation file with
    ``path`` (relative to the YAML); the benchmark formats name ``root`` (the data folder,
    also ``--dataset-root``) and ``annotations`` under it."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return DatasetConfig(name=path.stem, format="jsonl", path=str(path.resolve()))
    data = dict(_load_yaml(path))
    where = str(path)
    _check_keys(where, data, DATASET_KEYS)
    fmt = data.get("format", "jsonl")
    if fmt not in DATASET_FORMATS:
        raise ConfigError(f"{where}: format must be one of {', '.join(DATASET_FORMATS)}, got {fmt!r}")
    root = data.get("root")
    if fmt == "jsonl":
        if "path" not in data:
            raise ConfigError(f"{where}: missing key 'path' (the annotation file, relative to this YAML)")
        ann: Path | None = (path.parent / str(data["path"])).resolve()
        if not ann.is_file():
            raise ConfigError(f"{where}: annotation file not found: {ann}")
    else:
        if "path" in data:
            raise ConfigError(f"{where}: format {fmt!r} takes 'root' and 'annotations', not 'path'")
        ann = None
    prompt = _check_mapping(f"{where}: prompt", data.get("prompt"))
    for key, value in prompt.items():
        check_prompt(where, str(key), value)
    if "name" in data and (not isinstance(data["name"], str) or not data["name"].strip()):
        raise ConfigError(f"{where}: name must be non-empty text, got {data['name']!r}")
    check_dataset_name(where, str(data.get("name", path.stem)))
    breakdowns = data.get("breakdowns") or []
    if not isinstance(breakdowns, list) or not all(
        isinstance(b, (str, list)) and all(isinstance(d, str) for d in ([b] if isinstance(b, str) else b))
        for b in breakdowns
    ):
        raise ConfigError(f"{where}: breakdowns must be a list of dimension names or lists of them")
    scorer = data.get("scorer")
    if scorer is not None:
        from vlm_bench.scoring import SCORERS

        if scorer not in SCORERS:
            raise ConfigError(f"{where}: scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
    if root is not None and not isinstance(root, str):
        raise ConfigError(f"{where}: root must be a folder path, got {root!r}")
    data.update(
        name=str(data.get("name", path.stem)),
        format=fmt,
        path=str(ann) if ann else None,
        root=None,
        video=check_video(f"{where}: video", data.get("video")),
        decode=check_decode(f"{where}: decode", data.get("decode")),
        prompt=dict(prompt),
        source=dict(_check_mapping(f"{where}: source", data.get("source"))),
        breakdowns=tuple((b,) if isinstance(b, str) else tuple(b) for b in breakdowns),
    )
    cfg = DatasetConfig(config_path=str(path.resolve()), **data)
    return cfg.with_root(path.parent / str(root)) if root else cfg


def _catalog(directory: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(directory.glob("*.yaml"))}


def model_catalog() -> dict[str, Path]:
    return _catalog(MODELS_DIR)


def dataset_catalog() -> dict[str, Path]:
    return _catalog(DATASETS_DIR)


def _lookup(kind: str, ref: str, catalog: Mapping[str, Path], suffixes: tuple[str, ...]) -> Path:
    candidate = Path(ref)
    if candidate.suffix in suffixes or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError(f"{kind} file not found: {ref}")
        return candidate
    key = ref.lower().replace("-", "_")
    if key in catalog:
        return catalog[key]
    close = difflib.get_close_matches(key, list(catalog), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown {kind} {ref!r}: not a file and not in the catalog ({', '.join(catalog)}){hint}")


def resolve_model(ref: str) -> ModelConfig:
    path = _lookup("model", ref, model_catalog(), (".yaml", ".yml"))
    return load_model_config(path, name=path.stem)


def resolve_dataset(ref: str, root: str | os.PathLike | None = None) -> DatasetConfig:
    cfg = load_dataset_config(_lookup("dataset", ref, dataset_catalog(), (".yaml", ".yml", ".jsonl")))
    if root is not None:
        cfg = cfg.with_root(root)
    check_dataset_data(cfg)
    return cfg


def check_dataset_name(where: str, name: str) -> None:
    """Item ids in records are ``<dataset>/<id>``: a ``/`` in a dataset name would make
    dataset ``x`` item ``a/b`` and dataset ``x/a`` item ``b`` the same record."""
    if "/" in name or "\\" in name:
        raise ConfigError(f"{where}: dataset name {name!r} contains a slash; choose a name without '/' (set 'name:')")


def check_dataset_data(cfg: DatasetConfig) -> None:
    where = f"dataset {cfg.name!r}"
    if cfg.format == "jsonl":
        if cfg.root is not None and not Path(cfg.root).is_dir():
            raise ConfigError(f"{where}: media root not found: {cfg.root} (the folder its relative media paths start from; fix 'root')")
        return
    if cfg.root is None:
        hint = f"; get the data: {cfg.docs}" if cfg.docs else ""
        raise ConfigError(f"{where} needs its data folder: pass --dataset-root PATH{hint}")
    if not Path(cfg.root).is_dir():
        raise ConfigError(f"{where}: data folder not found: {cfg.root}")
    if cfg.path is not None and not Path(cfg.path).exists():
        raise ConfigError(f"{where}: annotations not found: {cfg.path} (check --dataset-root and 'annotations')")


def split_dataset_roots(values: Iterable[str]) -> tuple[str | None, dict[str, str]]:
    """``--dataset-root PATH`` sets the root of every benchmark-format dataset;
    ``--dataset-root NAME=PATH`` sets one dataset's (by its config name)."""
    default, named = None, {}
    for value in values:
        name, sep, root = value.partition("=")
        if sep and name and "/" not in name:
            named[name] = root
        else:
            default = value
    return default, named


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunConfig:
    """Everything a session needs, resolved from options, YAMLs and defaults."""

    backend: str
    model: ModelConfig
    quant: str
    datasets: tuple[DatasetConfig, ...]
    video_overrides: Mapping[str, Any] = field(default_factory=dict)  # from the command line
    decode_overrides: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    results_dir: str | None = None
    min_pass_rate: float | None = None
    limit: int | None = None  # keep this many items, spread evenly over the data
    categories: tuple[str, ...] = ()  # keep items in any of these categories (any dimension)
    shard: tuple[int, int] | None = None  # (index, count): this process runs one hash-chosen share
    frame_cache: str | None = None  # folder of cached decoded frames
    frame_cache_gb: float = 20.0
    prefetch: int = 2  # items whose frames are decoded ahead, in a background thread
    frame_memory_gb: float = 2.0  # decoded frames kept in memory for the next questions about a video
    item_frames_gb: float = 16.0  # decoded frames one item may take (default_item_frames_gb())

    @property
    def concurrency(self) -> int:
        """Items in flight at once (the openai backend's requests); 1 elsewhere."""
        return int(self.model.server.get("concurrency", 1)) if self.backend == "openai" else 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "quant": self.quant,
            "model": self.model.as_dict(),
            "datasets": [dict(d.as_dict(), sha256=d.content_hash()) for d in self.datasets],
            "video_overrides": dict(self.video_overrides),
            "decode_overrides": _plain(dict(self.decode_overrides)),
            "seed": self.seed,
            "min_pass_rate": self.min_pass_rate,
            "limit": self.limit,
            "categories": list(self.categories),
            "shard": list(self.shard) if self.shard else None,
            "frame_cache": self.frame_cache,
            "prefetch": self.prefetch,
            "frame_memory_gb": self.frame_memory_gb,
            "item_frames_gb": self.item_frames_gb,
        }


def run_fingerprint(run: "RunConfig") -> dict[str, Any]:
    """What makes two runs' records comparable: model, backend, quantization, frame and
    decode settings, seed and each dataset's content. Not the item subset (--limit,
    --categories, --shard), so shards merge and a resumed run may widen its subset."""
    model = {k: v for k, v in run.model.as_dict().items() if k not in ("path", "info", "name")}
    server = {k: v for k, v in model.pop("server").items() if k not in SERVER_TRANSPORT_KEYS}
    if server:  # absent when empty, so runs recorded before served models existed still resume
        model["server"] = server
    return {
        "model": run.model.name,
        "model_config": model,
        "backend": run.backend,
        "quant": run.quant,
        "seed": run.seed,
        "video_overrides": _plain(dict(run.video_overrides)),
        "decode_overrides": _plain(dict(run.decode_overrides)),
        "datasets": [
            {
                "name": d.name,
                "format": d.format,
                "sha256": d.content_hash(),
                "video": _plain(dict(d.video)),
                "decode": _plain(dict(d.decode)),
                "prompt": dict(d.prompt),
                "source": _plain(dict(d.source)),
                "scorer": d.scorer,
            }
            for d in run.datasets
        ],
    }


def default_item_frames_gb() -> float:
    """A quarter of this machine's memory, at most 16 GB: what one item's decoded frames
    may take (a 4K frame is 24 MB; 64 of them 1.6 GB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        return 16.0
    return round(min(16.0, total / 4), 1)


def check_run_settings(
    model: ModelConfig, backend: str, seed: Any, frame_cache: str | None, frame_cache_gb: Any, prefetch: Any
) -> None:
    """What the command line and the Python API can get wrong that the YAML checks do not
    see; everything here fails before collection and before the engine loads."""
    if not _is_int(seed) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ConfigError(f"seed must be a whole number from {SEED_RANGE[0]} to {SEED_RANGE[1]}, got {seed!r}")
    if frame_cache_gb is not None and not (_is_number(frame_cache_gb) and frame_cache_gb > 0):
        raise ConfigError(f"--frame-cache-gb must be a finite number > 0, got {frame_cache_gb!r}")
    if not _is_int(prefetch) or prefetch < 0:
        raise ConfigError(f"--prefetch must be a whole number >= 0, got {prefetch!r}")
    if frame_cache:
        cache = Path(frame_cache).expanduser()
        blocker = next((p for p in (cache, *cache.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            where = "is a file" if blocker == cache else f"lies below a file ({blocker})"
            raise ConfigError(f"--frame-cache {frame_cache} {where}; give a folder")
        if blocker is not None and not os.access(blocker, os.W_OK | os.X_OK):
            raise ConfigError(f"--frame-cache {frame_cache}: {blocker} is not writable")
    repo = model.hf_repo
    if backend in ("native", "vlmeval") and repo and not model.local_build and looks_like_path(repo) and not Path(repo).expanduser().is_dir():
        raise ConfigError(
            f"model {model.name!r}: hf_repo {repo!r} is a local folder path, and that folder does not exist "
            f"({Path(repo).expanduser().resolve()}); fix the path in {model.path or 'the model YAML'}"
        )


def looks_like_path(repo: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else is meant as a folder."""
    return repo.startswith(("/", ".", "~")) or repo.count("/") > 1 or repo.endswith("/") or "\\" in repo


def build_run_config(
    *,
    model: str,
    backend: str | None = None,
    datasets: Iterable[str] = (),
    quant: str | None = None,
    video_overrides: Mapping[str, Any] | None = None,
    decode_overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
    results_dir: str | None = None,
    min_pass_rate: float | None = None,
    dataset_roots: Iterable[str] = (),
    limit: int | None = None,
    categories: Iterable[str] = (),
    shard: tuple[int, int] | None = None,
    frame_cache: str | None = None,
    frame_cache_gb: float | None = None,
    prefetch: int = 2,
    all_runs: bool = False,
    server_overrides: Mapping[str, Any] | None = None,
    frame_memory_gb: float | None = None,
    item_frames_gb: float | None = None,
) -> RunConfig:
    model_cfg = resolve_model(model)
    backend = backend or model_cfg.engine
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    cli_server = check_server("command line", server_overrides or {})
    if cli_server and backend != "openai":
        flags = ", ".join(SERVER_FLAGS.get(k, k) for k in cli_server)
        raise ConfigError(f"{flags} applies to --backend openai (a served model), not {backend!r}")
    model_cfg = replace(model_cfg, server={**model_cfg.server, **cli_server})
    if backend == "openai" and not model_cfg.server.get("base_url"):
        raise ConfigError(
            "--backend openai needs the server's URL: --base-url http://HOST:PORT/v1 or server.base_url in the model YAML"
        )
    if model_cfg.family == "mock" and backend != "mock":
        raise ConfigError(f"model {model_cfg.name!r} is a mock model; it runs only with --backend=mock")
    quant = quant or model_cfg.quantization
    if quant != "none" and backend != "native":
        raise ConfigError(f"--quant={quant} applies to the native backend only (backend is {backend!r})")
    default_root, named_roots = split_dataset_roots(dataset_roots)
    loaded = [load_dataset_config(_lookup("dataset", d, dataset_catalog(), (".yaml", ".yml", ".jsonl"))) for d in datasets]
    unknown = sorted(set(named_roots) - {d.name for d in loaded})
    if unknown:
        raise ConfigError(f"--dataset-root {unknown[0]}=...: no dataset named {unknown[0]!r} in this run")
    resolved = []
    for cfg in loaded:
        root = named_roots.get(cfg.name, default_root if cfg.format != "jsonl" else None)
        if root is not None:
            cfg = cfg.with_root(root)
        if all_runs and cfg.format == "vmevalkit-outputs":
            cfg = replace(cfg, source=dict(cfg.source, all_runs=True))
        check_dataset_data(cfg)
        resolved.append(cfg)
    resolved = tuple(resolved)
    names = [d.name for d in resolved]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"dataset name {dupes[0]!r} given twice; dataset names must be distinct")
    cli_video = check_video("command line", video_overrides or {})
    cli_decode = check_decode("command line", decode_overrides or {})
    # Fail early on frame settings that cannot combine, before any item runs.
    for ds in resolved or (None,):
        resolve_video(
            model_cfg.video,
            ds.video if ds else {},
            cli_video,
            where=f"frame settings for dataset {ds.name!r}" if ds else "frame settings",
        )
    if min_pass_rate is not None and not 0.0 <= min_pass_rate <= 1.0:
        raise ConfigError(f"--min-pass-rate must be between 0 and 1, got {min_pass_rate}")
    check_run_settings(model_cfg, backend, seed, frame_cache, frame_cache_gb, prefetch)
    if item_frames_gb is not None and not (_is_number(item_frames_gb) and item_frames_gb > 0):
        raise ConfigError(f"--item-frames-gb must be a finite number > 0, got {item_frames_gb!r}")
    return RunConfig(
        backend=backend,
        model=model_cfg,
        quant=quant,
        datasets=resolved,
        video_overrides=cli_video,
        decode_overrides=cli_decode,
        seed=seed,
        results_dir=results_dir,
        min_pass_rate=min_pass_rate,
        limit=limit,
        categories=tuple(categories),
        shard=shard,
        frame_cache=frame_cache,
        frame_cache_gb=frame_cache_gb or 20.0,
        prefetch=prefetch,
        frame_memory_gb=2.0 if frame_memory_gb is None else frame_memory_gb,
        item_frames_gb=default_item_frames_gb() if item_frames_gb is None else item_frames_gb,
    )
