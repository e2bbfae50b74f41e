"""Frames fitted to the engine's context before the call: the prompt's tokens (frames x tiles
x tokens per tile, plus the text) and the answer's ``max_new_tokens`` against the context
limit, and a stated policy when they overflow:

- ``fewer-frames`` (the default): the largest number of frames that fits, chosen again by the
  item's own sampler rule (uniform stays uniform over the whole video);
- ``fewer-tiles``: tiles per frame lowered first, then fewer frames;
- ``refuse``: the item's record is an error that says by how much and what to change.

The record says what was cut and why (``ContextFit.as_dict``). Engines count tokens
(``prompt_tokens``: exact for the native InternVL processor, an estimate for a server) and
say their limit (``context_limit``): the model config for native, ``max_model_len`` from a
vLLM server's ``GET /models``, else the ``max_model_len`` setting (``--max-model-len``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from vlm_bench.types import VideoInput

CONTEXT_POLICIES = ("fewer-frames", "fewer-tiles", "refuse")


@dataclass(frozen=True)
class ContextLimit:
    tokens: int  # prompt and answer together
    source: str  # where the number came from, for the record


class ContextOverflow(Exception):
    """The item's prompt cannot fit under the policy: refused before the call."""

    def __init__(self, message: str, fit: "ContextFit"):
        super().__init__(message)
        self.fit = fit


@dataclass(frozen=True)
class ContextFit:
    """What fitting did to one item whose prompt would have overflowed."""

    policy: str
    limit: int
    source: str
    max_new_tokens: int
    tokens_before: int  # the prompt as the item asked for it
    frames_before: int
    tiles_before: int
    action: str  # "fewer-frames", "fewer-tiles", "refused"
    tokens_after: int | None = None
    frames_after: int | None = None
    tiles_after: int | None = None
    estimated: bool = False  # the engine estimated the prompt's tokens (a server), rather than counting them

    def reason(self) -> str:
        return (f"the prompt needs {self.tokens_before:,} tokens ({self.frames_before} frames x {self.tiles_before} "
                f"tile(s)) + {self.max_new_tokens} new, over the context of {self.limit:,} ({self.source})")

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "action": self.action, "limit": self.limit, "source": self.source,
                "max_new_tokens": self.max_new_tokens, "tokens_before": self.tokens_before,
                "tokens_after": self.tokens_after, "frames_before": self.frames_before,
                "frames_after": self.frames_after, "tiles_before": self.tiles_before, "tiles_after": self.tiles_after,
                "estimated": self.estimated, "reason": self.reason()}


def context_limit(engine: Any, setting: int | None) -> ContextLimit | None:
    """The engine's own limit and the ``--max-model-len`` setting: the lower one."""
    own = engine.context_limit() if hasattr(engine, "context_limit") else None
    if setting is not None and (own is None or setting < own.tokens):
        return ContextLimit(int(setting), "--max-model-len")
    return own


def fit_media(
    media: VideoInput,
    count: Callable[[VideoInput], int],
    max_new_tokens: int,
    limit: ContextLimit,
    policy: str,
    reselect: Callable[[int], VideoInput],
    estimated: bool = False,
) -> tuple[VideoInput, ContextFit | None]:
    """``media`` itself when its prompt fits; else the media the policy leaves (``reselect(k)``
    decodes ``k`` frames by the item's sampler rule) and what was done. Raises
    ``ContextOverflow`` when the policy refuses or nothing fits."""
    if policy not in CONTEXT_POLICIES:
        raise ValueError(f"unknown context policy {policy!r}; choose one of {', '.join(CONTEXT_POLICIES)}")
    budget = limit.tokens - max_new_tokens
    before = count(media)
    if before <= budget:
        return media, None
    fit = ContextFit(policy, limit.tokens, limit.source, max_new_tokens, before, len(media.frames), media.tiles,
                     "refused", estimated=estimated)
    fitted, after = media, before
    if policy == "fewer-tiles":
        while fitted.tiles > 1 and after > budget:
            fitted = replace(fitted, tiles=fitted.tiles - 1)
            after = count(fitted)
    if policy != "refuse" and after > budget and _can_cut(media):
        frames = _most_frames(fitted, count, budget)
        if frames:
            fitted = replace(reselect(frames), tiles=fitted.tiles)
            after = count(fitted)
    if policy == "refuse" or after > budget:
        hint = (f"lower --max-frames to {most}" if _can_cut(media) and (most := _most_frames(media, count, budget)) else
                "shorten the prompt or lower max_new_tokens")
        raise ContextOverflow(f"{fit.reason()}; refused before the call ({policy}): {hint}, raise the limit "
                              "(--max-model-len) where the model allows, or choose --context-policy fewer-frames", fit)
    action = "fewer-frames" if len(fitted.frames) < len(media.frames) else "fewer-tiles"
    return fitted, replace(fit, action=action, tokens_after=after, frames_after=len(fitted.frames), tiles_after=fitted.tiles)


def _can_cut(media: VideoInput) -> bool:
    """Frames of a video; not an image, nor a judge protocol's labelled stills."""
    return not media.is_image and media.frame_labels is None and len(media.frames) > 1


def _most_frames(media: VideoInput, count: Callable[[VideoInput], int], budget: int) -> int:
    """The most frames (fewer than now, at least 1) whose prompt fits; 0 when none does.
    The count grows with the frames, so a binary search over the first k frames."""
    lo, hi = 0, len(media.frames) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(replace(media, frames=media.frames[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
