"""What the dataset loaders share: annotation readers and error reporting."""

from __future__ import annotations

import ast
import csv
import json
import string
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

LETTERS = string.ascii_uppercase


class DatasetError(ValueError):
    """A dataset file is malformed; names the file and the row or line."""


def read_rows(path: str | Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(``"<file>:<row>"``, row) from a JSON list, JSONL, CSV, TSV or Parquet annotation file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pandas as pd
        except ImportError as exc:
            raise DatasetError(f"{path}: reading Parquet needs pandas and pyarrow: pip install pandas pyarrow") from exc
        for i, row in enumerate(pd.read_parquet(path).to_dict("records"), start=1):
            yield f"{path}:row {i}", row
        return
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        if isinstance(data, dict):  # {"data": [...]} or {id: row}
            data = data.get("data", list(data.values()))
        if not isinstance(data, list):
            raise DatasetError(f"{path}: expected a list of annotation rows")
        for i, row in enumerate(data):
            yield f"{path}:[{i}]", row
    elif suffix == ".jsonl":
        for i, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield f"{path}:{i}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{i}: not valid JSON ({exc.msg})") from exc
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
        for i, row in enumerate(reader, start=2):  # line 1 is the header
            yield f"{path}:{i}", row
    else:
        raise DatasetError(f"{path}: unsupported annotation file type {suffix!r} (json, jsonl, csv, tsv, parquet)")


def need(row: Mapping[str, Any], key: str, where: str) -> Any:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DatasetError(f"{where}: missing {key!r}")
    return value


def as_list(value: Any, key: str, where: str) -> list[str]:
    """A list, or its string form as CSV/TSV/Parquet exports write it ("['A. x', 'B. y']")."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise DatasetError(f"{where}: {key!r} is not a list: {value[:60]!r}") from exc
    if hasattr(value, "tolist"):  # numpy arrays from Parquet
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise DatasetError(f"{where}: {key!r} must be a non-empty list")
    return [str(v) for v in value]


def source_setting(settings: Mapping[str, Any], key: str, default: Any) -> Any:
    return settings.get(key, default) if settings.get(key) is not None else default


def check_source_keys(dataset_name: str, settings: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise DatasetError(
            f"dataset {dataset_name!r}: unknown source setting {unknown[0]!r} (allowed: {', '.join(allowed)})"
        )


def first_existing(candidates: Sequence[Path], exists: Callable[[Path], bool] = Path.exists) -> tuple[str, str | None]:
    """Where an item's media is: the first of ``candidates`` that exists, and None; or,
    when none does, the first candidate twice (the path the download lacks: the item is
    reported as missing media)."""
    for path in candidates:
        if exists(path):
            return str(path), None
    return str(candidates[0]), str(candidates[0])
