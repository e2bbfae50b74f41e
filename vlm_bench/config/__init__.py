"""Configs: ``schema`` (YAML loading, checks, catalog lookup and precedence), ``model``
(model YAMLs and the served model's server), ``dataset`` (dataset YAMLs and JSONL files)
and ``run`` (the resolved run and its fingerprint). The names below are the package's
public API."""

from vlm_bench.checks import ConfigError, check_number
from vlm_bench.config.dataset import (
    DATASET_FORMATS,
    DATASETS_DIR,
    DEFAULT_PROMPTS,
    DatasetConfig,
    check_dataset_data,
    check_dataset_name,
    check_prompt,
    dataset_catalog,
    load_dataset_config,
    resolve_dataset,
    split_dataset_roots,
)
from vlm_bench.config.model import (
    ENV_NAME,
    FAMILIES,
    MODELS_DIR,
    SERVER_FLAGS,
    SERVER_KEYS,
    ModelConfig,
    ServerConfig,
    check_server,
    load_model_config,
    model_catalog,
    resolve_model,
)
from vlm_bench.config.run import RunConfig, build_run_config, check_run_settings, default_item_frames_gb, run_fingerprint
from vlm_bench.config.schema import (
    CONFIG_ROOT,
    cache_root,
    check_decode,
    check_keys,
    check_mapping,
    check_video,
    file_sha256,
    load_yaml,
    resolve_decode,
    resolve_video,
)

__all__ = [
    "CONFIG_ROOT", "DATASETS_DIR", "DATASET_FORMATS", "DEFAULT_PROMPTS", "ENV_NAME", "FAMILIES", "MODELS_DIR",
    "SERVER_FLAGS", "SERVER_KEYS", "ConfigError", "DatasetConfig", "ModelConfig", "RunConfig", "ServerConfig",
    "build_run_config", "cache_root", "check_dataset_data", "check_dataset_name", "check_decode", "check_keys",
    "check_mapping", "check_number", "check_prompt", "check_run_settings", "check_server", "check_video",
    "dataset_catalog", "default_item_frames_gb", "file_sha256", "load_dataset_config", "load_model_config",
    "load_yaml", "model_catalog", "resolve_dataset", "resolve_decode", "resolve_model", "resolve_video",
    "run_fingerprint", "split_dataset_roots",
]
