"""Value checks every config shares (video QA, served models, generators): plain Python,
no YAML, so the pytest plugin's options can use the config types at load time."""

from __future__ import annotations

import math
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration is wrong; the session stops before any item runs."""


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (YAML's .nan and .inf are floats; true/false are not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(where: str, key: str, value: Any, *, zero_ok: bool) -> None:
    """A setting that must be a finite number > 0 (>= 0 with ``zero_ok``)."""
    if not (is_number(value) and (value > 0 or (zero_ok and value == 0))):
        raise ConfigError(f"{where}: {key} must be a finite number {'>=' if zero_ok else '>'} 0, got {value!r}")


def plain(value: Any) -> Any:
    """Mappings and tuples as dicts and lists, for JSON."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value
