"""Judge answers kept on disk, so grading the same videos again sends no request twice.

The key is everything that decides a greedy answer: the judge (model config, backend,
quantization, the served model and its server), the protocol's text (system message, frame
labels, prompt), the frames themselves (their pixels, hashed) and the decode settings. A
sampled answer (temperature > 0) is never cached. One small JSON file per answer, written
atomically; a file that cannot be read is a miss."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vlm_bench.frame_cache import atomic_write_bytes
from vlm_bench.types import DecodeConfig, Generation, Sample, VideoInput


class ResponseCache:
    def __init__(self, root: str | Path, judge: dict[str, Any]):
        self.root = Path(root)
        self.judge = json.dumps(judge, sort_keys=True, default=str)
        self.hits = 0
        self.stores = 0

    def key(self, sample: Sample, media: VideoInput, prompt: str, decode: DecodeConfig) -> str | None:
        if decode.temperature > 0:
            return None
        digest = hashlib.sha256(self.judge.encode())
        text = json.dumps({"system": sample.system_prompt, "labels": media.labels(), "prompt": prompt,
                           "decode": decode.as_dict(), "tiles": media.tiles}, sort_keys=True)
        digest.update(text.encode())
        for frame in (*media.frames, *(() if media.reference is None else (media.reference,))):
            digest.update(str(frame.shape).encode())
            digest.update(frame.tobytes())
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str | None, item_id: str) -> Generation | None:
        if key is None:
            return None
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        self.hits += 1
        return Generation(id=item_id, text=data["text"], tokens=data.get("tokens"), truncated=bool(data.get("truncated")),
                          raw_text=data.get("raw_text"), prompt=data.get("prompt"))

    def put(self, key: str | None, gen: Generation) -> None:
        if key is None:
            return
        data = {"text": gen.text, "tokens": gen.tokens, "truncated": gen.truncated, "raw_text": gen.raw_text,
                "prompt": gen.prompt}
        try:
            self._path(key).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self._path(key), json.dumps(data, ensure_ascii=False).encode("utf-8"))
            self.stores += 1
        except OSError:  # a full or read-only disk costs a request next time, nothing more
            pass
