"""One item through the pipeline: sample -> frames -> engine -> score -> record.

Plain Python: the pytest plugin, the CLI and tests share it.
"""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from vlm_bench.config import ConfigError, ModelConfig, RunConfig, resolve_decode
from vlm_bench.config.preset import tiles_for
from vlm_bench.context_fit import ContextFit, ContextOverflow, context_limit, fit_media
from vlm_bench.deadline import DaemonPool, Deadline, ItemTimeout
from vlm_bench.frame_cache import DEFAULT_SIDE, FrameCache
from vlm_bench.frames import FrameSettings, FrameSource
from vlm_bench.registry import adapter_class
from vlm_bench.runners import ServerUnavailable, create_engine
from vlm_bench.answer_judge import AnswerJudge, score_with_judge
from vlm_bench.scoring import SCORER_VERSION
from vlm_bench.types import DecodeConfig, Generation, ItemRecord, Sample, VideoConfig, VideoInput
from vlm_bench.utils.readers import FrameBudgetError, MediaError
from vlm_bench.graded_videos import answered_with_cache, judge_response_cache, rules_record
from vlm_bench.record_warnings import record_warnings


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
        self.frame_settings = FrameSettings(run)
        self._in_flight: dict[str, Future] = {}  # items submitted ahead -> their record
        self._requests: ThreadPoolExecutor | None = None
        self.deadline = Deadline(run.item_timeout_s) if run.item_timeout_s else None
        self.judge = AnswerJudge(run.judge, seed=run.seed) if run.judge else None
        self.responses = judge_response_cache(run)
        cache = None
        if run.frame_cache:
            try:
                side = int(run.model.vision_args.get("short_side", DEFAULT_SIDE))
                cache = FrameCache(run.frame_cache, int(run.frame_cache_gb * 1024**3), side)
            except Exception as exc:  # every item's record carries it; the session still ends with a summary
                self.load_error = f"frame cache {run.frame_cache!r} cannot be used: {type(exc).__name__}: {exc}"
        self.frames = FrameSource(int(run.frame_memory_gb * 1024**3), int(run.item_frames_gb * 1024**3), cache)

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
        return self.presented(self.frames.media(sample, self.video_config(sample)))

    def prefetch(self, samples: Sequence[Sample]) -> None:
        """Decode the frames of these upcoming items in the background (``FrameSource.prefetch``)."""
        self.frames.prefetch([s for s in samples if s.uid not in self._ready], self._video_config_or_none)

    def _video_config_or_none(self, sample: Sample) -> VideoConfig | None:
        try:
            return self.video_config(sample)
        except ConfigError:  # the item reports it in its own turn
            return None

    def close(self) -> None:
        if self.deadline is not None:
            self.deadline.close()
        if self._requests is not None:  # an abandoned item's thread is not waited for
            self._requests.shutdown(wait=self.deadline is None, cancel_futures=True)
            self._requests = None
        self._in_flight.clear()
        self.frames.close()

    def model_config(self, dataset: str) -> ModelConfig:
        """The model config as one dataset sees it (a dataset may name its own
        ``vlmeval_dataset``)."""
        name = self.datasets[dataset].vlmeval_dataset
        return replace(self.run.model, vlmeval_dataset=name) if name else self.run.model

    def video_config(self, sample: Sample) -> VideoConfig:
        """The item's frame settings (``frames.FrameSettings``)."""
        return self.frame_settings.of(sample)

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
        ahead = [s for s in ahead if s.uid not in self._ready]
        if self.deadline is not None:
            self.load()  # here, not in the item's thread: a server that is down stops the session at once
            try:
                first, *rest = self.deadline.run(self.evaluate_many, [sample, *ahead])
            except ItemTimeout as exc:
                return timed_out_record(self, sample, exc)
        else:
            first, *rest = self.evaluate_many([sample, *ahead])
        self._ready.update((r_sample.uid, record) for r_sample, record in zip(ahead, rest))
        return first

    def _evaluate_in_flight(self, sample: Sample, ahead: Sequence[Sample]) -> ItemRecord:
        """Keep this item and the next ones in flight (``run.concurrency`` threads, each
        item from frames to record) and wait for this one; the window slides as each test
        asks for its item, so a slow item does not hold the others back."""
        self.load()  # here, not in a thread: a server that is down stops the session at once
        if self._requests is None:  # with --item-timeout, threads that can be abandoned (daemons)
            pool = DaemonPool if self.deadline is not None else ThreadPoolExecutor
            self._requests = pool(max_workers=self.run.concurrency, thread_name_prefix="vlm-bench-request")
        for item in (sample, *ahead):
            if item.uid not in self._in_flight:
                self._in_flight[item.uid] = self._requests.submit(lambda s: self.evaluate_many([s])[0], item)
                if self.deadline is not None:
                    self.deadline.started(self._in_flight[item.uid])
        future = self._in_flight.pop(sample.uid)
        if self.deadline is None:
            return future.result()
        try:
            return self.deadline.wait(future)
        except ItemTimeout as exc:
            self._requests.replace_stuck()  # the abandoned request keeps its thread; the others keep theirs
            return timed_out_record(self, sample, exc)

    def evaluate_many(self, samples: Sequence[Sample]) -> list[ItemRecord]:
        """Records for ``samples`` in order; items with the same decode settings go to the
        engine ``model.batch_size`` at a time. Whatever fails, each item gets its record:
        an exception becomes that item's error. Each record times its stages (``STAGES``)."""
        self.load()
        records: dict[str, ItemRecord] = {}
        ready: list[Ready] = []
        for sample in samples:
            try:
                decode = self.decode_config(sample)
            except Exception as exc:
                records[sample.uid] = self._record(sample, None, None, DecodeConfig(), describe_error(exc, sample))
                continue
            if sample.load_error is not None or sample.missing_media is not None:
                records[sample.uid] = self._record(sample, None, None, decode, sample.load_error)
                continue
            if sample.scorer == "rules":  # measured on the video: no engine
                records[sample.uid] = rules_record(self.run, sample, decode)
                continue
            if self.load_error is not None:
                records[sample.uid] = self._record(sample, None, None, decode, self.load_error)
                continue
            try:
                media, wait_ms, decode_ms = self.frames.media_timed(sample, self.video_config(sample))
                media = self.presented(media)
            except Exception as exc:
                records[sample.uid] = self._record(sample, None, None, decode, describe_error(exc, sample, "frame"))
                continue
            started = time.perf_counter()
            try:
                prompt = self.adapter.build_prompt(sample, self.datasets[sample.dataset], media)
            except Exception as exc:
                records[sample.uid] = self._record(sample, media, None, decode, describe_error(exc, sample, "prompt"))
                continue
            try:
                media, prompt, context = fit_context(self, sample, media, prompt, decode)
            except ContextOverflow as exc:
                records[sample.uid] = self._record(sample, media, None, decode, f"item {sample.id!r}: {exc}", context=exc.fit)
                continue
            timing = {"frames_wait_ms": wait_ms, "frames_decode_ms": decode_ms,
                      "prompt_ms": (time.perf_counter() - started) * 1000}
            ready.append(Ready(sample, media, prompt, decode, timing, context))
        size = max(1, self.run.model.batch_size)
        groups: dict[tuple[DecodeConfig, str, str | None], list[Ready]] = {}
        for entry in ready:
            groups.setdefault((entry.decode, entry.sample.dataset, entry.sample.system_prompt), []).append(entry)
        for group in groups.values():
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                try:
                    for record in self._generate(chunk):
                        records[f"{record.dataset}/{record.id}"] = record
                except ServerUnavailable:
                    raise
                except Exception as exc:  # record building itself failed
                    for entry in chunk:
                        if entry.sample.uid not in records:
                            error = describe_error(exc, entry.sample, "record")
                            records[entry.sample.uid] = self._record(entry.sample, entry.media, None, entry.decode, error)
        return [records[s.uid] for s in samples]

    def presented(self, media: VideoInput) -> VideoInput:
        """The frames with the label and tiles the dataset's --preset recipe asks for."""
        return presented(media, self.datasets.get(media.dataset))

    def _generate(self, chunk: Sequence[Ready]) -> list[ItemRecord]:
        if self.responses is not None:  # graded videos: answers already given are not asked again
            return answered_with_cache(self.responses, chunk, self._generate_now, self._record)
        return self._generate_now(chunk)

    def _generate_now(self, chunk: Sequence[Ready]) -> list[ItemRecord]:
        decode = chunk[0].decode
        started = time.perf_counter()
        model_cfg = self.model_config(chunk[0].sample.dataset)
        if chunk[0].sample.system_prompt is not None:  # a judge protocol's own system message
            model_cfg = replace(model_cfg, system_prompt=chunk[0].sample.system_prompt)
        try:
            gens = self.adapter.generate([(r.sample, r.media, r.prompt) for r in chunk], decode, model_cfg)
        except ServerUnavailable:
            raise
        except Exception as exc:
            if len(chunk) > 1:  # find the item that fails; the others still get answers
                return [record for one in chunk for record in self._generate_now([one])]
            r = chunk[0]
            return [self._record(r.sample, r.media, None, decode, describe_error(exc, r.sample), r.prompt, r.timing, r.context)]
        elapsed_ms = (time.perf_counter() - started) * 1000
        records = []
        for r, gen in zip(chunk, gens):
            if gen.latency_ms is None:
                gen = replace(gen, latency_ms=elapsed_ms)
            timing = {**r.timing, **(gen.timing or {}), "generate_ms": elapsed_ms}
            if len(chunk) > 1:
                timing["batch"] = len(chunk)
            records.append(self._record(r.sample, r.media, gen, r.decode, None, r.prompt, timing, r.context))
        return records

    def _record(
        self,
        sample: Sample,
        media: VideoInput | None,
        gen: Generation | None,
        decode: DecodeConfig,
        error: str | None,
        prompt: str | None = None,
        timing: Mapping[str, float] | None = None,
        context: ContextFit | None = None,
    ) -> ItemRecord:
        return item_record(self.run, sample, media, gen, decode, error, prompt, timing, self.judge, context)


