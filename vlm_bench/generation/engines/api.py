"""Commercial video-generation APIs behind the generator protocol: what Luma, Runway, Veo
and Sora share. Each provider module says how to build its official SDK's client, what
one submission sends, how to read a job's state and where its video is; this module
submits, stores the generation id (``on_submitted``) before polling, polls with a
timeout, downloads, retries, rate-limits and keeps the key out of everything it returns.

Retries: 429, 5xx, 408 and connection errors are retried with exponential backoff and
jitter, or after the provider's Retry-After (``api.max_retries``, ``api.retry_base_s``).
A submission is resent only when the provider cannot have accepted it (an HTTP error
status, or a connection that never opened); a submission whose answer was lost (a
timeout, a dropped connection, a body that is not JSON) may have been accepted and
billed, so it is not resent: the task fails saying so. Polls and downloads are
idempotent and always retried. Validation errors and moderation refusals (other 4xx, or
a job the provider marks failed) are never retried and are recorded with the
provider's reason. A key the provider refuses (401/403) fails every later task of the
session at once, without sending anything.

A generation that was submitted but not fetched (poll timeout, polls or the download
failing past their retries) ends ``pending``: the runner keeps its generation id, and
the next run polls and downloads it instead of paying again.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from vlm_bench.generation.base import GenerationResult, GeneratorUnavailable
from vlm_bench.generation.config import APIConfig, GenerationSettings, GeneratorConfig
from vlm_bench.utils.http import Backoff, body_text, clip, redact_url, scrub
from vlm_bench.utils.http import retry_after as retry_after_s

EXTRA_HINT = "pip install 'vlm-bench[api]'"
DOWNLOAD_CHUNK = 1 << 20
T = TypeVar("T")


class APICallError(Exception):
    """One provider call that failed for good; ``kind`` says how."""

    def __init__(self, message: str, kind: str, reason: str | None = None):
        super().__init__(message)
        self.kind = kind  # refused, key, ambiguous, transient
        self.reason = reason


class DownloadIncomplete(Exception):
    pass


@dataclass(frozen=True)
class Failure:
    """How one exception from an SDK call is handled."""

    kind: str  # retry, refused, key
    message: str
    retry_after: float | None = None
    resend_safe: bool = True  # the provider cannot have acted on the request
    reason: str | None = None


@dataclass(frozen=True)
class JobStatus:
    """A job's state as the provider reports it, in the three states the poller needs."""

    state: str  # running, succeeded, failed
    provider_state: str
    video_url: str | None = None
    video_bytes: bytes | None = None
    reason: str | None = None


