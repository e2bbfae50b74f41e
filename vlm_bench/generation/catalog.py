"""The generator catalog: ``configs/generators/<name>.yaml``, plain data. An entry names
its engine by import path (imported only when chosen), its weights, its defaults and what
it needs to run. Unknown keys are errors naming them."""

from __future__ import annotations

import difflib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Mapping

from vlm_bench.checks import ConfigError, check_number, is_int
from vlm_bench.config import CONFIG_ROOT, ENV_NAME, check_keys, check_mapping, load_yaml
from vlm_bench.generation.config import (
    API_KEYS,
    DTYPES,
    FIRST_FRAME_MODES,
    GENERATOR_DEVICES,
    KINDS,
    NEEDS_KEYS,
    RESIZE_MODES,
    SETTING_KEYS,
    APIConfig,
    GenerationSettings,
    GeneratorConfig,
    check_setting_values,
)

GENERATOR_KEYS = tuple(f.name for f in fields(GeneratorConfig) if f.name not in ("path",))
GENERATORS_DIR = CONFIG_ROOT / "generators"
# What a preset may set: a reference's call (its pipeline, settings, arguments, first-frame
# handling, scheduler and seed device), where it comes from and what still differs.
PRESET_KEYS = ("source", "notes", "pipeline", "defaults", "call_args", "prompt_suffix", "component_dtypes", "resize",
               "size_multiple", "frame_multiple", "frames_rounded_down", "omit_args", "scheduler_args", "generator_device")
SOURCE_KEYS = ("repository", "commit", "package", "version", "url", "files")


def load_generator_config(path: str | Path, name: str | None = None) -> GeneratorConfig:
    path = Path(path)
    where = str(path)
    data = dict(load_yaml(path))
    check_keys(where, data, GENERATOR_KEYS)
    if "preset" in data:
        raise ConfigError(f"{where}: 'preset' is set by --preset; a YAML lists its presets under 'presets'")
    presets = {str(k): dict(check_mapping(f"{where}: presets.{k}", v))
               for k, v in check_mapping(f"{where}: presets", data.pop("presets", None)).items()}
    data = _checked_entry(where, data)
    data["name"] = str(data.get("name") or name or path.stem)
    for preset_name, preset in presets.items():
        at = f"{where}: presets.{preset_name}"
        check_keys(at, preset, PRESET_KEYS)
        _check_source(at, preset.get("source"))
        notes = preset.get("notes") or []
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise ConfigError(f"{at}: notes must be a list of sentences")
        merged = {**data, **{k: v for k, v in preset.items() if k not in ("source", "notes")}}
        _checked_entry(at, merged, seed_allowed=True)
    cfg = GeneratorConfig(path=str(path.resolve()), presets=presets, **data)
    for preset_name in presets:  # a preset's settings must run, as the entry's must
        try:
            with_preset(cfg, preset_name).settings()
        except ConfigError as exc:
            raise ConfigError(f"{where}: presets.{preset_name}: {exc}") from None
    return cfg


def _check_source(where: str, source: Any) -> None:
    source = check_mapping(f"{where}: source", source)
    check_keys(f"{where}: source", source, SOURCE_KEYS)
    if not ((source.get("repository") and source.get("commit")) or (source.get("package") and source.get("version"))
            or source.get("url")):
        raise ConfigError(f"{where}: source needs a repository and a commit, a package and a version, or a url")


