"""OpenAI-compatible backend: a model behind an inference server (lmdeploy, vLLM, SGLang,
``transformers serve``) through the chat-completions API, with the ``openai`` client.

The prompt is the native backend's: InternVL3's system message, then one user message
with the sampled frames as base64 data-URI images, in order, each after its
``FrameK: `` label, then the question. Each video frame is resized here to one square
tile (``frame_size``, default ``vision_args.short_side`` or 448) the way the -hf video
processor resizes it (torch's bicubic with antialias on uint8), so a server's dynamic tiling
keeps it as exactly one tile, as the native backend's video path does; a still image goes
at its own size and the server tiles it as the native backend's image path does.

How labels and images are laid out depends on the server (``frame_placeholder``):
- ``none``: text and image parts alternate (``"Frame1: "``, image, ...), which a chat
  template that iterates over the parts (``transformers serve``, the -hf checkpoints)
  renders exactly as the native backend's prompt;
- a placeholder: one text part ``"Frame1: <image>\\n..."`` and the images after it, for
  servers that join the text parts and put each image at a placeholder (vLLM with the
  remote-code InternVL3: ``<image>``; lmdeploy: ``<IMAGE_TOKEN>``; lmdeploy keeps only the
  first text part, so interleaving would lose the question there);
- ``auto`` (the default): by the server's ``owned_by`` in ``GET /models``.

Several items are in flight at once when the evaluator submits them from threads; the
client is thread-safe. Retries with backoff on 429, 5xx, timeouts and connection errors.
A server that cannot be reached (or refuses the key, or stays overloaded) raises
``ServerUnavailable``, which stops the session instead of failing every item.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

import cv2
import numpy as np

from vlm_bench.config import ModelConfig, ServerConfig
from vlm_bench.registry.model_adapters.internvl3 import system_prompt
from vlm_bench.runners import ServerUnavailable
from vlm_bench.types import DecodeConfig, Generation, VideoInput
from vlm_bench.utils.http import Backoff, body_text, clip, redact_url, scrub
from vlm_bench.utils.http import retry_after as retry_after_s

MISSING = "the openai backend needs the openai client: pip install 'vlm-bench[serve]'"
DEFAULT_FRAME_SIZE = 448  # InternVL3's tile
STARTUP_ATTEMPTS = 3  # GET /models at load: a server that is down fails within about a second
STARTUP_BACKOFF_S = 0.25
# The layout each engine needs, by the owned_by its GET /models reports.
PLACEHOLDERS = {"vllm": "<image>", "lmdeploy": "<IMAGE_TOKEN>"}
T = TypeVar("T")


def resize_square(frame: np.ndarray, side: int) -> np.ndarray:
    """``frame`` squashed to side x side exactly as the -hf InternVL video processor does
    it (torchvision's CPU kernel: bicubic with antialias, on uint8), so the server's tiler
    sees one tile. Without torch: Pillow's bicubic (within about one grey level of it)."""
    if frame.shape[0] == side and frame.shape[1] == side:
        return frame
    try:
        import torch
    except ImportError:
        try:
            from PIL import Image
        except ImportError as exc:
            raise RuntimeError(f"resizing frames needs torch or Pillow: {MISSING}") from exc
        return np.asarray(Image.fromarray(frame).resize((side, side), Image.BICUBIC))
    tensor = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(tensor, size=(side, side), mode="bicubic", antialias=True, align_corners=False)
    return out[0].permute(1, 2, 0).numpy()


def data_uri(image: np.ndarray, image_format: str = "png") -> str:
    """An RGB uint8 image as a ``data:image/...;base64,`` URI."""
    ext, mime, params = (".png", "png", []) if image_format == "png" else (".jpg", "jpeg", [cv2.IMWRITE_JPEG_QUALITY, 95])
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(image[..., ::-1]), params)
    if not ok:
        raise ValueError(f"could not encode a {image.shape} image as {image_format}")
    return f"data:image/{mime};base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


