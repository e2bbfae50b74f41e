"""Model adapters: the family's prompt building and default decode, in front of an engine."""

from __future__ import annotations

import re
import string
from dataclasses import replace
from typing import Any, Sequence

from vlm_bench.config import DatasetConfig, ModelConfig
from vlm_bench.types import DecodeConfig, Generation, Sample, VideoInput
from vlm_bench.utils.subtitles import lines_at, parse_srt

def subtitles_for(srt_path: str, media: VideoInput) -> str:
    from pathlib import Path

    times = media.timestamps()
    if not times or not Path(srt_path).is_file():
        return ""
    return "\n".join(lines_at(parse_srt(srt_path), times))


_LABELLED = re.compile(r"^\s*(?:\([A-Z]\)|[A-Z][\.\):])\s")


def format_options(options: Sequence[str]) -> str:
    """One option per line, lettered "A. ..." unless the dataset already lettered them."""
    if all(_LABELLED.match(o) for o in options):
        return "\n".join(o.strip() for o in options)
    return "\n".join(f"{string.ascii_uppercase[i]}. {o.strip()}" for i, o in enumerate(options))


class ModelAdapter:
    """The generic adapter; families subclass it for their own defaults."""

    family = "mock"

    def __init__(self, model_cfg: ModelConfig, engine: Any):
        self.model_cfg = model_cfg
        self._engine = engine

    @property
    def engine(self) -> Any:
        return self._engine

    def load(self) -> None:
        self._engine.load()

    def engine_info(self) -> dict[str, Any] | None:
        """What the engine says about itself for the summary (a served model's server), if anything."""
        describe = getattr(self.engine, "describe", None)
        return describe() if describe else None

    def default_decode(self) -> dict[str, Any]:
        """The family's decode defaults, below the model YAML's (none here: the built-in
        DecodeConfig defaults apply)."""
        return {}

    def build_prompt(self, sample: Sample, dataset: DatasetConfig, media: VideoInput | None = None) -> str:
        """The question text from the dataset's template; engines add the image placeholders
        their model expects. With subtitles, the lines on screen at the sampled frames are
        given through the ``<kind>_subtitles`` template."""
        kind = "mc" if sample.options else "open"
        # a judge protocol's own words (frame_labels set) go as they are, newlines included
        question = sample.question if sample.frame_labels is not None else sample.question.strip()
        fields = {"question": question, "options": format_options(sample.options)}
        if sample.subtitles is not None and media is not None:
            kind += "_subtitles"
            fields["subtitles"] = subtitles_for(sample.subtitles, media)
        return dataset.prompt_template(kind).format(**fields)

    def generate(
        self,
        batch: Sequence[tuple[Sample, VideoInput, str]],
        decode: DecodeConfig,
        model_cfg: ModelConfig | None = None,
    ) -> list[Generation]:
        """Engines that batch expose ``generate(batch, decode)``; others run one by one."""
        cfg = model_cfg or self.model_cfg
        if len(batch) > 1 and hasattr(self._engine, "generate"):
            gens = self._engine.generate([(m, p) for _, m, p in batch], decode, model_cfg=cfg)
        else:
            gens = [self._engine.generate_video(m, p, decode, model_cfg=cfg) for _, m, p in batch]
        return [g if g.id == s.id else replace(g, id=s.id) for (s, _, _), g in zip(batch, gens)]
