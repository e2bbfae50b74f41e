"""HTTP helpers shared by the served-model backend and the video-generation APIs: backoff
with jitter, the server's Retry-After, URLs and messages with secrets taken out."""

from __future__ import annotations

import random
import threading
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

MAX_BACKOFF_S = 60.0
MAX_RETRY_AFTER_S = 120.0


def redact_url(url: str) -> str:
    """The URL without user:password@ (never written anywhere)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def scrub(value: Any, secrets: Iterable[str | None]) -> str:
    """``str(value)`` with every secret replaced by ``***``."""
    text = str(value)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def body_text(exc: Any) -> str:
    """What an SDK's error carries of the server's answer: its parsed body, else its message."""
    body = getattr(exc, "body", None)
    return str(body if body is not None else getattr(exc, "message", exc))


def retry_after(headers: Any) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, else ``Retry-After`` as
    seconds or as an HTTP date."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    return None


class Backoff:
    """Waits between attempts: the server's Retry-After (at most ``max_retry_after_s``),
    else ``base_s * 2**attempt`` (at most ``max_s``) times a jitter in [0.75, 1.25),
    seeded, safe to share between threads."""

    def __init__(self, base_s: float, *, seed: int = 0, max_s: float = MAX_BACKOFF_S,
                 max_retry_after_s: float = MAX_RETRY_AFTER_S):
        self.base_s = base_s
        self.max_s = max_s
        self.max_retry_after_s = max_retry_after_s
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def seconds(self, attempt: int, retry_after_s: float | None = None, base_s: float | None = None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.max_retry_after_s)
        with self._lock:
            jitter = self._random.uniform(0.75, 1.25)
        return min(self.max_s, (self.base_s if base_s is None else base_s) * 2**attempt) * jitter
