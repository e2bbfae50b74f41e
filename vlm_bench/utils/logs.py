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