class RateLimiter:
    """At most ``per_minute`` requests a minute from this process, evenly spaced; safe
    to share between the threads that keep tasks in flight."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 60.0 / per_minute
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


class APIGenerator:
    """The generator protocol for a provider's API; subclasses fill in the provider."""

    provider = "api"
    default_base_url: str | None = None
    sdk_module = ""  # importable name of the official SDK
    sdk_package = ""  # its PyPI name
    resumable = True

    def __init__(self, cfg: GeneratorConfig, settings: GenerationSettings):
        self.cfg = cfg
        self.settings = settings
        self.name = cfg.name
        self.api = APIConfig.of(cfg)
        self.model = cfg.model or cfg.name
        self.concurrency = cfg.concurrency
        self.call_args = dict(cfg.call_args)
        self.key_env = cfg.needs.get("api_key")
        self.load_count = 0
        self.client: Any = None
        self._key: str | None = None
        self._key_refused: str | None = None
        self._backoff = Backoff(self.api.retry_base_s, seed=settings.seed, max_s=self.api.max_retry_wait_s)
        self._limiter = RateLimiter(self.api.requests_per_minute) if self.api.requests_per_minute else None
        self._uploader = None
        self._downloads = None
        self._downloads_lock = threading.Lock()

    # ------------------------------------------------------------ provider hooks

    def make_client(self, key: str) -> Any:
        raise NotImplementedError

    def request(self, image_path: Path, prompt: str, *, dry_run: bool = False) -> dict[str, Any]:
        """The submission's keyword arguments, the first frame included (in a dry run, a
        description of it: nothing is read out or uploaded)."""
        raise NotImplementedError

    def submit(self, request: Mapping[str, Any]) -> str:
        """Send one submission; its generation id."""
        raise NotImplementedError

    def status(self, job_id: str) -> JobStatus:
        raise NotImplementedError

    def video_seconds(self) -> float | None:
        """Seconds of video one submission asks for (the price estimate)."""
        return None

    def fetch(self, job_id: str, status: JobStatus, out: Path) -> str | None:
        """Write the finished job's video to ``out``; the URL it came from, if any."""
        if status.video_bytes is not None:
            write_stream([status.video_bytes], None, out)
            return None
        if not status.video_url:
            raise APICallError(f"{self.provider} reports job {job_id} finished but names no video", "transient")
        download(self.downloads(), status.video_url, out)
        return status.video_url

    def downloads(self):
        """One HTTP client for the video URLs, shared by the tasks in flight (a TLS context
        is costly to build per download); it never carries the key."""
        with self._downloads_lock:
            if self._downloads is None:
                import httpx

                self._downloads = httpx.Client(timeout=httpx.Timeout(self.api.timeout_s, connect=self.api.connect_timeout_s),
                                               follow_redirects=True)
            return self._downloads

    # ------------------------------------------------------------ the session

    @property
    def base_url(self) -> str | None:
        return self.api.base_url

    def check(self) -> None:
        """Before any task: the SDK is installed, the key's variable is set, and an API that
        fetches its first frame by URL has an uploader."""
        if importlib.util.find_spec(self.sdk_module.split(".")[0]) is None:
            raise GeneratorUnavailable(f"generator {self.name!r} needs the {self.sdk_package} package: {EXTRA_HINT}")
        if self.key_env and not os.environ.get(self.key_env):
            raise GeneratorUnavailable(
                f"generator {self.name!r} needs its API key in the environment variable {self.key_env} "
                f"(not set, or empty); export {self.key_env}=... or name another variable with --api-key-env"
            )
        if self.api.first_frame == "url":
            self.uploader()

    def uploader(self):
        from vlm_bench.generation.upload import UploadError, uploader_for

        if self._uploader is None:
            try:
                self._uploader = uploader_for(self.api.upload_to, expires_s=self.api.upload_url_expires_s)
                if self._uploader is None:
                    raise UploadError(
                        f"generator {self.name!r}: {self.provider} fetches the first frame from a public URL; "
                        "give an S3-compatible bucket to upload it to: --upload-to s3://bucket/prefix "
                        "(credentials and endpoint from boto3's usual settings, e.g. AWS_ENDPOINT_URL_S3)"
                    )
                self._uploader.check()
            except UploadError as exc:
                raise GeneratorUnavailable(str(exc)) from None
        return self._uploader

    def load(self) -> None:
        self.check()
        self._key = os.environ.get(self.key_env) if self.key_env else None
        self.client = self.make_client(self._key or "")
        self.load_count += 1

    def close(self) -> None:
        for client in (self.client, self._downloads):
            close = getattr(client, "close", None)
            if callable(close):
                close()

    def describe(self) -> dict[str, Any]:
        """What the run records about the provider (never the key)."""
        return {"provider": self.provider, "model": self.model, "api_key_env": self.key_env,
                "base_url": redact_url(self.base_url) if self.base_url else None}

    def dry_run_request(self, image_path: Path, prompt: str) -> dict[str, Any]:
        return self.describe_request(self.request(Path(image_path), prompt, dry_run=True))

    # ------------------------------------------------------------ one task

    def generate(self, image_path, text_prompt, duration, output_filename, *, resume_id=None, on_submitted=None) -> GenerationResult:
        started = time.perf_counter()
        out = Path(output_filename)
        meta: dict[str, Any] = {"provider": self.provider, "model": self.model, "resumed": resume_id is not None}
        job_id = resume_id

        def result(status: str, error: str | None = None, url: str | None = None) -> GenerationResult:
            return GenerationResult(status == "success", str(out) if status == "success" else None,
                                    None if error is None else self._scrub(error), time.perf_counter() - started,
                                    job_id or "", self.model, status, meta, video_url=url)

        if self._key_refused:
            return result("failed", f"not sent: {self._key_refused}")
        try:
            if job_id is None:
                request = self.request(Path(image_path), text_prompt)
                meta["request"] = self.describe_request(request)
                job_id = self._call(lambda: self.submit(request), "submit", submission=True)
                if on_submitted is not None:
                    on_submitted(job_id)
            status = self._wait(job_id)
            meta["provider_state"] = status.provider_state
            if status.state == "failed":
                meta["refusal_reason"] = self._scrub(status.reason or status.provider_state)
                return result("failed", f"{self.provider} did not generate {job_id}: {meta['refusal_reason']}")
            url = self._call(lambda: self.fetch(job_id, status, out), f"download of {job_id}")
            return result("success", url=url)
        except APICallError as exc:
            if exc.reason:
                meta["refusal_reason"] = self._scrub(exc.reason)
            if job_id is not None and exc.kind == "transient":
                return result("pending", f"{exc}; generation {job_id} is kept: the next run polls it again (no new submission)")
            return result("failed", str(exc))

    def describe_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The submission as recorded: binary and data-URI inputs summarised."""
        return plain(request)

    def _wait(self, job_id: str) -> JobStatus:
        deadline = time.monotonic() + self.api.poll_timeout_s
        while True:
            status = self._call(lambda: self.status(job_id), f"poll of {job_id}")
            if status.state != "running":
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                raise APICallError(f"{self.provider} job {job_id} still {status.provider_state} after "
                                   f"{self.api.poll_timeout_s:g} s (api.poll_timeout_s)", "transient")
            time.sleep(min(self.api.poll_interval_s, left))

    def _call(self, call: Callable[[], T], what: str, *, submission: bool = False) -> T:
        attempts = self.api.max_retries + 1
        failure = None
        for attempt in range(attempts):
            if self._key_refused:
                raise APICallError(f"{what} not sent: {self._key_refused}", "key")
            if self._limiter is not None:
                self._limiter.acquire()
            try:
                return call()
            except APICallError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below; anything unknown is re-raised
                failure = self.classify(exc)
                if failure is None:
                    raise APICallError(f"{what}: {type(exc).__name__}: {clip(self._scrub(exc))}", "failed") from None
            if failure.kind == "key":
                source = f"the key in ${self.key_env}" if self.key_env else "the request (no key set)"
                self._key_refused = f"{self.provider} refused {source} ({failure.message})"
                raise APICallError(self._key_refused, "key")
            if failure.kind == "refused":
                raise APICallError(f"{self.provider} refused the {what} ({failure.message})", "refused", failure.reason)
            if submission and not failure.resend_safe:
                raise APICallError(
                    f"{what}: {failure.message}; the provider may have accepted (and billed) it, so it is not resent; "
                    f"check the {self.provider} dashboard before running this task again", "ambiguous")
            if attempt + 1 < attempts:
                time.sleep(self._backoff.seconds(attempt, failure.retry_after))
        raise APICallError(f"{what} failed {attempts} times ({failure.message})", "transient")

    # ------------------------------------------------------------ errors

    def classify(self, exc: BaseException) -> Failure | None:
        """Stainless-built SDKs (lumaai, runwayml, openai) and google-genai raise errors
        with an HTTP status and the response; connection errors wrap (or are) httpx's."""
        status = getattr(exc, "status_code", None)
        if status is None and type(exc).__name__ in ("APIError", "ClientError", "ServerError"):
            status = getattr(exc, "code", None)
        if isinstance(status, int) and not isinstance(status, bool):
            response = getattr(exc, "response", None)
            reason = self._scrub(self.error_reason(exc))
            message = f"HTTP {status}: {clip(reason)}"
            if status in (401, 403):
                return Failure("key", message)
            if status in (408, 409, 425, 429) or status >= 500:
                return Failure("retry", message, retry_after_s(getattr(response, "headers", None)))
            return Failure("refused", message, reason=reason)
        name = type(exc).__name__
        if name == "APITimeoutError" or isinstance(exc, TimeoutError):
            return Failure("retry", f"no answer within {self.api.timeout_s:g} s (api.timeout_s)", resend_safe=False)
        if name in ("APIConnectionError",) or _is_transport_error(exc):
            cause = exc.__cause__ if name == "APIConnectionError" and exc.__cause__ is not None else exc
            opened = type(cause).__name__ not in ("ConnectError", "ConnectTimeout", "ConnectionRefusedError")
            detail = self._scrub(cause) or type(cause).__name__
            where = redact_url(self.base_url or self.default_base_url or "?")
            return Failure("retry", f"connection failed: {clip(detail)} (the API at {where})", resend_safe=not opened)
        if isinstance(exc, DownloadIncomplete):
            return Failure("retry", str(exc))
        if name in ("APIResponseValidationError", "JSONDecodeError", "ValidationError"):
            return Failure("retry", f"the answer is not the JSON expected ({name}: {clip(self._scrub(exc), 200)})",
                           resend_safe=False)
        return None

    def error_reason(self, exc: BaseException) -> str:
        return body_text(exc)

    def _scrub(self, value: Any) -> str:
        return scrub(value, [self._key])


