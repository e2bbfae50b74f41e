"""The run: everything a session needs, resolved from the command line, the YAMLs and the
defaults and checked before collection; and the fingerprint that makes two runs comparable."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from vlm_bench.checks import ConfigError, is_int, is_number, plain
from vlm_bench.context_fit import CONTEXT_POLICIES
from vlm_bench.config.dataset import (
    DatasetConfig,
    check_dataset_data,
    dataset_catalog,
    load_dataset_config,
    split_dataset_roots,
)
from vlm_bench.config.model import (
    SERVER_FLAGS,
    SERVER_TRANSPORT_KEYS,
    ModelConfig,
    check_native_options,
    check_server,
    resolve_model,
)
from vlm_bench.config.preset import apply_preset, preset_summary, resolve_preset
from vlm_bench.config.schema import check_decode, check_video, lookup, resolve_video
from vlm_bench.types import BACKENDS, SEED_RANGE


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
    item_timeout_s: float | None = None  # an item past this many seconds gets an error record (None: no limit)
    max_response_chars: int = 65536  # a record keeps at most this much of a response (--max-response-kb)
    judge: Any = None  # answer_judge.JudgeConfig: reads the answers the rules cannot (--judge-model)
    preset: Mapping[str, Any] | None = None  # --preset: the reference followed (preset_summary); None: vlm-bench's own
    context_policy: str = "fewer-frames"  # a prompt past the engine's context (context_fit.CONTEXT_POLICIES)
    max_model_len: int | None = None  # the context in tokens where the engine does not say it (--max-model-len); the lower one wins

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
            "decode_overrides": plain(dict(self.decode_overrides)),
            "seed": self.seed,
            "min_pass_rate": self.min_pass_rate,
            "limit": self.limit,
            "categories": list(self.categories),
            "shard": list(self.shard) if self.shard else None,
            "frame_cache": self.frame_cache,
            "prefetch": self.prefetch,
            "frame_memory_gb": self.frame_memory_gb,
            "item_frames_gb": self.item_frames_gb,
            "item_timeout_s": self.item_timeout_s,
            "max_response_chars": self.max_response_chars,
            "judge": self.judge.name if self.judge else None,
            "preset": plain(dict(self.preset)) if self.preset else None,
            "context_policy": self.context_policy,
            "max_model_len": self.max_model_len,
        }


def run_fingerprint(run: "RunConfig") -> dict[str, Any]:
    """What makes two runs' records comparable: model, backend, quantization, frame and
    decode settings, seed and each dataset's content. Not the item subset (--limit,
    --categories, --shard), so shards merge and a resumed run may widen its subset."""
    model = {k: v for k, v in run.model.as_dict().items() if k not in ("path", "info", "name")}
    server = {k: v for k, v in model.pop("server").items() if k not in SERVER_TRANSPORT_KEYS}
    if server:  # absent when empty, so runs recorded before served models existed still resume
        model["server"] = server
    out = {
        "model": run.model.name,
        "model_config": model,
        "backend": run.backend,
        "quant": run.quant,
        "seed": run.seed,
        "video_overrides": plain(dict(run.video_overrides)),
        "decode_overrides": plain(dict(run.decode_overrides)),
        "datasets": [
            {
                "name": d.name,
                "format": d.format,
                "sha256": d.content_hash(),
                "video": plain(dict(d.video)),
                "decode": plain(dict(d.decode)),
                "prompt": dict(d.prompt),
                "source": plain(dict(d.source)),
                "scorer": d.scorer,
                # only with --preset, so runs recorded before presets existed still resume
                **({"frame_label": d.frame_label, "tiles": dict(d.tiles), "preset": d.preset["name"]} if d.preset else {}),
            }
            for d in run.datasets
        ],
    }
    if run.judge is not None:  # absent without one, so runs recorded before judges existed still resume
        out["judge"] = run.judge.name
    return out


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
    if not is_int(seed) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ConfigError(f"seed must be a whole number from {SEED_RANGE[0]} to {SEED_RANGE[1]}, got {seed!r}")
    if frame_cache_gb is not None and not (is_number(frame_cache_gb) and frame_cache_gb > 0):
        raise ConfigError(f"--frame-cache-gb must be a finite number > 0, got {frame_cache_gb!r}")
    if not is_int(prefetch) or prefetch < 0:
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
    model_overrides: Mapping[str, Any] | None = None,
    item_timeout_s: float | None = None,
    max_response_kb: float | None = None,
    judge: Mapping[str, Any] | None = None,
    questions_root: str | None = None,
    preset: str | None = None,
    grading: Mapping[str, Any] | None = None,
    context_policy: str | None = None,
    max_model_len: int | None = None,
) -> RunConfig:
    model_cfg = resolve_model(model)
    native = {k: v for k, v in (model_overrides or {}).items() if v is not None}
    if native:
        check_native_options("command line", native)
        model_cfg = replace(model_cfg, **native)
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
    flags = {"attn_implementation": "--attn", "compile": "--compile"}
    given = [flags[k] for k in native if k in flags]
    if given and backend != "native":
        raise ConfigError(f"{', '.join(given)} applies to the native backend only (backend is {backend!r})")
    qa_preset = resolve_preset(preset) if preset else None
    default_root, named_roots = split_dataset_roots(dataset_roots)
    loaded = [load_dataset_config(lookup("dataset", d, dataset_catalog(), (".yaml", ".yml", ".jsonl"))) for d in datasets]
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
        given = {k: v for k, v in (grading or {}).items() if v is not None}
        if given and cfg.format == "vmevalkit-outputs":  # --score, --judge-protocol
            if given.get("score") == "none":
                raise ConfigError("--score none is for generation runs; grading takes rules, judge or both")
            cfg = replace(cfg, source=dict(cfg.source, **given))
        if questions_root and cfg.format == "vmevalkit-outputs":
            tree = Path(questions_root).expanduser().resolve()
            if not tree.is_dir():
                raise ConfigError(f"--questions-root {questions_root}: no such folder (VMEvalKit's data/questions)")
            cfg = replace(cfg, source=dict(cfg.source, questions=str(tree)))
        check_dataset_data(cfg)
        if qa_preset is not None:
            cfg = apply_preset(cfg, qa_preset, backend)
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
    if item_frames_gb is not None and not (is_number(item_frames_gb) and item_frames_gb > 0):
        raise ConfigError(f"--item-frames-gb must be a finite number > 0, got {item_frames_gb!r}")
    if item_timeout_s is not None and not (is_number(item_timeout_s) and item_timeout_s > 0):
        raise ConfigError(f"--item-timeout must be a finite number of seconds > 0, got {item_timeout_s!r}")
    if context_policy is not None and context_policy not in CONTEXT_POLICIES:
        raise ConfigError(f"--context-policy must be one of {', '.join(CONTEXT_POLICIES)}, got {context_policy!r}")
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
        item_timeout_s=item_timeout_s,
        max_response_chars=int(1024 * (64 if max_response_kb is None else max_response_kb)),
        judge=judge_config(judge),
        preset=preset_summary(qa_preset) if qa_preset else None,
        context_policy=context_policy or "fewer-frames",
        max_model_len=max_model_len,
    )


def judge_config(values: Mapping[str, Any] | None):
    """The judge model from --judge-model, --judge-base-url, --judge-api-key-env and
    --judge-cache; None without --judge-model."""
    values = {k: v for k, v in (values or {}).items() if v is not None}
    if not values.get("model"):
        if values:
            raise ConfigError(f"--judge-{sorted(values)[0].replace('_', '-')} needs --judge-model (the judge's model)")
        return None
    from vlm_bench.config.judge import JudgeConfig
    from vlm_bench.config.model import ENV_NAME, resolve_model

    if values.get("api_key_env") and not ENV_NAME.fullmatch(values["api_key_env"]):
        raise ConfigError("--judge-api-key-env takes the NAME of an environment variable, never the key itself")
    if values.get("base_url") and not re.match(r"^https?://[^/\s]+", values["base_url"]):
        raise ConfigError(f"--judge-base-url must be an http(s) URL, got {values['base_url']!r}")
    if not values.get("base_url"):
        resolve_model(values["model"])  # a catalog model run here: it must exist
    return JudgeConfig(**values)
