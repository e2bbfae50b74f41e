"""Dataset configs: a JSONL file, or a dataset YAML (``configs/datasets/*.yaml``) for a
JSONL file or a benchmark's own layout; prompt templates and their fields."""

from __future__ import annotations

import hashlib
import os
import string
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from vlm_bench.checks import ConfigError, plain
from vlm_bench.config.schema import (
    CONFIG_ROOT,
    catalog_of,
    check_decode,
    check_keys,
    check_mapping,
    check_video,
    file_sha256,
    load_yaml,
    lookup,
)


DATASETS_DIR = CONFIG_ROOT / "datasets"


DATASET_FORMATS = ("jsonl", "videomme", "mvbench", "nextqa", "vmevalkit", "vmevalkit-outputs")


DEFAULT_PROMPTS = {
    "open": "{question}",
    "mc": "{question}\n{options}\nAnswer with the option's letter from the given choices directly.",
}


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
    # Set by --preset only (config/preset.py), never by a dataset YAML:
    frame_label: str | None = None  # the text before each frame ("Frame-{index}: "); None: the engine's own
    tiles: Mapping[str, int] = field(default_factory=dict)  # {max, total}: tiles per frame; {}: one
    preset: Mapping[str, Any] = field(default_factory=dict)  # the recipe applied: name, recipe, source, differences

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
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


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


DATASET_KEYS = tuple(f.name for f in fields(DatasetConfig) if f.name not in ("config_path", "frame_label", "tiles", "preset"))


def load_dataset_config(path: str | Path) -> DatasetConfig:
    """A JSONL file, or a dataset YAML. JSONL datasets name their annotation file with
    ``path`` (relative to the YAML); the benchmark formats name ``root`` (the data folder,
    also ``--dataset-root``) and ``annotations`` under it."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return DatasetConfig(name=path.stem, format="jsonl", path=str(path.resolve()))
    data = dict(load_yaml(path))
    where = str(path)
    check_keys(where, data, DATASET_KEYS)
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
    prompt = check_mapping(f"{where}: prompt", data.get("prompt"))
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

        if not isinstance(scorer, str) or scorer not in SCORERS:
            hint = " (one name, not a list or a mapping)" if isinstance(scorer, (list, dict)) else ""
            raise ConfigError(f"{where}: scorer must be one of {', '.join(SCORERS)}{hint}, got {scorer!r}")
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
        source=dict(check_mapping(f"{where}: source", data.get("source"))),
        breakdowns=tuple((b,) if isinstance(b, str) else tuple(b) for b in breakdowns),
    )
    cfg = DatasetConfig(config_path=str(path.resolve()), **data)
    return cfg.with_root(path.parent / str(root)) if root else cfg


def dataset_catalog() -> dict[str, Path]:
    return catalog_of(DATASETS_DIR)


def resolve_dataset(ref: str, root: str | os.PathLike | None = None) -> DatasetConfig:
    cfg = load_dataset_config(lookup("dataset", ref, dataset_catalog(), (".yaml", ".yml", ".jsonl")))
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
