"""Native backend: InternVL3 through Hugging Face transformers (``InternVLForConditionalGeneration``
and ``InternVLProcessor``, the ``-hf`` checkpoints), optionally quantized with bitsandbytes.

Frames come from the shared sampler; the processor only resizes and normalizes them, it
never samples again. By default they go in as a video (one tile per frame, ``Frame1:
<image>`` lines from the processor). Frames labelled otherwise (``--preset vlmevalkit``:
``Frame-1:``) or given several tiles (``--preset lmms-eval``) go in as images after their
labels, as InternVL's own ``chat`` receives them. Greedy decoding unless a temperature is set.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

import numpy as np

from vlm_bench.config import ModelConfig
from vlm_bench.registry.model_adapters.internvl3 import system_prompt
from vlm_bench.runners.quantization import bnb_config, check_quantized
from vlm_bench.context_fit import ContextLimit
from vlm_bench.runners.native_tokens import count_tokens, expanded_prompt, frames_as_images, processor_images
from vlm_bench.types import DecodeConfig, Generation, VideoInput
from vlm_bench.utils.cpu import choose_cpu_threads
from vlm_bench.utils.logs import log_each_message_once

_INTERNVL3_REPO = re.compile(r"^OpenGVLab/InternVL3-\d+B$")
OOM_ADVICE = (
    "CUDA out of memory on item {item}: set `quantization: int8` in the model YAML (or pass "
    "--quant int8 / --quant int4) and/or use fewer frames (--max-frames {fewer})"
)


def hf_model_id(repo: str) -> str:
    """``OpenGVLab/InternVL3-38B`` (the remote-code checkpoint) -> its transformers-native
    ``-hf`` twin; other ids and local paths pass through."""
    return f"{repo}-hf" if _INTERNVL3_REPO.match(repo) else repo


@dataclass(frozen=True)
class _Ended:
    tokens: int
    text: str
    truncated: bool
    raw: str  # decoded, before stop strings are cut and whitespace stripped


class NativeEngine:
    name = "native"

    def __init__(self, model_cfg: ModelConfig, *, quant: str = "none", seed: int = 0):
        self.model_cfg = model_cfg
        self.quant = quant
        self.seed = seed
        self.model = None
        self.processor = None
        self.source: str | None = None
        self.cpu_threads: dict[str, Any] | None = None  # torch's CPU thread count and how it was chosen
        self.processor_device: str | None = None  # where the processor resizes frames (None: the CPU)

    # ------------------------------------------------------------ loading

    def model_source(self) -> str:
        cfg = self.model_cfg
        if cfg.local_build:
            from vlm_bench.registry.tiny_internvl import LOCAL_BUILDS

            if cfg.local_build not in LOCAL_BUILDS:
                raise RuntimeError(f"unknown local_build {cfg.local_build!r}; known: {', '.join(LOCAL_BUILDS)}")
            return str(LOCAL_BUILDS[cfg.local_build](seed=self.seed))
        if not cfg.hf_repo:
            raise RuntimeError(f"model {cfg.name!r} sets neither hf_repo nor local_build")
        return cfg.hf_repo if Path(cfg.hf_repo).expanduser().is_dir() else hf_model_id(cfg.hf_repo)

    def load(self) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        cfg = self.model_cfg
        source = self.model_source()
        self.source = source
        local = Path(source).expanduser().is_dir()
        if not local:
            _check_hub_reachable(source, cfg.revision)
        cuda = torch.cuda.is_available()
        threads, chosen_by = choose_cpu_threads(cfg.info.get("parameters_b"), cuda=cuda)
        torch.set_num_threads(threads)
        self.cpu_threads = {"threads": threads, "chosen_by": chosen_by}
        dtype = _torch_dtype(cfg.dtype) if cfg.dtype else (torch.bfloat16 if cuda else torch.float32)
        kwargs: dict[str, Any] = {
            "revision": None if local else cfg.revision,
            "trust_remote_code": cfg.trust_remote_code,
        }
        model_kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": cfg.attn_implementation or "sdpa"}
        device_map = cfg.device_map or ("auto" if cuda else None)
        if self.quant != "none":
            model_kwargs["quantization_config"] = bnb_config(self.quant)
            device_map = device_map or {"": "cpu"}
        if device_map is not None:
            model_kwargs["device_map"] = device_map
        torch.manual_seed(self.seed)
        try:
            processor = AutoProcessor.from_pretrained(source, **kwargs)
            model = AutoModelForImageTextToText.from_pretrained(source, **kwargs, **model_kwargs)
        except OSError as exc:
            raise RuntimeError(f"Hugging Face model not available: {source} ({exc})") from exc
        if self.quant != "none":
            check_quantized(model, self.quant)
            log_each_message_once("bitsandbytes")  # it warns on every int8 matmul on a CPU
        if cfg.compile:
            compile_decoding(model, cuda)
        self.model = model.eval()
        self.processor = processor
        if cfg.processor_device == "model":
            self.processor_device = str(model.device)

    def describe(self) -> dict[str, Any]:
        """What the summary records about the engine: device, dtype, attention, cache,
        quantization, batch size, where the processor runs, torch's CPU threads."""
        model = self.model
        text = model.config.get_text_config() if model is not None else None
        return {
            "device": str(model.device) if model is not None else None,
            "dtype": str(model.dtype).removeprefix("torch.") if model is not None else None,
            "attn_implementation": getattr(text, "_attn_implementation", None),
            "cache": getattr(model.generation_config, "cache_implementation", None) or "dynamic" if model is not None else None,
            "compile": self.model_cfg.compile,
            "quantization": self.quant,
            "batch_size": self.model_cfg.batch_size,
            "processor_device": self.processor_device or "cpu",
            "cpu_threads": self.cpu_threads,
        }

    def context_limit(self) -> ContextLimit:
        """The model's own context: its text config's ``max_position_embeddings``."""
        text = self.model.config.get_text_config()
        return ContextLimit(int(text.max_position_embeddings), "the model config's max_position_embeddings")

    def prompt_tokens(self, media: VideoInput, prompt: str, model_cfg: ModelConfig | None = None) -> int:
        """The prompt's length in tokens as ``prepare_inputs`` would make it (native_tokens)."""
        cfg = model_cfg or self.model_cfg
        text = self.processor.apply_chat_template(self.messages(media, prompt, cfg), add_generation_prompt=True, tokenize=False)
        return count_tokens(self.processor, [expanded_prompt(self.processor, text, media, cfg.vision_args)])[0]

    # ------------------------------------------------------------ generation

    def messages(self, media: VideoInput, prompt: str, model_cfg: ModelConfig) -> list[dict[str, Any]]:
        """One image (dynamic tiles) for a single frame; else a video (one tile per frame),
        or, for frames labelled otherwise or tiled, each frame an image after its label."""
        if media.is_image:
            visuals: list[dict[str, Any]] = [{"type": "image"}]
        elif frames_as_images(media):
            visuals = [part for label in media.labels() for part in ({"type": "text", "text": label}, {"type": "image"})]
        else:
            visuals = [{"type": "video"}]
        if media.reference is not None:  # the prompt says what the last image is
            visuals.append({"type": "image"})
        msgs: list[dict[str, Any]] = []
        system = system_prompt(model_cfg)
        if system:
            msgs.append({"role": "system", "content": system})
        msgs.append({"role": "user", "content": [*visuals, {"type": "text", "text": prompt}]})
        return msgs

    def prepare_inputs(self, batch: Sequence[tuple[VideoInput, str]], model_cfg: ModelConfig | None = None):
        """Processor inputs for items of one kind (all images, or videos of equal length)."""
        cfg = model_cfg or self.model_cfg
        texts = [
            self.processor.apply_chat_template(self.messages(m, p, cfg), add_generation_prompt=True, tokenize=False)
            for m, p in batch
        ]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        per_item = [processor_images(m, cfg.vision_args) for m, _ in batch]
        if not batch[0][0].is_image and not frames_as_images(batch[0][0]):
            kwargs["videos"] = [np.stack(m.frames) for m, _ in batch]
            kwargs["do_sample_frames"] = False  # the shared sampler already chose the frames
            if side := cfg.vision_args.get("short_side"):
                kwargs["videos_kwargs"] = {"size": {"height": side, "width": side}}
        images = [image for item_images, _ in per_item for image in item_images]  # in the texts' placeholder order
        if images:
            kwargs["images"] = images
            if per_item[0][1]:
                kwargs["images_kwargs"] = per_item[0][1]
        if self.processor_device and "videos" in kwargs:  # the fast video processor resizes there
            kwargs["videos_kwargs"] = {**kwargs.get("videos_kwargs", {}), "device": self.processor_device}
        inputs = self.processor(**kwargs)
        return inputs.to(self.model.device, dtype=self.model.dtype)

    def generate_video(
        self, media: VideoInput, prompt: str, decode: DecodeConfig, model_cfg: ModelConfig | None = None
    ) -> Generation:
        return self.generate([(media, prompt)], decode, model_cfg=model_cfg)[0]

    def generate(
        self, batch: Sequence[tuple[VideoInput, str]], decode: DecodeConfig, model_cfg: ModelConfig | None = None
    ) -> list[Generation]:
        """Several items, one ``generate`` call per group of same-shaped inputs, left-padded."""
        if self.model is None:
            raise RuntimeError("NativeEngine.generate called before load()")
        groups: dict[tuple[bool, int], list[int]] = {}
        for i, (media, _) in enumerate(batch):
            shape = (media.is_image, len(media.frames), media.reference is not None, media.frame_label, media.tiles)
            groups.setdefault(shape, []).append(i)
        results: list[Generation | None] = [None] * len(batch)
        for indices in groups.values():
            for i, gen in zip(indices, self._generate_group([batch[i] for i in indices], decode, model_cfg)):
                results[i] = gen
        return results  # type: ignore[return-value]

    def _generate_group(
        self, group: Sequence[tuple[VideoInput, str]], decode: DecodeConfig, model_cfg: ModelConfig | None
    ) -> list[Generation]:
        import torch

        tokenizer = self.processor.tokenizer
        started = time.perf_counter()
        clock = StepClock()
        try:
            inputs = self.prepare_inputs(group, model_cfg)
            synchronize(self.model.device)  # the inputs are on the device before the clock moves on
            processed = time.perf_counter()
            gen_kwargs: dict[str, Any] = {
                "max_new_tokens": decode.max_new_tokens,
                "do_sample": decode.temperature > 0,
                "pad_token_id": tokenizer.pad_token_id,
                "streamer": clock,  # each step's tokens reach the host (a sync HF's loop makes anyway): timestamps
            }
            if decode.temperature > 0:
                gen_kwargs.update(temperature=decode.temperature, top_p=1.0, top_k=0)
            if decode.stop:
                gen_kwargs.update(stop_strings=list(decode.stop), tokenizer=tokenizer)
            if self.model_cfg.compile and hasattr(self.model.generation_config, "max_cache_len"):
                # a static cache sized in powers of two: a longer prompt recompiles once per doubling, not per item
                gen_kwargs["max_cache_len"] = cache_bucket(inputs["input_ids"].shape[1] + decode.max_new_tokens)
            torch.manual_seed(self.seed)
            with torch.inference_mode(), attention_backends(self.model.device):
                output = self.model.generate(**inputs, **gen_kwargs)
        except torch.OutOfMemoryError as exc:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            frames = len(group[0][0].frames)
            raise RuntimeError(
                OOM_ADVICE.format(item=", ".join(m.item_id for m, _ in group), fewer=max(1, frames // 2))
            ) from exc
        new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()  # on the host: the device is done
        ended = time.perf_counter()
        latency_ms = (ended - started) * 1000.0
        timing = clock.stages(started, processed, ended)
        return [
            Generation(id=media.item_id, text=e.text, tokens=e.tokens, latency_ms=latency_ms, truncated=e.truncated,
                       raw_text=e.raw, timing=timing)
            for (media, _), e in ((item, self._ended(row, decode)) for item, row in zip(group, new_tokens))
        ]

    def generate_text(self, prompt: str, decode: DecodeConfig) -> str:
        """A text-only answer (the model as a judge of other answers), greedy."""
        import torch

        messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], return_tensors="pt").to(self.model.device)
        with torch.inference_mode(), attention_backends(self.model.device):
            output = self.model.generate(**inputs, max_new_tokens=decode.max_new_tokens, do_sample=False,
                                         pad_token_id=self.processor.tokenizer.pad_token_id)
        return self._ended(output[0, inputs["input_ids"].shape[1]:].tolist(), decode).text

    def _ended(self, row: list[int], decode: DecodeConfig) -> _Ended:
        """Why generation stopped: an end-of-sequence token, a stop string, or the token limit
        (only the last is truncation)."""
        tokenizer = self.processor.tokenizer
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        length = len(row)
        while length and row[length - 1] == tokenizer.pad_token_id:  # a batch pads rows that stopped early
            length -= 1
        ended_eos = False
        for pos, tok in enumerate(row[:length]):
            if tok in eos_ids:
                length, ended_eos = pos + 1, True
                break
        text = raw = tokenizer.decode(row[:length], skip_special_tokens=True)
        text, ended_stop = decode.cut_at_stop(text)
        truncated = not ended_eos and not ended_stop and length >= decode.max_new_tokens
        return _Ended(tokens=length, text=text.strip(), truncated=truncated, raw=raw)


