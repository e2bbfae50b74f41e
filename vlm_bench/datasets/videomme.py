"""Video-MME: annotation rows with ``videoID``, ``duration`` (short/medium/long),
``domain``, ``sub_category``, ``task_type``, ``question_id``, ``question``, ``options``
(``["A. ...", ...]``) and ``answer`` (a letter); videos at ``<root>/<video_dir>/<videoID>.mp4``
(or ``.MP4`` / ``.mkv``: the release holds all three, as lmms-eval's loader allows),
subtitles at ``<root>/subtitle/<videoID>.srt``. A video the download lacks is reported as
missing media, not as a wrong answer."""

from __future__ import annotations

from pathlib import Path

from vlm_bench.config import DatasetConfig
from vlm_bench.datasets.common import (
    LETTERS,
    DatasetError,
    as_list,
    check_source_keys,
    first_existing,
    need,
    read_rows,
    source_setting,
)
from vlm_bench.types import Sample

SOURCE_KEYS = ("video_dir", "subtitles", "subtitle_dir", "video_ext")
CATEGORY_KEYS = ("duration", "domain", "sub_category", "task_type")
VIDEO_EXTENSIONS = (".mp4", ".MP4", ".mkv")


def load_videomme(dataset: DatasetConfig) -> list[Sample]:
    src = dataset.source
    check_source_keys(dataset.name, src, SOURCE_KEYS)
    root = dataset.media_root
    video_dir = root / source_setting(src, "video_dir", "")
    subtitle_dir = root / source_setting(src, "subtitle_dir", "subtitle")
    ext = source_setting(src, "video_ext", ".mp4")
    extensions = [ext, *(e for e in VIDEO_EXTENSIONS if e != ext)]
    use_subtitles = bool(src.get("subtitles", False))
    samples = []
    for where, row in read_rows(dataset.path):
        video_id = str(need(row, "videoID", where))
        options = as_list(need(row, "options", where), "options", where)
        answer = str(need(row, "answer", where)).strip()
        if answer not in LETTERS[: len(options)]:
            raise DatasetError(f"{where}: answer {answer!r} is not one of the option letters")
        srt = subtitle_dir / f"{video_id}.srt"
        video, missing = first_existing([video_dir / f"{video_id}{e}" for e in extensions], Path.is_file)
        samples.append(
            Sample(
                id=str(need(row, "question_id", where)),
                dataset=dataset.name,
                question=str(need(row, "question", where)),
                answer=answer,
                video=video,
                options=tuple(options),
                scorer=dataset.scorer or "mc",
                category=str(row.get("duration")) if row.get("duration") is not None else None,
                categories={k: str(row[k]) for k in CATEGORY_KEYS if row.get(k) is not None},
                cluster=video_id,
                subtitles=str(srt) if use_subtitles and srt.is_file() else None,
                source=where,
                missing_media=missing,
            )
        )
    return samples