@dataclass(frozen=True)
class Ready:
    """An item ready for the engine: its frames, prompt, decode settings and stage times so far."""

    sample: Sample
    media: VideoInput
    prompt: str
    decode: DecodeConfig
    timing: Mapping[str, float]
    context: ContextFit | None = None  # what fitting the context cut


def item_record(
    run: RunConfig,
    sample: Sample,
    media: VideoInput | None,
    gen: Generation | None,
    decode: DecodeConfig,
    error: str | None,
    prompt: str | None = None,
    timing: Mapping[str, float] | None = None,
    judge: AnswerJudge | None = None,
    context: ContextFit | None = None,
) -> ItemRecord:
    """The item's record; a scorer that raises makes it an error record. ``prompt`` is the
    text sent with the frames (an engine that changes it reports what the model saw);
    ``timing`` the stages so far, to which scoring is added; ``judge`` reads the answers
    the rules cannot."""
    score = None
    warnings = record_warnings(run, media, gen, decode)
    if context is not None and context.action != "refused":
        warnings["context_cut"] = (f"{context.reason()}: {context.action} under --context-policy {context.policy}, "
                                   f"{context.frames_after} frames x {context.tiles_after} tile(s), {context.tokens_after:,} tokens")
    if warnings.get("response_cut"):  # what is scored is what the record keeps, so a rescore agrees
        cap = run.max_response_chars
        gen = replace(gen, text=gen.text[:cap], raw_text=(gen.raw_text if gen.raw_text is not None else gen.text)[:cap],
                      truncated=True)
    started = time.perf_counter()
    judged = None
    if gen is not None and sample.answer is not None and error is None:
        try:
            score, judged = score_with_judge(sample.scorer, gen.text, sample.answer, sample.options, sample.scorer_args,
                                             sample.question, judge)
        except Exception as exc:
            error = describe_error(exc, sample, "scorer")
    if timing is not None:
        timing = {k: round(v, 3) for k, v in {**timing, "score_ms": (time.perf_counter() - started) * 1000}.items()}
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
        timing=timing,
        warnings=warnings or None,
        options=tuple(sample.options) or None,
        scorer_args=dict(sample.scorer_args) or None,
        scorer_version=SCORER_VERSION if sample.answer is not None else None,
        judge=judged,
        preset=preset_of(run, sample.dataset),
        context=context.as_dict() if context is not None else None,
    )


