"""Prompt presets (``configs/presets/*.yaml``, ``--preset``): what one reference harness
sends a model for each benchmark, as data. A preset names its source (a repository and
commit, or a package and version) and holds one recipe per dataset name (``default`` for
the others): frame settings, prompt templates, decode settings, tiles per frame, the
VLMEvalKit dataset name, and the differences vlm-bench cannot remove. Applying a preset
to a dataset config gives a dataset config; nothing downstream knows presets exist."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from vlm_bench.checks import ConfigError, is_int, plain
from vlm_bench.config.dataset import DatasetConfig, check_prompt
from vlm_bench.config.schema import CONFIG_ROOT, catalog_of, check_decode, check_keys, check_mapping, check_video, load_yaml, lookup
from vlm_bench.types import BACKENDS

PRESETS_DIR = CONFIG_ROOT / "presets"
PRESET_KEYS = ("name", "description", "source", "frame_label", "backends", "recipes")
RECIPE_KEYS = ("reference", "video", "prompt", "decode", "tiles", "vlmeval_dataset", "differences")
SOURCE_KEYS = ("repository", "commit", "package", "version", "files")
TILE_KEYS = ("max", "total")


@dataclass(frozen=True)
class QAPreset:
    name: str
    description: str
    source: Mapping[str, Any]
    frame_label: str
    backends: tuple[str, ...]
    recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    path: str | None = None

    @property
    def source_text(self) -> str:
        """``OpenGVLab/InternVL@0355722a1`` or ``ms-vlmeval 0.0.20``."""
        if self.source.get("repository"):
            return f"{self.source['repository']}@{str(self.source['commit'])[:9]}"
        return f"{self.source['package']} {self.source['version']}"

    def recipe(self, dataset: str) -> tuple[str, Mapping[str, Any]]:
        """(recipe name, recipe) for a dataset name: its own, or ``default``."""
        if dataset in self.recipes:
            return dataset, self.recipes[dataset]
        return "default", self.recipes.get("default", {})


def tiles_for(tiles: Mapping[str, int] | None, frames: int) -> int:
    """Tiles per frame under a ``{max, total}`` rule: ``max(1, min(max, total // frames))``
    (lmms-eval's and VLMEvalKit's InternVL budget); 1 without one."""
    if not tiles or frames < 1:
        return 1
    return max(1, min(int(tiles["max"]), int(tiles["total"]) // frames))


def check_tiles(where: str, tiles: Any) -> dict[str, int]:
    tiles = dict(check_mapping(where, tiles))
    if not tiles:
        return {}
    check_keys(where, tiles, TILE_KEYS)
    for key in TILE_KEYS:
        if not is_int(tiles.get(key)) or tiles[key] < 1:
            raise ConfigError(f"{where}: {key} must be a whole number >= 1, got {tiles.get(key)!r}")
    return tiles


def check_frame_label(where: str, label: Any) -> str:
    if not isinstance(label, str) or "{index}" not in label:
        raise ConfigError(f"{where}: frame_label must be text with {{index}} in it (\"Frame{{index}}: \"), got {label!r}")
    try:
        label.format(index=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{where}: frame_label {label!r} may use only {{index}} ({exc})") from None
    return label


def load_preset(path: str | os.PathLike) -> QAPreset:
    path = Path(path)
    where = str(path)
    data = dict(load_yaml(path))
    check_keys(where, data, PRESET_KEYS)
    for key in ("name", "description", "source", "frame_label", "backends", "recipes"):
        if key not in data:
            raise ConfigError(f"{where}: missing key {key!r}")
    source = dict(check_mapping(f"{where}: source", data["source"]))
    check_keys(f"{where}: source", source, SOURCE_KEYS)
    if not ((source.get("repository") and source.get("commit")) or (source.get("package") and source.get("version"))):
        raise ConfigError(f"{where}: source needs a repository and a commit, or a package and a version")
    backends = data["backends"]
    if not isinstance(backends, list) or not backends or any(b not in BACKENDS for b in backends):
        raise ConfigError(f"{where}: backends must be a list of {', '.join(BACKENDS)}, got {backends!r}")
    recipes = {}
    for name, recipe in check_mapping(f"{where}: recipes", data["recipes"]).items():
        at = f"{where}: recipes.{name}"
        recipe = dict(check_mapping(at, recipe))
        check_keys(at, recipe, RECIPE_KEYS)
        for kind, template in check_mapping(f"{at}.prompt", recipe.get("prompt")).items():
            check_prompt(at, str(kind), template)
        differences = recipe.get("differences") or []
        if not isinstance(differences, list) or not all(isinstance(d, str) for d in differences):
            raise ConfigError(f"{at}: differences must be a list of sentences")
        recipes[str(name)] = {
            "reference": str(recipe.get("reference") or ""),
            "video": check_video(f"{at}.video", recipe.get("video")),
            "prompt": dict(check_mapping(f"{at}.prompt", recipe.get("prompt"))),
            "decode": check_decode(f"{at}.decode", recipe.get("decode")),
            "tiles": check_tiles(f"{at}.tiles", recipe.get("tiles")),
            "vlmeval_dataset": recipe.get("vlmeval_dataset"),
            "differences": tuple(differences),
        }
    return QAPreset(
        name=str(data["name"]),
        description=str(data["description"]),
        source=source,
        frame_label=check_frame_label(where, data["frame_label"]),
        backends=tuple(backends),
        recipes=recipes,
        path=str(path.resolve()),
    )


def preset_catalog() -> dict[str, Path]:
    return catalog_of(PRESETS_DIR)


def resolve_preset(ref: str) -> QAPreset:
    return load_preset(lookup("preset", ref, preset_catalog(), (".yaml", ".yml")))


# What a backend cannot send as a preset asks, said in the record instead of silently dropped.
SERVED_TILES = ("tiles per frame: a served model tiles each image as its server is configured; vlm-bench sends "
                "each frame squashed to one tile")


def apply_preset(dataset: DatasetConfig, preset: QAPreset, backend: str) -> DatasetConfig:
    """The dataset config with the preset's recipe for it on top: its frame settings,
    prompt templates and decode settings over the dataset's own (an item's and the
    command line's settings still win), its frame label, tiles and VLMEvalKit dataset."""
    if backend not in preset.backends:
        why = (" (--backend vlmeval sends VLMEvalKit's own query: use --preset vlmevalkit, or no preset)"
               if backend == "vlmeval" else "")
        raise ConfigError(f"--preset {preset.name} cannot be sent by --backend {backend}{why}; "
                          f"it can by: {', '.join(preset.backends)}")
    name, recipe = preset.recipe(dataset.name)
    differences = list(recipe["differences"])
    if backend == "openai" and recipe["tiles"]:
        differences.append(SERVED_TILES)
    return replace(
        dataset,
        video={**dataset.video, **recipe["video"]},
        prompt={**dataset.prompt, **recipe["prompt"]},
        decode={**dataset.decode, **recipe["decode"]},
        frame_label=preset.frame_label,
        tiles=dict(recipe["tiles"]),
        vlmeval_dataset=recipe["vlmeval_dataset"] or dataset.vlmeval_dataset,
        preset={
            "name": preset.name,
            "recipe": name,
            "source": preset.source_text,
            "reference": recipe["reference"],
            "differences": differences,
        },
    )


def preset_summary(preset: QAPreset) -> dict[str, Any]:
    """The manifest's account of a preset: its name, description and full source."""
    return {"name": preset.name, "description": preset.description, "source": plain(dict(preset.source)),
            "path": preset.path}