def _checked_entry(where: str, data: dict[str, Any], *, seed_allowed: bool = False) -> dict[str, Any]:
    """An entry's keys and values checked, its mappings normalised (a preset's entry too)."""
    data = dict(data)
    for key in ("family", "kind"):
        if not isinstance(data.get(key), str):
            raise ConfigError(f"{where}: missing key {key!r}")
    if data["kind"] not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {data['kind']!r}")
    if data.get("resize", "fixed") not in RESIZE_MODES:
        raise ConfigError(f"{where}: resize must be one of {', '.join(RESIZE_MODES)}, got {data['resize']!r}")
    if data.get("generator_device", "cpu") not in GENERATOR_DEVICES:
        raise ConfigError(f"{where}: generator_device must be one of {', '.join(GENERATOR_DEVICES)}, got {data['generator_device']!r}")
    if not isinstance(data.get("frames_rounded_down", False), bool):
        raise ConfigError(f"{where}: frames_rounded_down must be true or false, got {data['frames_rounded_down']!r}")
    for key in ("size_multiple", "frame_multiple", "concurrency"):
        if key in data and (not is_int(data[key]) or data[key] < 1):
            raise ConfigError(f"{where}: {key} must be a whole number >= 1, got {data[key]!r}")
    if not data.get("unavailable") and not data.get("engine"):
        raise ConfigError(f"{where}: set 'engine' (package.module:Class), or 'unavailable' (what it needs)")
    defaults = dict(check_mapping(f"{where}: defaults", data.get("defaults")))
    if "seed" in defaults and not seed_allowed:
        raise ConfigError(f"{where}: defaults.seed: the seed comes from --seed (default 0), the same for every generator")
    check_keys(f"{where}: defaults", defaults, SETTING_KEYS)
    needs = dict(check_mapping(f"{where}: needs", data.get("needs")))
    check_keys(f"{where}: needs", needs, NEEDS_KEYS)
    component_dtypes = dict(check_mapping(f"{where}: component_dtypes", data.get("component_dtypes")))
    for component, dtype in component_dtypes.items():
        if dtype not in DTYPES:
            raise ConfigError(f"{where}: component_dtypes.{component} must be one of {', '.join(DTYPES)}, got {dtype!r}")
    api = dict(check_mapping(f"{where}: api", data.get("api")))
    check_keys(f"{where}: api", api, API_KEYS)
    if api and data["kind"] != "api":
        raise ConfigError(f"{where}: 'api' is for kind: api entries")
    _check_api_values(f"{where}: api", api)
    APIConfig(**api)
    omit = data.get("omit_args") or []
    if not isinstance(omit, (list, tuple)) or not all(isinstance(o, str) for o in omit):
        raise ConfigError(f"{where}: omit_args must be a list of pipeline argument names")
    data.update(
        api=api,
        defaults=defaults,
        needs=needs,
        component_dtypes=component_dtypes,
        call_args=dict(check_mapping(f"{where}: call_args", data.get("call_args"))),
        scheduler_args=dict(check_mapping(f"{where}: scheduler_args", data.get("scheduler_args"))),
        omit_args=tuple(omit),
    )
    try:
        GenerationSettings(**defaults)
    except TypeError as exc:
        raise ConfigError(f"{where}: defaults: {exc}") from None
    check_setting_values(where + ": defaults", defaults)
    return data


def with_preset(cfg: GeneratorConfig, name: str | None) -> GeneratorConfig:
    """The entry as a reference ran it (``--preset NAME``): the preset's settings replace
    the entry's (its ``defaults`` as a whole; settings it leaves out are the pipeline's own)."""
    if not name:
        return cfg
    if name not in cfg.presets:
        have = ", ".join(cfg.presets) or "none"
        raise ConfigError(f"generator {cfg.name!r} has no preset {name!r} (its presets: {have}); "
                          f"vmevalkit and model-card are the names the catalog uses")
    preset = dict(cfg.presets[name])
    source, notes = preset.pop("source"), list(preset.pop("notes", None) or [])
    if "omit_args" in preset:
        preset["omit_args"] = tuple(preset["omit_args"])
    return replace(cfg, **preset, preset={"name": name, "source": dict(source), "notes": notes})


def preset_source_text(source: Mapping[str, Any]) -> str:
    """``Video-Reason/VMEvalKit@ae2e8dc`` or ``diffusers 0.42.1`` or the URL."""
    if source.get("repository"):
        return f"{source['repository']}@{str(source['commit'])[:7]}"
    if source.get("package"):
        return f"{source['package']} {source['version']}"
    return str(source.get("url"))


