"""Model configs (``configs/models/*.yaml``): the model, its engine, and the server the
openai backend talks to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from vlm_bench.checks import ConfigError, check_number, is_int, is_number, plain
from vlm_bench.config.schema import (
    CONFIG_ROOT,
    catalog_of,
    check_decode,
    check_keys,
    check_mapping,
    check_video,
    load_yaml,
    lookup,
    yaml_text,
)
from vlm_bench.types import BACKENDS, QUANTIZATIONS


MODELS_DIR = CONFIG_ROOT / "models"


FAMILIES = ("internvl3", "mock")


VISION_KEYS = ("short_side", "max_num_tiles")


IMAGE_FORMATS = ("png", "jpeg")


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
    compile: bool = False  # native: a static KV cache and a compiled decoding step (torch.compile)
    processor_device: str | None = None  # native: where the processor resizes frames (None: the CPU; "model": the model's device)
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
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


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
    concurrency: int = 1  # requests in flight (with adaptive: at most)
    adaptive: bool = False  # grow and shrink the requests in flight by the server's answers (vlm_bench.concurrency)
    timeout_s: float = 600.0  # one request, start to last byte
    connect_timeout_s: float = 5.0
    max_retries: int = 5  # on 429, 5xx, timeouts and connection errors
    retry_base_s: float = 1.0  # backoff: base * 2**attempt, or the server's Retry-After; both at most max_retry_wait_s
    max_retry_wait_s: float = 60.0  # the longest wait between two attempts (--max-retry-wait)
    # How frame labels and images are laid out: a placeholder such as "<image>" (vLLM) or
    # "<IMAGE_TOKEN>" (lmdeploy) puts labels and placeholders in one text part and the
    # images after it; "none" interleaves text and image parts (OpenAI style, transformers
    # serve); "auto" picks by the server's owned_by in GET /models (vllm, lmdeploy, else none)
    frame_placeholder: str = "auto"
    frame_size: int | None = None  # side of the square each video frame is resized to; None: vision_args.short_side or 448
    image_format: str = "png"  # png is lossless; jpeg makes smaller requests
    frame_tokens: int = 256  # tokens the server's model spends on one frame (context_fit's estimate): InternVL's 448-px tile
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # engine-specific request fields

    @classmethod
    def of(cls, model_cfg: "ModelConfig") -> "ServerConfig":
        return cls(**model_cfg.server)


SERVER_KEYS = tuple(f.name for f in fields(ServerConfig))


SERVER_FLAGS = {"base_url": "--base-url", "api_key_env": "--api-key-env", "model": "--served-model", "concurrency": "--concurrency",
                "timeout_s": "--request-timeout", "max_retry_wait_s": "--max-retry-wait"}


# Where and how fast requests go; not what the model sees, so not part of a run's fingerprint.
SERVER_TRANSPORT_KEYS = ("base_url", "api_key_env", "concurrency", "adaptive", "timeout_s", "connect_timeout_s", "max_retries", "retry_base_s",
                         "max_retry_wait_s")


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an environment variable's name (fullmatch)


def check_server(where: str, server: Mapping[str, Any]) -> dict[str, Any]:
    """Check one layer of server settings (partial); returns it without nulls."""
    server = check_mapping(where, server)
    check_keys(where, server, SERVER_KEYS)
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
    for key, low in (("concurrency", 1), ("max_retries", 0), ("frame_size", 1), ("frame_tokens", 1)):
        if key in out and (not is_int(out[key]) or out[key] < low):
            raise ConfigError(f"{where}: {key} must be a whole number >= {low}, got {out[key]!r}")
    for key, zero_ok in (("timeout_s", False), ("connect_timeout_s", False), ("retry_base_s", True), ("max_retry_wait_s", True)):
        if out.get(key) is not None:
            check_number(where, key, out[key], zero_ok=zero_ok)
    for key in ("adaptive",):
        if key in out and not isinstance(out[key], bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {out[key]!r}")
    if "image_format" in out and out["image_format"] not in IMAGE_FORMATS:
        raise ConfigError(f"{where}: image_format must be one of {', '.join(IMAGE_FORMATS)}, got {out['image_format']!r}")
    if "extra_body" in out:
        out["extra_body"] = dict(check_mapping(f"{where}: extra_body", out["extra_body"]))
    return out


def check_vision(where: str, vision: Mapping[str, Any]) -> dict[str, Any]:
    vision = check_mapping(where, vision)
    check_keys(where, vision, VISION_KEYS)
    for key in VISION_KEYS:
        if key in vision and vision[key] is not None and not (is_int(vision[key]) and vision[key] >= 1):
            raise ConfigError(f"{where}: {key} must be a whole number >= 1, got {vision[key]!r}")
    return {k: v for k, v in vision.items() if v is not None}


ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")
PROCESSOR_DEVICES = ("cpu", "model")


def check_native_options(where: str, data: Mapping[str, Any]) -> None:
    """The native engine's speed settings: attention, compile, where the processor runs."""
    attn = data.get("attn_implementation")
    if attn is not None and attn not in ATTENTION_IMPLEMENTATIONS:
        raise ConfigError(f"{where}: attn_implementation must be one of {', '.join(ATTENTION_IMPLEMENTATIONS)}, got {attn!r}")
    if "compile" in data and not isinstance(data["compile"], bool):
        raise ConfigError(f"{where}: compile must be true or false, got {data['compile']!r}")
    device = data.get("processor_device")
    if device is not None and device not in PROCESSOR_DEVICES:
        raise ConfigError(f"{where}: processor_device must be one of {', '.join(PROCESSOR_DEVICES)}, got {device!r}")


MODEL_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name not in ("name", "path"))


def load_model_config(path: str | Path, name: str | None = None) -> ModelConfig:
    path = Path(path)
    data = dict(load_yaml(path))
    where = str(path)
    check_keys(where, data, MODEL_KEYS)
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
    responses = check_mapping(f"{where}: responses", data.get("responses"))
    responses = {str(k): yaml_text(f"{where}: responses", str(k), v) for k, v in responses.items()}
    if data.get("default_response") is not None:
        yaml_text(where, "default_response", data["default_response"])
    if "delay_ms" in data and not (is_number(data["delay_ms"]) and data["delay_ms"] >= 0):
        raise ConfigError(f"{where}: delay_ms must be a finite number >= 0 (milliseconds), got {data['delay_ms']!r}")
    batch_size = data.get("batch_size", 1)
    if not is_int(batch_size) or batch_size < 1:
        raise ConfigError(f"{where}: batch_size must be a whole number >= 1, got {batch_size!r}")
    check_native_options(where, data)
    data.update(
        engine=engine,
        quantization=quant,
        vision_args=dict(vision),
        video=check_video(f"{where}: video", data.get("video")),
        decode=check_decode(f"{where}: decode", data.get("decode")),
        info=dict(check_mapping(f"{where}: info", data.get("info"))),
        server=check_server(f"{where}: server", data.get("server")),
        responses=responses,
    )
    return ModelConfig(name=name or path.stem, path=str(path.resolve()), **data)


def model_catalog() -> dict[str, Path]:
    return catalog_of(MODELS_DIR)


def resolve_model(ref: str) -> ModelConfig:
    path = lookup("model", ref, model_catalog(), (".yaml", ".yml"))
    return load_model_config(path, name=path.stem)
