"""A deterministic engine for CI and for testing the harness itself.

It answers from the model YAML's ``responses`` (item id, or "dataset/id", -> text), else its
``default_response``, else the item's own reference answer, so a clean run passes. It
sees the real frames the shared sampler decoded (it checks their shape and reads every
pixel) and reports its real latency. It is never evidence that a real model works.
"""

from __future__ import annotations

import time
import zlib
from typing import Mapping

import numpy as np

from vlm_bench.config import ModelConfig
from vlm_bench.types import DecodeConfig, Generation, VideoInput


class MockEngine:
    name = "mock"
    loads = 0  # class-wide count of load() calls, for tests of "one load per session"

    def __init__(
        self, model_cfg: ModelConfig, *, quant: str = "none", seed: int = 0, answers: Mapping[str, str] | None = None  # "dataset/id" -> reference answer
    ):
        self.model_cfg = model_cfg
        self.seed = seed
        self.answers = dict(answers or {})
        self.loaded = False

    def load(self) -> None:
        type(self).loads += 1
        self.loaded = True

    def generate_video(
        self, media: VideoInput, prompt: str, decode: DecodeConfig, model_cfg: ModelConfig | None = None
    ) -> Generation:
        if not self.loaded:
            raise RuntimeError("MockEngine.generate_video called before load()")
        cfg = model_cfg or self.model_cfg
        start = time.perf_counter()
        if not media.frames:
            raise ValueError(f"item {media.item_id}: no frames to look at")
        for frame in media.frames:
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"item {media.item_id}: frame of shape {frame.shape} is not HxWx3 RGB")
            zlib.crc32(np.ascontiguousarray(frame))  # touch every pixel, as a model would (no copy)
        if cfg.delay_ms:
            time.sleep(cfg.delay_ms / 1000.0)
        uid = f"{media.dataset}/{media.item_id}"
        if uid in cfg.responses or media.item_id in cfg.responses:
            text = cfg.responses.get(uid, cfg.responses.get(media.item_id))
        elif cfg.default_response is not None:
            text = cfg.default_response
        else:
            text = self.answers.get(uid, "")
        raw = text
        words = text.split()
        truncated = len(words) > decode.max_new_tokens
        if truncated:
            words = words[: decode.max_new_tokens]
            text = " ".join(words)
        text, stopped = decode.cut_at_stop(text)
        truncated = truncated and not stopped
        return Generation(
            id=media.item_id,
            text=text,
            tokens=len(text.split()),
            latency_ms=(time.perf_counter() - start) * 1000.0,
            truncated=truncated,
            raw_text=raw,
        )

    def generate_text(self, prompt: str, decode: DecodeConfig) -> str:
        """A text-only answer (a mock judge): the ``responses`` entry ``judge``, else the
        default response."""
        if not self.loaded:
            raise RuntimeError("MockEngine.generate_text called before load()")
        return self.model_cfg.responses.get("judge", self.model_cfg.default_response or "")