class OpenAIEngine:
    name = "openai"

    def __init__(self, model_cfg: ModelConfig, *, quant: str = "none", seed: int = 0):
        self.model_cfg = model_cfg
        self.server = ServerConfig.of(model_cfg)
        self.seed = seed
        self.client = None
        self.served_model: str | None = None
        self.owned_by: str | None = None
        self.placeholder: str | None = None  # None: interleaved parts
        self._key: str | None = None
        self._backoff_of = Backoff(self.server.retry_base_s, seed=seed)

    @property
    def url(self) -> str:
        return redact_url(self.server.base_url or "")

    # ------------------------------------------------------------ loading

    def load(self) -> None:
        """Connect, check the server answers, and settle the model id."""
        try:
            import openai
        except ImportError as exc:
            raise RuntimeError(MISSING) from exc
        env = self.server.api_key_env
        if env is not None:
            self._key = os.environ.get(env)
            if not self._key:
                raise RuntimeError(f"--api-key-env {env}: the environment variable {env} is not set (or empty)")
        self.client = openai.OpenAI(
            base_url=self.server.base_url,
            api_key=self._key or "EMPTY",  # servers without auth ignore it; never another variable's key
            timeout=openai.Timeout(self.server.timeout_s, connect=self.server.connect_timeout_s),
            max_retries=0,  # retries are ours (_call), with the server's Retry-After
        )
        listed = self._call(self.client.models.list, "GET /models", attempts=STARTUP_ATTEMPTS, startup=True)
        ids = [m.id for m in listed.data]
        owners = {m.id: getattr(m, "owned_by", None) for m in listed.data}
        if self.server.model is not None:
            if ids and self.server.model not in ids:
                raise ServerUnavailable(
                    f"the server at {self.url} serves {', '.join(map(repr, ids))}, not {self.server.model!r}; "
                    "fix --served-model (or server.model in the model YAML)"
                )
            self.served_model = self.server.model
        elif ids:
            self.served_model = ids[0]
        else:
            raise ServerUnavailable(f"the server at {self.url} lists no model (GET /models is empty); set --served-model")
        self.owned_by = owners.get(self.served_model)
        layout = self.server.frame_placeholder
        if layout == "auto":
            layout = PLACEHOLDERS.get(str(self.owned_by).lower(), "none")
        self.placeholder = None if layout == "none" else layout

    @classmethod
    def preflight(cls, model_cfg: ModelConfig) -> None:
        """Check the server answers before any worker starts (pytest-xdist's controller,
        where a worker's stop would arrive only as a crash): raises ServerUnavailable."""
        try:
            cls(model_cfg).load()
        except ServerUnavailable:
            raise
        except Exception:  # anything else: the workers' own load reports it once
            pass

    def describe(self) -> dict[str, Any]:
        """What the summary records about the server (never the key)."""
        return {
            "base_url": self.url,
            "model": self.served_model,
            "owned_by": self.owned_by,
            "frame_placeholder": self.placeholder,
            "api_key_env": self.server.api_key_env,
        }

    # ------------------------------------------------------------ the request

    def frame_size(self, model_cfg: ModelConfig) -> int:
        return self.server.frame_size or int(model_cfg.vision_args.get("short_side") or DEFAULT_FRAME_SIZE)

    def messages(self, media: VideoInput, prompt: str, model_cfg: ModelConfig | None = None) -> list[dict[str, Any]]:
        """The system message and one user message: labelled frames (or the still image),
        a reference image if any, then the question."""
        cfg = model_cfg or self.model_cfg
        fmt = self.server.image_format
        if media.is_image:
            visuals = [("", media.frames[0])]
        else:
            side = self.frame_size(cfg)
            visuals = [(f"Frame{i}: ", resize_square(f, side)) for i, f in enumerate(media.frames, 1)]
        if media.reference is not None:
            visuals.append(("", media.reference))
        images = [{"type": "image_url", "image_url": {"url": data_uri(img, fmt)}} for _, img in visuals]
        placeholder = self.placeholder
        if placeholder is not None:
            text = "".join(f"{label}{placeholder}\n" for label, _ in visuals) + prompt
            content = [{"type": "text", "text": text}, *images]
        else:
            content = []
            for (label, _), image in zip(visuals, images):
                if label:
                    content.append({"type": "text", "text": label})
                content.append(image)
            content.append({"type": "text", "text": prompt})
        msgs: list[dict[str, Any]] = []
        system = system_prompt(cfg)
        if system:
            msgs.append({"role": "system", "content": system})
        msgs.append({"role": "user", "content": content})
        return msgs

    def request(self, media: VideoInput, prompt: str, decode: DecodeConfig, model_cfg: ModelConfig | None = None) -> dict[str, Any]:
        """The chat-completions arguments: greedy unless a temperature is set."""
        body: dict[str, Any] = {
            "model": self.served_model,
            "messages": self.messages(media, prompt, model_cfg),
            "max_tokens": decode.max_new_tokens,
            "temperature": decode.temperature,
            "seed": self.seed,
        }
        if decode.temperature > 0:
            body["top_p"] = 1.0
        if decode.stop:
            body["stop"] = list(decode.stop)
        if self.server.extra_body:
            body["extra_body"] = dict(self.server.extra_body)
        return body

    def generate_video(
        self, media: VideoInput, prompt: str, decode: DecodeConfig, model_cfg: ModelConfig | None = None
    ) -> Generation:
        """One request. Safe to call from several threads at once."""
        if self.client is None:
            raise RuntimeError("OpenAIEngine.generate_video called before load()")
        body = self.request(media, prompt, decode, model_cfg)
        started = time.perf_counter()
        response = self._call(lambda: self.client.chat.completions.create(**body), f"item {media.item_id!r}")
        latency_ms = (time.perf_counter() - started) * 1000.0
        if not response.choices:
            raise RuntimeError(f"the server at {self.url} answered item {media.item_id!r} with no choices")
        choice = response.choices[0]
        raw = choice.message.content or ""
        text, stopped = decode.cut_at_stop(raw)
        truncated = choice.finish_reason == "length" and not stopped
        usage = response.usage
        return Generation(
            id=media.item_id,
            text=text.strip(),
            tokens=usage.completion_tokens if usage is not None else None,
            latency_ms=latency_ms,
            truncated=truncated,
            raw_text=raw,
        )

    # ------------------------------------------------------------ retries

    def _call(self, call: Callable[[], T], what: str, attempts: int | None = None, startup: bool = False) -> T:
        """``call()`` with retries on 429, 5xx, timeouts and connection errors (backoff:
        the server's Retry-After, else ``retry_base_s * 2**attempt`` with jitter, at most
        60 s). What no item can get past raises ServerUnavailable; a failure of this one
        request raises RuntimeError. Messages never carry the key."""
        import openai

        attempts = attempts if attempts is not None else self.server.max_retries + 1
        for attempt in range(attempts):
            retry_after = None
            try:
                return call()
            except openai.APITimeoutError as exc:
                failure: Exception = RuntimeError(
                    f"{what}: no answer from {self.url} within {self.server.timeout_s:g} s (server.timeout_s)"
                )
                if startup:
                    failure = ServerUnavailable(f"the server at {self.url} did not answer {what} ({self._scrub(exc)})")
            except openai.APIConnectionError as exc:
                failure = ServerUnavailable(
                    f"cannot reach the server at {self.url} ({what}: {self._scrub(exc)}"
                    f"{' ' + self._scrub(exc.__cause__) if exc.__cause__ else ''}); is it running? "
                    "Check --base-url; after starting it, rerun with --resume"
                )
            except openai.APIStatusError as exc:
                status = exc.status_code
                detail = f"HTTP {status}: {clip(self._scrub(body_text(exc)))}"  # scrubbed before it is cut
                if status in (401, 403):
                    source = f"the key in ${self.server.api_key_env}" if self.server.api_key_env else "no key (set --api-key-env)"
                    raise ServerUnavailable(f"the server at {self.url} refused {source} ({detail})") from None
                if status == 404:
                    hint = "" if urlsplit(self.server.base_url or "").path.rstrip("/").endswith("/v1") else (
                        "; OpenAI-compatible servers answer under /v1: try --base-url " + self.url.rstrip("/") + "/v1"
                    )
                    raise ServerUnavailable(f"{what}: {self.url} has no such endpoint or model ({detail}){hint}") from None
                if status == 429:
                    failure = ServerUnavailable(
                        f"the server at {self.url} is still overloaded after {attempts} attempts ({detail}); "
                        "lower --concurrency, then rerun with --resume"
                    )
                elif status >= 500 or status == 408:
                    failure = RuntimeError(f"{what}: the server at {self.url} failed {attempts} times ({detail})")
                    if startup:
                        failure = ServerUnavailable(f"the server at {self.url} is not healthy ({what}: {detail})")
                else:  # 400, 413, 422...: this request is wrong; retrying will not help
                    raise RuntimeError(f"{what}: the server at {self.url} rejected the request ({detail})") from None
                retry_after = retry_after_s(exc.response.headers)
            if attempt + 1 < attempts:
                time.sleep(self._backoff(attempt, retry_after, STARTUP_BACKOFF_S if startup else None))
        raise failure

    def _backoff(self, attempt: int, retry_after: float | None, cap_base: float | None = None) -> float:
        base = None if cap_base is None else min(cap_base, self.server.retry_base_s)
        return self._backoff_of.seconds(attempt, retry_after, base)

    def _scrub(self, value: Any) -> str:
        return scrub(value, [self._key])