class StepClock:
    """A streamer (``generate(streamer=...)``) that only notes when each step's tokens
    arrive on the host: the prompt first, then one put per new token. It gives the
    processor, prefill (to the first new token) and decode stages of one generate call."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass

    def stages(self, started: float, processed: float, ended: float) -> dict[str, float]:
        out = {"processor_ms": (processed - started) * 1000}
        steps = self.times[1:]  # after the prompt's put
        if steps:
            out["prefill_ms"] = (steps[0] - processed) * 1000
            out["decode_ms"] = (steps[-1] - steps[0]) * 1000
            if len(steps) > 1 and steps[-1] > steps[0]:
                out["tokens_per_s"] = (len(steps) - 1) / (steps[-1] - steps[0])
        return out


def attention_backends(device: Any):
    """On a GPU, SDPA without cuDNN's attention: cuDNN plans a graph for every new query and
    key length (host time, about 25 ms a call on the H200 measured), and decoding meets a new
    key length at every step; flash and memory-efficient attention need no plan.
    ``VLM_BENCH_CUDNN_ATTENTION=1`` leaves torch's own choice (to compare)."""
    import contextlib

    if getattr(device, "type", None) != "cuda" or os.environ.get("VLM_BENCH_CUDNN_ATTENTION") == "1":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def cache_bucket(length: int, smallest: int = 256) -> int:
    """The static cache's length for ``length`` tokens: the next power of two (at least ``smallest``)."""
    return max(smallest, 1 << max(0, length - 1).bit_length())


