"""The items of a grading run that need more than an engine call: rule scores measured
on the video (``rules_record``, no model), and the judge's answers kept on disk so a
re-grade asks nothing twice (``judge_response_cache``)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Sequence

from vlm_bench.config import RunConfig
from vlm_bench.types import DecodeConfig, Generation, ItemRecord, Sample
from vlm_bench.video_rules import RULES_VERSION, score_task_media


GRADED_KIND = "vmevalkit-output"  # datasets.vmevalkit_outputs.KIND: a generated video a judge grades


def judge_response_cache(run: RunConfig):
    """A ResponseCache for runs that grade generated videos (unless a dataset's source says
    ``cache: false``): keyed by the judge, what it is shown and asked, and decode settings."""
    graded = [d for d in run.datasets if d.format == "vmevalkit-outputs"]
    if not graded or not all(d.source.get("cache", True) for d in graded):
        return None
    from vlm_bench.config import cache_root
    from vlm_bench.response_cache import ResponseCache

    judge = {"model": run.model.as_dict(), "backend": run.backend, "quant": run.quant}
    return ResponseCache(cache_root() / "judge-answers", judge)


def rules_record(run: RunConfig, sample: Sample, decode: DecodeConfig) -> ItemRecord:
    """The record of a rule-scored video (video_rules): the verdict ("pass", "fail", or
    none where the domain cannot be judged from its final frame) against the expected one,
    the overall score, and every dimension in ``meta.rules``."""
    started = time.perf_counter()
    scores, error = None, None
    try:
        scores = score_task_media(sample.video if sample.video is not None else list(sample.frames or ()),
                                  sample.meta["question_dir"], sample.meta["domain"], sample.meta.get("question_data"))
    except Exception as exc:
        error = f"rule scores of item {sample.id!r} ({sample.media_path}): {type(exc).__name__}: {exc}"
    verdict = None if scores is None or scores.passed is None else ("pass" if scores.passed else "fail")
    passed = False if error else (None if verdict is None else verdict == sample.answer)
    return ItemRecord(
        id=sample.id, dataset=sample.dataset, model=run.model.name, backend=run.backend, quant=run.quant,
        category=sample.category, question=sample.question, answer=sample.answer, prediction=verdict,
        scorer=sample.scorer, score=None if scores is None or scores.overall is None else round(scores.overall, 4),
        passed=passed, latency_ms=None, truncated=False, tokens=None, error=error, video=None, decode=decode.as_dict(),
        categories=dict(sample.categories), cluster=sample.cluster_key, media=sample.media_path,
        meta={**sample.meta, "rules": scores.as_dict() if scores else None}, extracted=verdict,
        timing={"score_ms": round((time.perf_counter() - started) * 1000, 3)},
        scorer_version=RULES_VERSION,
    )


def answered_with_cache(cache: Any, chunk: Sequence[Any], generate: Callable[[Sequence[Any]], list[ItemRecord]],
                        record: Callable[..., ItemRecord]) -> list[ItemRecord]:
    """Records for a chunk of ready items (evaluate.Ready): a graded item the judge already
    answered from the cache (``meta.judge_cached``), the rest from ``generate``, whose
    answers are then kept."""
    keys = {r.sample.uid: cache.key(r.sample, r.media, r.prompt, r.decode) if r.sample.meta.get("kind") == GRADED_KIND
            else None for r in chunk}
    cached = {uid: gen for uid, key in keys.items() if (gen := cache.get(key, uid)) is not None}
    records = [record(replace(r.sample, meta={**r.sample.meta, "judge_cached": True}), r.media,
                      replace(cached[r.sample.uid], id=r.sample.id), r.decode, None, r.prompt, r.timing)
               for r in chunk if r.sample.uid in cached]
    rest = [r for r in chunk if r.sample.uid not in cached]
    fresh = generate(rest) if rest else []
    for done, r in zip(fresh, rest):
        if done.error is None and done.prediction is not None:
            cache.put(keys[r.sample.uid], Generation(id=done.id, text=done.prediction, tokens=done.tokens,
                                                     truncated=done.truncated, raw_text=done.raw_response, prompt=done.prompt))
    return records + fresh
