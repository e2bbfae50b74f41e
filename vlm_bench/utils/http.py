"""HTTP helpers shared by the served-model backend and the video-generation APIs: backoff
with jitter, the server's Retry-After, URLs and messages with secrets taken out."""

from __future__ import annotations

import random
import re
import threading
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

MAX_WAIT_S = 60.0  # the longest wait between two attempts, backoff or Retry-After alike


def redact_url(url: str) -> str:
    """The URL without user:password@ (never written anywhere)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# scheme://user:password@ (or user@) in any text: what redact_url removes
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
# an option whose value is a secret: --api-key, --token, --password, --secret (not --api-key-env: a name)
_SECRET_FLAG = re.compile(r"^--?[\w-]*(key|token|secret|password|passwd)$", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with the user:password@ of every URL in it taken out."""
    return _USERINFO.sub(lambda m: m.group("scheme"), text) if "@" in text else text


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line as it may be written down: URLs without credentials, and the value of
    any option named like a secret (``--api-key X``, ``--token=X``) replaced by ``***``."""
    out: list[str] = []
    hide_next = False
    for arg in map(str, argv):
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if _SECRET_FLAG.match(flag):
            if eq:
                out.append(f"{flag}=***")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact_text(arg))
    return out


def redact_all(value: Any) -> Any:
    """A JSON-like value with every string in it passed through ``redact_text``."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_all(v) for v in value]
    return value


def clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def scrub(value: Any, secrets: Iterable[str | None]) -> str:
    """``str(value)`` with every secret replaced by ``***`` and URLs without credentials."""
    text = redact_text(str(value))
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
    """Waits between attempts: the server's Retry-After, else ``base_s * 2**attempt`` times
    a jitter in [0.75, 1.25); either at most ``max_s``. Seeded, safe to share between threads."""

    def __init__(self, base_s: float, *, seed: int = 0, max_s: float = MAX_WAIT_S):
        self.base_s = base_s
        self.max_s = max_s
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def seconds(self, attempt: int, retry_after_s: float | None = None, base_s: float | None = None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.max_s)
        with self._lock:
            jitter = self._random.uniform(0.75, 1.25)
        return min(self.max_s, (self.base_s if base_s is None else base_s) * 2**attempt * jitter)