def _check_api_values(where: str, values: Mapping[str, Any]) -> None:
    for key in ("requests_per_minute", "poll_interval_s", "poll_timeout_s", "timeout_s", "connect_timeout_s",
                "retry_base_s", "max_retry_wait_s", "usd_per_second", "usd_per_video"):
        if values.get(key) is not None:
            check_number(where, key, values[key],
                         zero_ok=key in ("retry_base_s", "max_retry_wait_s", "usd_per_second", "usd_per_video"))
    for key in ("max_retries", "upload_url_expires_s"):
        if key in values and (not is_int(values[key]) or values[key] < 0):
            raise ConfigError(f"{where}: {key} must be a whole number >= 0, got {values[key]!r}")
    if values.get("first_frame", "data_uri") not in FIRST_FRAME_MODES:
        raise ConfigError(f"{where}: first_frame must be one of {', '.join(FIRST_FRAME_MODES)}, got {values['first_frame']!r}")
    for key in ("provider", "base_url", "upload_to"):
        if values.get(key) is not None and not isinstance(values[key], str):
            raise ConfigError(f"{where}: {key} must be a string, got {values[key]!r}")


def with_transport(cfg: GeneratorConfig, *, base_url: str | None = None, api_key_env: str | None = None,
                   upload_to: str | None = None) -> GeneratorConfig:
    """An API entry under the command line's --base-url, --api-key-env and --upload-to."""
    given = {"--base-url": base_url, "--api-key-env": api_key_env, "--upload-to": upload_to}
    if cfg.kind != "api":
        named = [flag for flag, value in given.items() if value]
        if named:
            raise ConfigError(f"{', '.join(named)}: for API generators; {cfg.name!r} is {cfg.kind}")
        return cfg
    if api_key_env is not None and not ENV_NAME.fullmatch(api_key_env):
        raise ConfigError("--api-key-env takes the NAME of an environment variable (never the key itself); "
                          "what was given is not a variable name")
    if upload_to is not None and not upload_to.startswith("s3://"):
        raise ConfigError(f"--upload-to {upload_to!r}: give an S3-compatible bucket as s3://bucket/prefix")
    api = dict(cfg.api)
    api.update({k: v for k, v in (("base_url", base_url), ("upload_to", upload_to)) if v})
    needs = dict(cfg.needs)
    if api_key_env:
        needs["api_key"] = api_key_env
    return replace(cfg, api=api, needs=needs)


def generator_catalog() -> dict[str, Path]:
    return {p.stem: p for p in sorted(GENERATORS_DIR.glob("*.yaml"), key=lambda p: p.stem.lower())}


def resolve_generator(ref: str) -> GeneratorConfig:
    """A catalog name (VMEvalKit's, e.g. ``wan-2.2-ti2v-5b``; case and -/_ do not matter)
    or a generator YAML path."""
    candidate = Path(ref)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError(f"generator file not found: {ref}")
        return load_generator_config(candidate)
    catalog = generator_catalog()
    if ref in catalog:
        return load_generator_config(catalog[ref], ref)
    folded = {_fold(k): k for k in catalog}
    if _fold(ref) in folded:
        name = folded[_fold(ref)]
        return load_generator_config(catalog[name], name)
    close = difflib.get_close_matches(ref, list(catalog), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown generator {ref!r}: not a file and not in the catalog (see `vlm-bench generators`){hint}")


def _fold(name: str) -> str:
    return name.lower().replace("_", "-")


def requirements(cfg: GeneratorConfig) -> str:
    """What an entry needs, in one line, for ``vlm-bench generators``."""
    needs = cfg.needs
    if cfg.unavailable:
        return f"not available in this version: needs {cfg.unavailable}"
    parts = []
    if needs.get("extra"):
        parts.append(f"pip install 'vlm-bench[{needs['extra']}]'")
    if needs.get("gpu_memory_gb"):
        parts.append(f"GPU {needs['gpu_memory_gb']}+ GB")
    if needs.get("api_key"):
        parts.append(f"${needs['api_key']}")
    if cfg.api.get("usd_per_second") is not None:
        parts.append(f"list price ~{cfg.api['usd_per_second']:g} USD/s")
    elif cfg.api.get("usd_per_video") is not None:
        parts.append(f"list price ~{cfg.api['usd_per_video']:g} USD/video")
    if cfg.api.get("first_frame") == "url":
        parts.append("--upload-to s3://... (the API fetches the first frame by URL)")
    if needs.get("notes"):
        parts.append(str(needs["notes"]))
    return "; ".join(parts) or "-"
