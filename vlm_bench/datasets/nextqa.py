"""NExT-QA (multiple choice): a CSV of ``video, frame_count, width, height, question,
answer (0-4), qid, type, a0..a4`` and a JSON map from video id to its path under the
video folder (``map_vid_vidorID.json``). The official repository (doc-doc/NExT-QA) keeps
both in ``dataset/nextqa/``; the map is looked for next to the CSV, then at the data
root (``source.video_map`` names it explicitly). A video the download lacks is reported
as missing media."""

from __future__ import annotations

import json
from pathlib import Path

from vlm_bench.config import DatasetConfig
from vlm_bench.datasets.common import LETTERS, DatasetError, check_source_keys, need, read_rows, source_setting
from vlm_bench.types import Sample

SOURCE_KEYS = ("video_map", "video_dir", "video_ext")
# NExT-QA's question types: Causal (why/how), Temporal (previous/next/present), Descriptive.
TYPE_FAMILIES = {"C": "causal", "T": "temporal", "D": "descriptive"}
MAP_FILE = "map_vid_vidorID.json"


def load_nextqa(dataset: DatasetConfig) -> list[Sample]:
    src = dataset.source
    check_source_keys(dataset.name, src, SOURCE_KEYS)
    root = dataset.media_root
    map_path = video_map_path(dataset)
    try:
        video_map = json.loads(map_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"dataset {dataset.name!r}: cannot read the video map {map_path}: {exc}") from exc
    video_dir = root / source_setting(src, "video_dir", "NExTVideo")
    ext = source_setting(src, "video_ext", ".mp4")
    samples = []
    for where, row in read_rows(dataset.path):
        video_id = str(need(row, "video", where))
        options = [str(need(row, f"a{i}", where)) for i in range(5)]
        try:
            answer = int(str(need(row, "answer", where)))
        except ValueError:
            raise DatasetError(f"{where}: answer must be an option number 0-4, got {row['answer']!r}") from None
        if not 0 <= answer < 5:
            raise DatasetError(f"{where}: answer must be an option number 0-4, got {answer}")
        rel = video_map.get(video_id)
        if rel is None:
            raise DatasetError(f"{where}: video {video_id!r} is not in {map_path.name}")
        qtype = str(need(row, "type", where))
        video = video_dir / f"{rel}{ext}"
        samples.append(
            Sample(
                id=f"{video_id}_{need(row, 'qid', where)}",
                dataset=dataset.name,
                question=str(need(row, "question", where)).strip().rstrip("?") + "?",
                answer=LETTERS[answer],
                video=str(video),
                options=tuple(f"{LETTERS[i]}. {o}" for i, o in enumerate(options)),
                scorer=dataset.scorer or "mc",
                category=qtype,
                categories={"type": qtype, "family": TYPE_FAMILIES.get(qtype[:1], "other")},
                cluster=video_id,
                source=where,
                missing_media=None if video.exists() else str(video),
            )
        )
    return samples


def video_map_path(dataset: DatasetConfig) -> Path:
    """``source.video_map`` under the root when set; else ``map_vid_vidorID.json`` next to
    the annotation CSV (the official ``dataset/nextqa/`` layout), else at the root."""
    root = dataset.media_root
    if dataset.source.get("video_map"):
        return root / str(dataset.source["video_map"])
    candidates = [Path(dataset.path).parent / MAP_FILE] if dataset.path else []
    candidates.append(root / MAP_FILE)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise DatasetError(
            f"dataset {dataset.name!r}: no {MAP_FILE} in {' or '.join(str(p.parent) for p in candidates)} "
            "(doc-doc/NExT-QA keeps it in dataset/nextqa/ beside val.csv; or set source.video_map)"
        )
    return found
