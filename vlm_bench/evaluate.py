"""One item through the pipeline: sample -> frames -> engine -> score -> record.

Plain Python: the pytest plugin, the CLI and tests share it.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Hashable, Sequence

import numpy as np

from vlm_bench.config import ConfigError, ModelConfig, RunConfig, resolve_decode, resolve_video
from vlm_bench.frame_cache import DEFAULT_SIDE, FrameCache, FrameMemory, resize_short_side
from vlm_bench.registry import adapter_class
from vlm_bench.runners import ServerUnavailable, create_engine
from vlm_bench.scoring import score_prediction
from vlm_bench.types import DecodeConfig, FrameSelection, Generation, ItemRecord, Sample, VideoConfig, VideoInput
from vlm_bench.utils.readers import FrameBudgetError, MediaError
from vlm_bench.utils.video import read_frame_folder, read_image_frames, select_frames


DEFAULT_FRAME_FOLDER_FPS = 3.0  # MVBench's frame folders
MAX_AHEAD = 16  # prefetched items waiting for their turn, at most
PREFETCH_MIN_MS = 5.0  # decodes quicker than this are not worth a background thread


def decode_frames(
    sample: Sample, video: VideoConfig, max_bytes: int | None = None
) -> tuple[tuple[np.ndarray, ...], FrameSelection]:
    """Decode the item's frames with the shared sampler (a video file, a GIF or a folder of
    frames), or read its image files; more than ``max_bytes`` of frames fail the item."""
    if sample.video is not None and os.path.isdir(sample.video):
        frames, selection = read_frame_folder(
            sample.video,
            video.max_frames,
            sample.frame_fps or DEFAULT_FRAME_FOLDER_FPS,
            video.strategy,
            video.stride,
            video.fps,
            sample.bound,
            max_bytes,
        )
    elif sample.video is not None:
        frames, selection = select_frames(
            sample.video, video.max_frames, video.strategy, video.fps, video.stride, bound=sample.bound, max_bytes=max_bytes
        )
    else:
        frames, selection = read_image_frames(list(sample.frames or ()), video.max_frames, max_bytes)
    return tuple(frames), selection


def load_media(sample: Sample, video: VideoConfig) -> VideoInput:
    """The item's frames, decoded now, as an engine takes them."""
    frames, selection = decode_frames(sample, video)
    return media_input(sample, frames, selection)


def media_input(sample: Sample, frames: tuple[np.ndarray, ...], selection: FrameSelection) -> VideoInput:
    return VideoInput(
        item_id=sample.id,
        frames=frames,
        selection=selection,
        source=sample.media_path,
        dataset=sample.dataset,
        reference=reference_image(sample),
    )


def frames_key(sample: Sample, video: VideoConfig) -> Hashable | None:
    """What decides an item's frames within a run: its media files (path, size, change
    time) and the frame settings. None when a file is missing (the reader says so)."""
    paths = [sample.video] if sample.video is not None else list(sample.frames or ())
    try:
        files = tuple((p, st.st_size, st.st_mtime_ns) for p in paths for st in (os.stat(p),))
    except (OSError, TypeError, ValueError):
        return None
    return files, sample.video is not None, video, sample.bound, sample.frame_fps


def reference_image(sample: Sample):
    return read_image_frames([sample.reference], 1)[0][0] if sample.reference else None


def describe_error(exc: Exception, sample: Sample, stage: str = "engine") -> str:
    """The error text of an item's record; ``stage`` names where a non-media, non-config
    exception came from (engine, prompt, scorer, record)."""
    if isinstance(exc, FrameBudgetError):
        return f"item {sample.id!r}: {exc}"
    if isinstance(exc, MediaError):
        return f"{exc} (item {sample.id!r}, {sample.source}); fix the path or file, or drop the item"
    if isinstance(exc, ConfigError):
        return str(exc)
    return f"{stage} error on item {sample.id!r}: {type(exc).__name__}: {exc}"