def synchronize(device: Any) -> None:
    """Wait for the GPU's queued work (a stage timed on a GPU ends when its work does)."""
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def compile_decoding(model: Any, cuda: bool) -> None:
    """A static KV cache and transformers' compiled decoding step (torch.compile,
    ``reduce-overhead``: CUDA graphs on a GPU). The prefill, whose shape changes with each
    item, stays eager; the cache keeps the longest size seen, so decoding compiles once.
    On a CPU transformers compiles only when told to (it rarely pays there)."""
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=False, mode="reduce-overhead")
    if not cuda:
        config._compile_all_devices = True
    model.generation_config.cache_implementation = "static"
    model.generation_config.compile_config = config


def _torch_dtype(name: str):
    import torch

    table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
             "float32": torch.float32, "fp32": torch.float32}
    if name not in table:
        raise RuntimeError(f"dtype {name!r} not understood; use one of {', '.join(table)}")
    return table[name]


def _check_hub_reachable(repo: str, revision: str | None, filename: str = "config.json") -> None:
    """Fail fast offline: transformers retries an unreachable hub for tens of seconds.
    ``filename`` is a file every snapshot of the repo has (diffusers: model_index.json)."""
    try:
        from huggingface_hub import constants, try_to_load_from_cache

        cached = try_to_load_from_cache(repo, filename, revision=revision)
        if isinstance(cached, str):
            return
        offline = constants.HF_HUB_OFFLINE
        endpoint = constants.ENDPOINT
    except Exception:  # pragma: no cover - hub client too old; let transformers decide
        return
    if offline:
        raise RuntimeError(f"Hugging Face model not available: {repo} (HF_HUB_OFFLINE is set and it is not cached)")
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    timeout = float(os.environ.get("VLM_BENCH_HUB_TIMEOUT", "3"))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise RuntimeError(
            f"Hugging Face model not available: {repo} (not in the local cache and {host} is unreachable: {exc}); "
            "download it first or set hf_repo to a local directory"
        ) from exc
