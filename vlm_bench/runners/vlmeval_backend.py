"""VLMEvalKit backend: InternVL3 through VLMEvalKit's own model registry
(``vlmeval.config.supported_VLM``; ``InternVL3-38B`` is a partial of ``vlmeval.vlm.InternVLChat``).

VLMEvalKit's ``InternVLChat`` drops ``{'type': 'video'}`` entries, so the frames the
shared sampler chose are written once as image files (keyed by the media's content and
the frame indices, never by file name) and sent as ``{'type': 'image'}`` entries. The
``dataset`` name it is told changes its behaviour: only names VLMEvalKit knows as video
datasets give one tile per frame and ``Frame-k: <image>`` prompts.

Importing ``vlmeval`` disables TLS certificate checks process-wide, turns autograd off,
reseeds torch and configures the root logger; ``import_vlmeval`` undoes all of that.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import random
import shutil
import ssl
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from vlm_bench.config import ModelConfig, cache_root
from vlm_bench.frame_cache import atomic_write_bytes, content_hash
from vlm_bench.types import DecodeConfig, Generation, VideoInput

MISSING = "VLMEvalKit not installed: pip install 'vlm-bench[vlmeval]'"
DEFAULT_VLMEVAL_DATASET = "MVBench"  # a VLMEvalKit video dataset whose prompt handling adds nothing
LETTER_LINE = "\nAnswer with the option's letter from the given choices directly."


def vlmeval_video_text(prompt: str, dataset: str) -> tuple[str, str]:
    """(text to send, text the model then sees) for a VLMEvalKit video dataset.
    InternVLChat's ``build_video_prompt`` (vlmeval/vlm/internvl/utils.py) rewrites the text
    by dataset name: for Video-MME and WorldSense it drops "\nAnswer:" and appends
    LETTER_LINE, so a prompt that already ends with that line (vlm-bench's Video-MME
    template does) is sent without it and the model sees it once; MMBench-Video drops
    "\nAnswer:", MVBench "Best option:(". The second value is what the record shows."""
    sent = prompt
    if any(name in dataset for name in ("Video-MME", "WorldSense")):
        if sent.endswith(LETTER_LINE.strip()):
            sent = sent[: -len(LETTER_LINE.strip())].rstrip("\n")
        return sent, sent.replace("\nAnswer:", "") + LETTER_LINE
    if "MMBench-Video" in dataset:
        return sent, sent.replace("\nAnswer:", "")
    if "MVBench" in dataset:
        return sent, sent.replace("Best option:(", "")
    return sent, sent


def import_vlmeval() -> dict[str, Any]:
    """Import VLMEvalKit's registry and dataset helpers, then put back what its import
    changes for the whole process: the TLS context, torch's grad mode, the random states
    and the root logger."""
    import torch

    tls = ssl._create_default_https_context
    grad = torch.is_grad_enabled()
    torch_rng = torch.random.get_rng_state()
    np_rng = np.random.get_state()
    py_rng = random.getstate()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from vlmeval.config import supported_VLM
            from vlmeval.dataset import DATASET_MODALITY
            from vlmeval.vlm.base import BaseModel
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "vlmeval":
            raise RuntimeError(MISSING) from exc
        raise
    finally:
        ssl._create_default_https_context = tls
        torch.set_grad_enabled(grad)
        torch.random.set_rng_state(torch_rng)
        np.random.set_state(np_rng)
        random.setstate(py_rng)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return {"supported_VLM": supported_VLM, "DATASET_MODALITY": DATASET_MODALITY, "BaseModel": BaseModel}


def vlmeval_model_name(model_cfg: ModelConfig, registry: Sequence[str]) -> str:
    """``model_name`` as given, else the hub id's last part (``OpenGVLab/InternVL3-38B`` ->
    ``InternVL3-38B``); an unknown name lists the close ones."""
    name = model_cfg.model_name or (model_cfg.hf_repo or "").rstrip("/").split("/")[-1].removesuffix("-hf")
    if not name:
        raise RuntimeError(f"model {model_cfg.name!r} sets neither model_name nor hf_repo")
    if name in registry:
        return name
    close = difflib.get_close_matches(name, list(registry), n=5, cutoff=0.6)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise RuntimeError(f"VLMEvalKit has no model {name!r} in supported_VLM{hint} (set model_name in the model YAML)")


def rewrites_video_text(model: Any) -> bool:
    """Only VLMEvalKit's InternVL models (InternVLChat and its subclasses) pass video
    prompts through ``build_video_prompt``."""
    return any(cls.__name__ == "InternVLChat" for cls in type(model).__mro__)


class FrameFiles:
    """Sampled frames as PNG files (lossless: the model sees the sampler's exact pixels),
    written once per (media content, frame indices, frame size) and shared across runs."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def key(self, media: VideoInput) -> str:
        sources = [p.strip() for p in media.source.split(", ")] if media.selection.reader == "image" else [media.source]
        parts = [content_hash(p, self.root / "hashes") for p in sources]
        parts.append(",".join(map(str, media.selection.selected_indices)))
        parts.append("x".join(map(str, media.frames[0].shape)) if media.frames else "")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    def paths(self, media: VideoInput) -> list[str]:
        folder = self.root / "frames" / self.key(media)
        names = [folder / f"frame-{i + 1:03d}.png" for i in range(len(media.frames))]
        if not (folder / ".complete").exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
            for i, frame in enumerate(media.frames):
                cv2.imwrite(str(staging / names[i].name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            (staging / ".complete").write_text("")
            try:
                os.replace(staging, folder)
            except OSError:  # another worker wrote the same frames first
                shutil.rmtree(staging, ignore_errors=True)
        return [str(p) for p in names]

    def image_path(self, image: np.ndarray) -> str:
        path = self.root / "images" / f"{hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()[:32]}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes())
        return str(path)


class VLMEvalKitEngine:
    name = "vlmeval"

    def __init__(self, model_cfg: ModelConfig, *, quant: str = "none", seed: int = 0, frames_dir: str | None = None):
        self.model_cfg = model_cfg
        self.seed = seed
        self.model = None
        self.model_name: str | None = None
        root = frames_dir or cache_root() / "vlmeval"
        self.frames = FrameFiles(root)
        self._modality = None
        self._is_video: dict[str, bool] = {}  # dataset name -> VLMEvalKit's modality is VIDEO (checked once)

    def load(self) -> None:
        api = import_vlmeval()
        self._modality = api["DATASET_MODALITY"]
        registry = api["supported_VLM"]
        self.model_name = vlmeval_model_name(self.model_cfg, registry)
        kwargs: dict[str, Any] = {}
        repo = self.model_cfg.hf_repo
        if repo and Path(repo).expanduser().is_dir():
            kwargs["model_path"] = repo  # a local copy of the weights
        self.model = registry[self.model_name](**kwargs)
        self.check_dataset(self.dataset_name(self.model_cfg))

    def dataset_name(self, model_cfg: ModelConfig) -> str:
        return model_cfg.vlmeval_dataset or DEFAULT_VLMEVAL_DATASET

    def check_dataset(self, name: str) -> None:
        if name in self._is_video:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._is_video[name] = self._modality(name) == "VIDEO"
        if not self._is_video[name]:
            warnings.warn(
                f"VLMEvalKit does not know {name!r} as a video dataset: its models will tile each frame "
                "as an image and label frames Image-k; set vlmeval_dataset to a video dataset such as "
                f"{DEFAULT_VLMEVAL_DATASET!r} or 'Video-MME'",
                stacklevel=2,
            )

    def message(self, media: VideoInput, prompt: str) -> list[dict[str, str]]:
        images = [{"type": "image", "value": p} for p in self.frames.paths(media)]
        if media.reference is not None:  # one more image after the frames; the prompt labels it
            images.append({"type": "image", "value": self.frames.image_path(media.reference)})
        return images + [{"type": "text", "value": prompt}]

    def generate_video(
        self, media: VideoInput, prompt: str, decode: DecodeConfig, model_cfg: ModelConfig | None = None
    ) -> Generation:
        if self.model is None:
            raise RuntimeError("VLMEvalKitEngine.generate_video called before load()")
        cfg = model_cfg or self.model_cfg
        dataset = self.dataset_name(cfg)
        self.check_dataset(dataset)
        rewrites = self._is_video.get(dataset, False) and rewrites_video_text(self.model)
        sent, seen = vlmeval_video_text(prompt, dataset) if rewrites else (prompt, prompt)
        message = self.message(media, sent)
        gen_kwargs = getattr(self.model, "kwargs", None)
        if isinstance(gen_kwargs, dict):  # InternVLChat passes these to model.chat(generation_config=...)
            gen_kwargs.update(max_new_tokens=decode.max_new_tokens, do_sample=decode.temperature > 0)
            if decode.temperature > 0:
                gen_kwargs["temperature"] = decode.temperature
        started = time.perf_counter()
        raw = text = self.model.generate(message=message, dataset=dataset)
        latency_ms = (time.perf_counter() - started) * 1000.0
        text, stopped = decode.cut_at_stop(text)
        tokens = self.count_tokens(text)
        truncated = not stopped and tokens is not None and tokens >= decode.max_new_tokens
        return Generation(id=media.item_id, text=text.strip(), tokens=tokens, latency_ms=latency_ms, truncated=truncated,
                          raw_text=raw, prompt=seen)

    def count_tokens(self, text: str) -> int | None:
        """Generated tokens, counted with the model's own tokenizer."""
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return None
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