def probe_endpoint(url: str, timeout_s: float = 5.0) -> None:
    """Open (and close) a TCP connection to ``url``'s host and port: a dead endpoint fails
    here, once, before any task, instead of after every task's retries. Raises
    GeneratorUnavailable naming the URL (without credentials)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise GeneratorUnavailable(
            f"cannot reach the API at {redact_url(url)} ({exc.strerror or exc}); nothing was sent. "
            "Check --base-url, the network, or a proxy, then run again"
        ) from None


def _is_transport_error(exc: BaseException) -> bool:
    """httpx's (or the openai SDK's httpx2's) transport errors, raised bare by google-genai
    and while streaming a body."""
    root = type(exc).__module__.split(".")[0]
    return root in ("httpx", "httpx2", "httpcore", "h11") or isinstance(exc, ConnectionError)


def download(client: Any, url: str, out: Path) -> None:
    """GET ``url`` into ``out`` with an httpx client that carries no key (a provider's
    video URL is signed or public). A body shorter than its Content-Length raises
    DownloadIncomplete."""
    with client.stream("GET", url) as response:
        status = response.status_code
        if status == 429 or status >= 500:
            raise DownloadIncomplete(f"download answered HTTP {status}")
        if status >= 400:  # an expired or wrong URL: polling the job again gives a fresh one
            raise APICallError(f"download of the video answered HTTP {status}", "transient")
        write_stream(response.iter_bytes(DOWNLOAD_CHUNK), response.headers.get("content-length"), out)


def write_stream(chunks, content_length: str | None, out: Path) -> None:
    """Write a video's bytes to ``out`` through ``out.part``, renamed into place once it is
    whole: a body shorter than its Content-Length, or empty, raises DownloadIncomplete."""
    part = out.with_name(out.name + ".part")
    expected = int(content_length) if content_length and content_length.isdigit() else None
    received = 0
    with open(part, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            received += len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    if expected is not None and received != expected:
        raise DownloadIncomplete(f"download incomplete: {received} of {expected} bytes")
    if received == 0:
        raise DownloadIncomplete("download empty: 0 bytes")
    os.replace(part, out)


def image_bytes(path: Path) -> tuple[bytes, str]:
    data = Path(path).read_bytes()
    mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/webp"
    return data, mime


def data_uri_of(path: Path) -> str:
    data, mime = image_bytes(path)
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file: a PNG's from its header, anything else decoded."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
    return int(image.shape[1]), int(image.shape[0])


def plain(value: Any) -> Any:
    """JSON-safe, with bytes and data URIs summarised (records never hold the image)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and value.startswith("data:") and ";base64," in value:
        head, _, payload = value.partition(";base64,")
        return f"<{head[5:]} data URI, {len(payload) * 3 // 4} bytes>"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(exclude_none=True))
    return str(value)
