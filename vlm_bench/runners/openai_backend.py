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

import os
import time
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

from vlm_bench.config import ModelConfig, ServerConfig
from vlm_bench.concurrency import AdaptiveLimit
from vlm_bench.context_fit import ContextLimit
from vlm_bench.registry.model_adapters.internvl3 import system_prompt
from vlm_bench.runners import ServerUnavailable
from vlm_bench.runners.chat_request import MISSING, chat_messages, parse_completion
from vlm_bench.types import DecodeConfig, Generation, VideoInput
from vlm_bench.utils.http import Backoff, body_text, clip, redact_url, scrub
from vlm_bench.utils.http import retry_after as retry_after_s

DEFAULT_FRAME_SIZE = 448  # InternVL3's tile
STARTUP_ATTEMPTS = 3  # GET /models at load: a server that is down fails within about a second
STARTUP_BACKOFF_S = 0.25
STARTUP_TIMEOUT_S = 20.0  # each GET /models at load, at most (a server that accepts and never answers)
PROBE_TIMEOUT_S = 10.0  # GET /models after an item's connection kept failing: is the server up?
# The layout each engine needs, by the owned_by its GET /models reports.
PLACEHOLDERS = {"vllm": "<image>", "lmdeploy": "<IMAGE_TOKEN>"}
T = TypeVar("T")


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
        self.max_model_len: int | None = None  # what the server reports (vLLM), after load()
        self.limiter = AdaptiveLimit(self.server.concurrency) if self.server.adaptive else None
        self._backoff_of = Backoff(self.server.retry_base_s, seed=seed, max_s=self.server.max_retry_wait_s)

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
        listed = self._call(self._models(self.startup_timeout_s()), "GET /models", attempts=STARTUP_ATTEMPTS, startup=True)
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
        reported = {m.id: getattr(m, "max_model_len", None) for m in listed.data}.get(self.served_model)  # vLLM's
        self.max_model_len = int(reported) if isinstance(reported, int) and reported > 0 else None
        layout = self.server.frame_placeholder
        if layout == "auto":
            layout = PLACEHOLDERS.get(str(self.owned_by).lower(), "none")
        self.placeholder = None if layout == "none" else layout

    def startup_timeout_s(self) -> float:
        return min(self.server.timeout_s, STARTUP_TIMEOUT_S)

    @classmethod
    def waiting_for(cls, model_cfg: ModelConfig) -> str:
        """What loading waits for, said before it starts (a slow server is not a hang)."""
        engine = cls(model_cfg)
        limit = STARTUP_ATTEMPTS * engine.startup_timeout_s()
        return f"checking the server at {engine.url}: GET /models, at most {limit:g} s"

    def _models(self, timeout_s: float) -> Callable[[], Any]:
        import openai

        client = self.client.with_options(timeout=openai.Timeout(timeout_s, connect=self.server.connect_timeout_s))
        return client.models.list

    def server_answers(self) -> bool:
        """Whether the server answers GET /models now (one short try)."""
        try:
            self._models(min(self.server.timeout_s, PROBE_TIMEOUT_S))()
        except Exception:
            return False
        return True

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
            "concurrency": self.limiter.snapshot() if self.limiter else {"mode": "fixed", "in_flight": self.server.concurrency},
        }

    # ------------------------------------------------------------ the context

    tokens_estimated = True  # the server tokenizes; prompt_tokens is an estimate from above

    def context_limit(self) -> ContextLimit | None:
        if self.max_model_len is None:
            return None
        return ContextLimit(self.max_model_len, f"max_model_len in the server's GET /models ({self.url})")

    def prompt_tokens(self, media: VideoInput, prompt: str, model_cfg: ModelConfig | None = None) -> int:
        """An estimate that errs high: ``server.frame_tokens`` per image (InternVL's 256 for
        one 448-px tile) and a token per two bytes of text (English BPE gives about four)."""
        images = len(media.frames) + (media.reference is not None)
        labels = "" if media.is_image else "".join(media.labels())
        text = len(((system_prompt(model_cfg or self.model_cfg) or "") + labels + prompt).encode())
        return images * (self.server.frame_tokens + len((self.placeholder or "").encode())) + -(-text // 2)

    # ------------------------------------------------------------ the request

    def frame_size(self, model_cfg: ModelConfig) -> int:
        return self.server.frame_size or int(model_cfg.vision_args.get("short_side") or DEFAULT_FRAME_SIZE)

    def messages(self, media: VideoInput, prompt: str, model_cfg: ModelConfig | None = None) -> list[dict[str, Any]]:
        cfg = model_cfg or self.model_cfg
        return chat_messages(media, prompt, system_prompt(cfg), self.frame_size(cfg), self.placeholder, self.server.image_format)

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
        encode_started = time.perf_counter()
        body = self.request(media, prompt, decode, model_cfg)
        started = time.perf_counter()
        raw = self._call(lambda: within(self.limiter, lambda: self.client.chat.completions.with_raw_response.create(**body)),
                         f"item {media.item_id!r}")
        response = parse_completion(raw, self.url, media.item_id, self._scrub)
        latency_ms = (time.perf_counter() - started) * 1000.0
        if not response.choices:
            raise RuntimeError(f"the server at {self.url} answered item {media.item_id!r} with no choices")
        choice = response.choices[0]
        raw_text = choice.message.content or ""
        text, stopped = decode.cut_at_stop(raw_text)
        truncated = choice.finish_reason == "length" and not stopped
        usage = response.usage
        return Generation(
            id=media.item_id,
            text=text.strip(),
            tokens=usage.completion_tokens if usage is not None else None,
            latency_ms=latency_ms,
            truncated=truncated,
            raw_text=raw_text,
            timing={"processor_ms": (started - encode_started) * 1000},
        )

    # ------------------------------------------------------------ retries

    def _call(self, call: Callable[[], T], what: str, attempts: int | None = None, startup: bool = False) -> T:
        """``call()`` with retries on 429, 5xx, timeouts and connection errors (backoff:
        the server's Retry-After, else ``retry_base_s * 2**attempt`` with jitter, at most
        ``max_retry_wait_s``). What no item can get past raises ServerUnavailable; a failure
        of this one request raises RuntimeError. An item whose connection keeps failing is
        only that item's failure when the server still answers GET /models (a reset for one
        request); otherwise the server is down. Messages never carry the key."""
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
                cause = f"{self._scrub(exc)}{' ' + self._scrub(exc.__cause__) if exc.__cause__ else ''}"
                failure = ServerUnavailable(
                    f"cannot reach the server at {self.url} ({what}: {cause}); is it running? "
                    "Check --base-url; after starting it, rerun with --resume"
                )
                if not startup:
                    failure.item_failure = (  # type: ignore[attr-defined]
                        f"{what}: the connection to {self.url} failed {attempts} times ({cause}) while the server "
                        "answers other requests; recorded as this item's error (--resume tries it again)"
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
        item_failure = getattr(failure, "item_failure", None)
        if item_failure is not None and self.server_answers():  # one item's connection, not the server
            raise RuntimeError(item_failure)
        raise failure

    def _backoff(self, attempt: int, retry_after: float | None, cap_base: float | None = None) -> float:
        base = None if cap_base is None else min(cap_base, self.server.retry_base_s)
        return self._backoff_of.seconds(attempt, retry_after, base)

    def _scrub(self, value: Any) -> str:
        return scrub(value, [self._key])


def within(limiter: AdaptiveLimit | None, send: Callable[[], T]) -> T:
    """One attempt, within the adaptive limit when there is one: a 429, 5xx, 408 or timeout
    tells it the server pushed back."""
    if limiter is None:
        return send()
    import openai

    with limiter.slot() as request:
        try:
            return send()
        except openai.APITimeoutError:
            request.throttled = True
            raise
        except openai.APIStatusError as exc:
            request.throttled = exc.status_code in (408, 429) or exc.status_code >= 500
            raise
