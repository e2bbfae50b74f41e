"""The YAML side of every config: safe loading, key and value checks, catalog lookup,
and precedence.

Precedence for frame settings, lowest first: built-in defaults < model ``video`` <
dataset ``video`` < the item's own ``video`` overrides < command-line options. Decode
settings: the adapter's defaults < model ``decode`` < dataset ``decode`` < command line.
A ``null`` in a YAML means "not set here" and never hides a lower layer's value.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from vlm_bench.checks import ConfigError, is_int, is_number
from vlm_bench.types import FRAME_STRATEGIES, MAX_FRAMES, DecodeConfig, VideoConfig


CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"


VIDEO_KEYS = tuple(f.name for f in fields(VideoConfig))


DECODE_KEYS = tuple(f.name for f in fields(DecodeConfig))


def cache_root() -> Path:
    """Where vlm-bench keeps what it builds or writes once (the tiny model, frame files):
    $VLM_BENCH_CACHE, else ~/.cache/vlm-bench."""
    return Path(os.environ.get("VLM_BENCH_CACHE", Path.home() / ".cache" / "vlm-bench"))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_keys(where: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def check_mapping(where: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def check_video(where: str, video: Mapping[str, Any]) -> dict[str, Any]:
    """Check one layer of frame settings (partial); returns it without nulls."""
    video = check_mapping(where, video)
    check_keys(where, video, VIDEO_KEYS)
    out = {k: v for k, v in video.items() if v is not None}
    if "max_frames" in out and (not is_int(out["max_frames"]) or not 1 <= out["max_frames"] <= MAX_FRAMES):
        raise ConfigError(f"{where}: max_frames must be a whole number from 1 to {MAX_FRAMES}, got {out['max_frames']!r}")
    if "strategy" in out and out["strategy"] not in FRAME_STRATEGIES:
        raise ConfigError(f"{where}: strategy must be one of {', '.join(FRAME_STRATEGIES)}, got {out['strategy']!r}")
    if "stride" in out and (not is_int(out["stride"]) or out["stride"] < 1):
        raise ConfigError(f"{where}: stride must be a whole number >= 1, got {out['stride']!r}")
    if "fps" in out and not (is_number(out["fps"]) and out["fps"] > 0):
        raise ConfigError(f"{where}: fps must be a finite number > 0, got {out['fps']!r}")
    if "jpeg_quality" in out and (not is_int(out["jpeg_quality"]) or not 1 <= out["jpeg_quality"] <= 100):
        raise ConfigError(f"{where}: jpeg_quality must be a whole number from 1 to 100, got {out['jpeg_quality']!r}")
    if "bounds" in out and not isinstance(out["bounds"], bool):
        raise ConfigError(f"{where}: bounds must be true or false, got {out['bounds']!r}")
    return out


def check_decode(where: str, decode: Mapping[str, Any]) -> dict[str, Any]:
    decode = check_mapping(where, decode)
    check_keys(where, decode, DECODE_KEYS)
    out = {k: v for k, v in decode.items() if v is not None}
    if "max_new_tokens" in out and (not is_int(out["max_new_tokens"]) or out["max_new_tokens"] < 1):
        raise ConfigError(f"{where}: max_new_tokens must be a whole number >= 1, got {out['max_new_tokens']!r}")
    if "temperature" in out and not (is_number(out["temperature"]) and out["temperature"] >= 0):
        raise ConfigError(f"{where}: temperature must be a finite number >= 0, got {out['temperature']!r}")
    if "stop" in out:
        stop = out["stop"]
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise ConfigError(f"{where}: stop must be a list of non-empty strings, got {out['stop']!r}")
        out["stop"] = tuple(stop)
    return out


def yaml_text(where: str, key: str, value: Any) -> str:
    """A setting that must be text; YAML reads unquoted yes/no/true/false/on/off as booleans."""
    if isinstance(value, str):
        return value
    hint = " (YAML reads an unquoted yes/no/on/off as true/false: put it in quotes)" if isinstance(value, bool) else " (put it in quotes)"
    raise ConfigError(f"{where}: {key} must be text, got {value!r}{hint}")


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


MAX_CONFIG_VALUES = 100_000  # values in a config once its aliases are expanded (a real one has hundreds)


def load_yaml(path: Path) -> Mapping[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if expanded_size(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"{path}: expands to more than {MAX_CONFIG_VALUES:,} values once its YAML aliases (*name) are followed; "
            "a config that size is an alias bomb or a mistake (the run would write it out in full): expand fewer aliases"
        )
    return data


def expanded_size(value: Any, limit: int) -> int:
    """How many values ``value`` holds with every alias followed (a shared list counts each
    time it is referred to, as JSON writes it), counting no further than past ``limit``."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count


def catalog_of(directory: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(directory.glob("*.yaml"))}


def lookup(kind: str, ref: str, catalog: Mapping[str, Path], suffixes: tuple[str, ...]) -> Path:
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
