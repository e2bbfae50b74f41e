"""Logging helpers."""

from __future__ import annotations

import logging


class OncePerMessage(logging.Filter):
    """Lets each distinct message of a logger through once: bitsandbytes logs the same
    warning on every int8 matmul (thousands of lines per run on a CPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, str(record.msg))
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def log_each_message_once(package: str) -> None:
    """Put a ``OncePerMessage`` filter on ``package``'s loggers (those existing now, that
    is, of the modules already imported; a logger's filters do not apply to its children)."""
    names = [package] + [n for n in logging.root.manager.loggerDict if n.startswith(package + ".")]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OncePerMessage) for f in logger.filters):
            logger.addFilter(OncePerMessage())


def redact_url_credentials_in_logs() -> None:
    """Every log record, from any logger, made without the user:password@ of the URLs in
    its message and arguments (httpx and its vendored copies log each request with its full
    URL, credentials included). Installed once, through the log-record factory."""
    from vlm_bench.utils.http import redact_text

    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts_urls", False):
        return

    def scrub(value):
        text = value if isinstance(value, str) else None
        if text is None and not isinstance(value, (int, float)):
            text = str(value)
        return redact_text(text) if text is not None and "@" in text and "://" in text else value

    def make_record(*args, **kwargs):
        record = factory(*args, **kwargs)
        if isinstance(record.msg, str) and "@" in record.msg:
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) for a in record.args)
        if record.exc_info and record.exc_info[0] is not None:  # a traceback quotes URLs too
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return record

    make_record.redacts_urls = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)