class Evaluator:
    """Holds the one engine of a session and turns items into records: one at a time, in
    batches of ``model.batch_size``, or ``run.concurrency`` at once (the openai backend's
    requests in flight), with frames decoded ahead or cached when asked.

    ``load()`` builds the engine once; if that fails, every item's record carries the
    load error instead of the session crashing, except ``ServerUnavailable`` (a server
    that is down), which propagates so the session stops."""

    def __init__(self, run: RunConfig, samples: Sequence[Sample] = ()):
        self.run = run
        self.datasets = {d.name: d for d in run.datasets}
        self._answers = {sys.intern(s.uid): s.answer for s in samples if s.answer is not None}  # the uid strings the plugin holds
        self.adapter = None
        self.load_error: str | None = None
        self.loaded = False
        self.load_count = 0  # engine loads by this evaluator: one per session (per xdist worker)
        self.load_seconds: float | None = None
        self._ready: dict[str, ItemRecord] = {}  # records generated ahead of their turn
        self._media_ahead: OrderedDict[Hashable, Future] = OrderedDict()  # frames decoding in the background
        self.memory = FrameMemory(int(run.frame_memory_gb * 1024**3))  # frames shared by questions about one video
        self.decodes = 0  # frame decodes (or disk-cache reads) this evaluator did
        self.decode_ms: float | None = None  # their recent duration (moving average)
        self._video_configs: dict[Hashable, VideoConfig] = {}
        self.max_item_bytes = int(run.item_frames_gb * 1024**3)
        self._item_bytes = 0  # the last decoded item's frames: how many more fit ahead
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: dict[str, Future] = {}  # items submitted ahead -> their record
        self._requests: ThreadPoolExecutor | None = None
        self.cache: FrameCache | None = None
        if run.frame_cache:
            try:
                side = int(run.model.vision_args.get("short_side", DEFAULT_SIDE))
                self.cache = FrameCache(run.frame_cache, int(run.frame_cache_gb * 1024**3), side)
            except Exception as exc:  # every item's record carries it; the session still ends with a summary
                self.load_error = f"frame cache {run.frame_cache!r} cannot be used: {type(exc).__name__}: {exc}"

    def load(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        if self.load_error is not None:
            return
        self.load_count += 1
        random.seed(self.run.seed)
        np.random.seed(self.run.seed)
        extra = {"answers": self._answers} if self.run.backend == "mock" else {}
        started = time.perf_counter()
        try:
            engine = create_engine(self.run.backend, self.run.model, quant=self.run.quant, seed=self.run.seed, **extra)
            adapter = adapter_class(self.run.model.family)(self.run.model, engine)
            adapter.load()
        except ServerUnavailable:
            self.loaded = False  # nothing to report per item: the session stops
            raise
        except Exception as exc:  # reported on every item; the session goes on to write them
            self.load_error = f"backend {self.run.backend!r} failed to load model {self.run.model.name!r}: {exc}"
            return
        self.adapter = adapter
        self.load_seconds = time.perf_counter() - started

    # ------------------------------------------------------------ frames

    def media(self, sample: Sample) -> VideoInput:
        """The item's frames: shared with an earlier question about the same video (same
        frame settings), decoded ahead by ``prefetch``, from the frame cache, or now."""
        video = self.video_config(sample)
        key = frames_key(sample, video)
        if key is None:
            frames, selection = self._decode(sample, video)
        elif (ahead := self._media_ahead.pop(key, None)) is not None:
            frames, selection = ahead.result()
        elif (shared := self.memory.get(key)) is not None:
            frames, selection = shared
        else:
            frames, selection = self._decode_and_keep(sample, video, key)
        return media_input(sample, frames, selection)

    def _decode_and_keep(self, sample: Sample, video: VideoConfig, key: Hashable) -> tuple[tuple[np.ndarray, ...], FrameSelection]:
        frames, selection = self._decode(sample, video)
        self.memory.put(key, (frames, selection), sum(f.nbytes for f in frames))
        return frames, selection

    def _decode(self, sample: Sample, video: VideoConfig) -> tuple[tuple[np.ndarray, ...], FrameSelection]:
        started = time.perf_counter()
        frames, selection = self._decode_or_read(sample, video)
        took_ms = (time.perf_counter() - started) * 1000
        self.decode_ms = took_ms if self.decode_ms is None else 0.8 * self.decode_ms + 0.2 * took_ms
        self._item_bytes = sum(f.nbytes for f in frames)
        return frames, selection

    def _decode_or_read(self, sample: Sample, video: VideoConfig) -> tuple[tuple[np.ndarray, ...], FrameSelection]:
        self.decodes += 1
        if self.cache is None:
            return decode_frames(sample, video, self.max_item_bytes)
        try:
            key = self.cache.key(sample, video)
        except OSError:  # missing media: let the reader say so
            return decode_frames(sample, video, self.max_item_bytes)
        hit = self.cache.get(key)
        if hit is not None:
            return tuple(hit[0]), hit[1]
        frames, selection = decode_frames(sample, video, self.max_item_bytes)
        frames = tuple(resize_short_side(f, self.cache.side) for f in frames)
        self.cache.put(key, frames, selection)
        return frames, selection

    def prefetch(self, samples: Sequence[Sample]) -> None:
        """Start decoding these items' frames in a background thread while the engine
        works; items whose frames are already decoded, or on their way, are skipped. Only
        where it pays: once decodes are seen to take under ``PREFETCH_MIN_MS``, frames are
        decoded in turn (the thread's hand-off and its contention with the engine cost
        about what it would save)."""
        if self.decode_ms is not None and self.decode_ms < PREFETCH_MIN_MS:
            return
        for sample in samples:
            if sample.uid in self._ready:
                continue
            try:
                video = self.video_config(sample)
            except ConfigError:  # the item reports it in its own turn
                continue
            key = frames_key(sample, video)
            if key is None or key in self._media_ahead or key in self.memory:
                continue
            if self._item_bytes * (len(self._media_ahead) + 2) > self.max_item_bytes:
                break  # large items: the one running and those ahead stay within one item's bound
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlm-bench-prefetch")
            self._media_ahead[key] = self._executor.submit(self._decode_and_keep, sample, video, key)
            while len(self._media_ahead) > MAX_AHEAD:  # never consumed (its item ran elsewhere): let it go
                self._media_ahead.popitem(last=False)[1].cancel()

    def close(self) -> None:
        for pool in (self._requests, self._executor):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._requests = self._executor = None
        self._media_ahead.clear()
        self._in_flight.clear()
        self.memory.clear()

    def model_config(self, dataset: str) -> ModelConfig:
        """The model config as one dataset sees it (a dataset may name its own
        ``vlmeval_dataset``)."""
        name = self.datasets[dataset].vlmeval_dataset
        return replace(self.run.model, vlmeval_dataset=name) if name else self.run.model

    def video_config(self, sample: Sample) -> VideoConfig:
        """The item's frame settings; resolved once per dataset and item overrides."""
        memo_key: Hashable | None = (sample.dataset, tuple(sample.video_overrides.items()))
        try:
            return self._video_configs[memo_key]
        except KeyError:
            pass
        except TypeError:  # an unhashable override value: resolved every time
            memo_key = None
        dataset = self.datasets[sample.dataset]
        video = resolve_video(
            self.run.model.video,
            dataset.video,
            sample.video_overrides,
            self.run.video_overrides,
            where=f"frame settings of item {sample.id!r} ({sample.source})",
        )
        if memo_key is not None:
            self._video_configs[memo_key] = video
        return video

    def decode_config(self, sample: Sample) -> DecodeConfig:
        defaults = self.adapter.default_decode() if self.adapter else {}
        return resolve_decode(
            defaults, self.run.model.decode, self.datasets[sample.dataset].decode, self.run.decode_overrides
        )

    def evaluate(self, sample: Sample, ahead: Sequence[Sample] = ()) -> ItemRecord:
        """One item's record. With ``ahead`` (the next items of the run), they are generated
        in the same batch, or with ``run.concurrency > 1`` submitted to run alongside it,
        and their records wait for their own call."""
        if sample.uid in self._ready:
            return self._ready.pop(sample.uid)
        if self.run.concurrency > 1:
            return self._evaluate_in_flight(sample, ahead)
        first, *rest = self.evaluate_many([sample, *[s for s in ahead if s.uid not in self._ready]])
        self._ready.update((r_sample.uid, record) for r_sample, record in zip(ahead, rest))
        return first

    def _evaluate_in_flight(self, sample: Sample, ahead: Sequence[Sample]) -> ItemRecord:
        """Keep this item and the next ones in flight (``run.concurrency`` threads, each
        item from frames to record) and wait for this one; the window slides as each test
        asks for its item, so a slow item does not hold the others back."""
        self.load()  # here, not in a thread: a server that is down stops the session at once
        if self._requests is None:
            self._requests = ThreadPoolExecutor(max_workers=self.run.concurrency, thread_name_prefix="vlm-bench-request")
        for item in (sample, *ahead):
            if item.uid not in self._in_flight:
                self._in_flight[item.uid] = self._requests.submit(lambda s: self.evaluate_many([s])[0], item)
        return self._in_flight.pop(sample.uid).result()

    def evaluate_many(self, samples: Sequence[Sample]) -> list[ItemRecord]:
        """Records for ``samples`` in order; items with the same decode settings go to the
        engine ``model.batch_size`` at a time. Whatever fails, each item gets its record:
        an exception becomes that item's error."""
        self.load()
        records: dict[str, ItemRecord] = {}
        ready: list[tuple[Sample, VideoInput, str, DecodeConfig]] = []
        for sample in samples:
            try:
                decode = self.decode_config(sample)
            except Exception as exc:
                records[sample.uid] = self._record(sample, None, None, DecodeConfig(), describe_error(exc, sample))
                continue
            if sample.load_error is not None or sample.missing_media is not None:
                records[sample.uid] = self._record(sample, None, None, decode, sample.load_error)
                continue
            if self.load_error is not None:
                records[sample.uid] = self._record(sample, None, None, decode, self.load_error)
                continue
            try:
                media = self.media(sample)
            except Exception as exc:
                records[sample.uid] = self._record(sample, None, None, decode, describe_error(exc, sample, "frame"))
                continue
            try:
                prompt = self.adapter.build_prompt(sample, self.datasets[sample.dataset], media)
            except Exception as exc:
                records[sample.uid] = self._record(sample, media, None, decode, describe_error(exc, sample, "prompt"))
                continue
            ready.append((sample, media, prompt, decode))
        size = max(1, self.run.model.batch_size)
        groups: dict[tuple[DecodeConfig, str], list[tuple[Sample, VideoInput, str, DecodeConfig]]] = {}
        for entry in ready:
            groups.setdefault((entry[3], entry[0].dataset), []).append(entry)
        for group in groups.values():
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                try:
                    for record in self._generate(chunk):
                        records[f"{record.dataset}/{record.id}"] = record
                except ServerUnavailable:
                    raise
                except Exception as exc:  # record building itself failed
                    for sample, media, _, decode in chunk:
                        if sample.uid not in records:
                            records[sample.uid] = self._record(sample, media, None, decode, describe_error(exc, sample, "record"))
        return [records[s.uid] for s in samples]

    def _generate(self, chunk: Sequence[tuple[Sample, VideoInput, str, DecodeConfig]]) -> list[ItemRecord]:
        decode = chunk[0][3]
        started = time.perf_counter()
        try:
            gens = self.adapter.generate(
                [(s, m, p) for s, m, p, _ in chunk], decode, self.model_config(chunk[0][0].dataset)
            )
        except ServerUnavailable:
            raise
        except Exception as exc:
            if len(chunk) > 1:  # find the item that fails; the others still get answers
                return [record for one in chunk for record in self._generate([one])]
            sample, media, prompt, _ = chunk[0]
            return [self._record(sample, media, None, decode, describe_error(exc, sample), prompt)]
        elapsed_ms = (time.perf_counter() - started) * 1000
        return [
            self._record(s, m, g if g.latency_ms is not None else replace(g, latency_ms=elapsed_ms), d, None, p)
            for (s, m, p, d), g in zip(chunk, gens)
        ]

    def _record(
        self,
        sample: Sample,
        media: VideoInput | None,
        gen: Generation | None,
        decode: DecodeConfig,
        error: str | None,
        prompt: str | None = None,
    ) -> ItemRecord:
        return item_record(self.run, sample, media, gen, decode, error, prompt)


def item_record(
    run: RunConfig,
    sample: Sample,
    media: VideoInput | None,
    gen: Generation | None,
    decode: DecodeConfig,
    error: str | None,
    prompt: str | None = None,
) -> ItemRecord:
    """The item's record; a scorer that raises makes it an error record. ``prompt`` is the
    text sent with the frames (an engine that changes it reports what the model saw)."""
    score = None
    if gen is not None and sample.answer is not None and error is None:
        try:
            score = score_prediction(sample.scorer, gen.text, sample.answer, sample.options, sample.scorer_args)
        except Exception as exc:
            error = describe_error(exc, sample, "scorer")
    if error is not None:
        passed: bool | None = False
    elif sample.answer is None or sample.missing_media is not None:
        passed = None  # unscored (nothing checkable to compare with) or never asked (media missing)
    else:
        passed = bool(score and score.passed)
    return ItemRecord(
        id=sample.id,
        dataset=sample.dataset,
        model=run.model.name,
        backend=run.backend,
        quant=run.quant,
        category=sample.category,
        question=sample.question,
        answer=sample.answer,
        prediction=gen.text if gen else None,
        scorer=sample.scorer,
        score=score.value if score else None,
        passed=passed,
        latency_ms=round(gen.latency_ms, 3) if gen and gen.latency_ms is not None else None,
        truncated=bool(gen and gen.truncated),
        tokens=gen.tokens if gen else None,
        error=error,
        video=media.selection.as_dict() if media else None,
        decode=decode.as_dict(),
        categories=dict(sample.categories),
        cluster=sample.cluster_key,
        media=sample.media_path,
        meta=dict(sample.meta),
        prompt=gen.prompt if gen is not None and gen.prompt is not None else prompt,
        raw_response=(gen.text if gen.raw_text is None else gen.raw_text) if gen else None,
        extracted=score.extracted if score else None,
        missing_media=sample.missing_media,
    )


def error_record(run: RunConfig, sample: Sample, error: str) -> ItemRecord:
    """The record of an item that never reached the pipeline (the evaluator itself failed)."""
    return item_record(run, sample, None, None, DecodeConfig(), error)