def fit_context(ev: Evaluator, sample: Sample, media: VideoInput, prompt: str, decode: DecodeConfig):
    """(media, prompt, what was cut or None): the frames fitted to the engine's context by
    ``run.context_policy`` before the call (context_fit); raises ContextOverflow."""
    engine = ev.adapter.engine
    limit = context_limit(engine, ev.run.max_model_len)
    if limit is None or not hasattr(engine, "prompt_tokens"):
        return media, prompt, None
    cfg = ev.model_config(sample.dataset)
    if sample.system_prompt is not None:
        cfg = replace(cfg, system_prompt=sample.system_prompt)
    reselect = lambda k: ev.presented(ev.frames.media(sample, replace(ev.video_config(sample), max_frames=k)))  # noqa: E731
    fitted, fit = fit_media(media, lambda m: engine.prompt_tokens(m, prompt, cfg), decode.max_new_tokens, limit,
                            ev.run.context_policy, reselect, getattr(engine, "tokens_estimated", False))
    if fit is not None:
        prompt = ev.adapter.build_prompt(sample, ev.datasets[sample.dataset], fitted)
    return fitted, prompt, fit


def presented(media: VideoInput, dataset) -> VideoInput:
    if dataset is None or (dataset.frame_label is None and not dataset.tiles):
        return media
    return replace(media, frame_label=dataset.frame_label or media.frame_label, tiles=tiles_for(dataset.tiles, len(media.frames)))


def preset_of(run: RunConfig, dataset: str) -> dict[str, Any] | None:
    """The record's account of the --preset recipe its dataset was sent with."""
    for d in run.datasets:
        if d.name == dataset and d.preset:
            return {k: d.preset[k] for k in ("name", "recipe", "source")}
    return None


def timed_out_record(ev: Evaluator, sample: Sample, exc: ItemTimeout) -> ItemRecord:
    try:
        decode = ev.decode_config(sample)
    except Exception:
        decode = DecodeConfig()
    return ev._record(sample, None, None, decode, f"item {sample.id!r}: {exc}")


def error_record(run: RunConfig, sample: Sample, error: str) -> ItemRecord:
    """The record of an item that never reached the pipeline (the evaluator itself failed)."""
    return item_record(run, sample, None, None, DecodeConfig(), error)
