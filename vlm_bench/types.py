"""Small frozen records passed between the dataset, sampler, engines, scorers and writer."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # numpy is not imported at run time: the pytest plugin loads this module in every session
    import numpy as np

FRAME_STRATEGIES = ("uniform", "interior", "stride", "fps")
DEFAULT_FRAME_LABEL = "Frame{index}: "  # InternVL's model card and -hf processor: "Frame1: <image>"
MAX_FRAMES = 1024  # frames per item, at most (InternVL3's context holds about 128 at 256 tokens each)
SEED_RANGE = (0, 2**32 - 1)  # what numpy and torch accept
BACKENDS = ("native", "vlmeval", "openai", "mock")
QUANTIZATIONS = ("none", "int8", "int4")
# Where an item's time goes, in milliseconds (the record's ``timing``): waiting for its
# frames (prefetched or decoded now), decoding them, building the prompt, the processor
# (resize, tiles, tokens; a served model: encoding the request), prefill (to the first new
# token), decoding the new tokens, the whole engine call, and scoring. Engine stages are
# shared by the items of one batch. GPU stages are synchronised before they are timed.
TIMING_FIELDS = ("latency_ms", "timing")  # what differs between two runs of the same item
STAGES = ("frames_wait_ms", "frames_decode_ms", "prompt_ms", "processor_ms", "prefill_ms", "decode_ms",
          "generate_ms", "score_ms")


@dataclass(frozen=True)
class VideoConfig:
    """How frames are chosen from one video, and what is done to them before a model sees
    them (a reference that saves its frames as JPEG files: ``jpeg_quality``)."""

    max_frames: int = 32
    strategy: str = "uniform"
    fps: float | None = None
    stride: int | None = None
    jpeg_quality: int | None = None  # each frame goes through Pillow's JPEG encoder at this quality and back
    bounds: bool = True  # False: an item's start/end are ignored and the whole video is sampled

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_frames": self.max_frames, "strategy": self.strategy, "fps": self.fps, "stride": self.stride}
        if self.jpeg_quality is not None:  # only when set, so records and cache keys of other runs stay as they were
            out["jpeg_quality"] = self.jpeg_quality
        if not self.bounds:
            out["bounds"] = False
        return out


@dataclass(frozen=True)
class DecodeConfig:
    """Generation settings; greedy (temperature 0) unless a config says otherwise."""

    temperature: float = 0.0
    max_new_tokens: int = 1024
    stop: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_new_tokens": self.max_new_tokens, "stop": list(self.stop)}

    def cut_at_stop(self, text: str) -> tuple[str, bool]:
        """``text`` cut before the stop strings found in it, and whether one was (engines
        and servers differ on whether a stop string stays in the output)."""
        stopped = False
        for stop in self.stop:
            if stop in text:
                text, stopped = text[: text.index(stop)], True
        return text, stopped


# The empty mapping every sample without its own settings shares (a run holds all its
# samples; an empty dict per field per item adds up to megabytes).
NO_MAPPING: Mapping[str, Any] = MappingProxyType({})


def _no_mapping() -> Mapping[str, Any]:
    return NO_MAPPING


@dataclass(frozen=True, slots=True)
class Sample:
    """One dataset item: a video (or a list of frames) and a question about it. Slotted:
    a run holds every sample from collection to the end."""

    id: str
    dataset: str
    question: str
    answer: str | None
    video: str | None = None
    frames: tuple[str, ...] | None = None
    options: tuple[str, ...] = ()
    scorer: str = "exact"
    scorer_args: Mapping[str, Any] = field(default_factory=_no_mapping)
    category: str | None = None
    video_overrides: Mapping[str, Any] = field(default_factory=_no_mapping)
    source: str = ""  # "<file>:<line>" the item came from, for error messages
    categories: Mapping[str, str] = field(default_factory=_no_mapping)  # every breakdown dimension -> value
    cluster: str | None = None  # items sharing a video are correlated; None: the media path
    bound: tuple[float, float] | None = None  # (start, end) seconds the sampler stays inside
    frame_fps: float | None = None  # the frame rate of a folder of frames (their files carry none)
    subtitles: str | None = None  # an .srt file whose lines at the sampled frames join the prompt
    reference: str | None = None  # an image shown after the frames (e.g. a task's goal state)
    frame_labels: tuple[str, ...] | None = None  # the text before each frame, when a protocol words them itself
    system_prompt: str | None = None  # a protocol's own system message, instead of the model's
    meta: Mapping[str, Any] = field(default_factory=_no_mapping)  # format-specific data carried to the record
    # A published benchmark's item whose video the download lacks: reported as missing
    # media, left out of the pass rate, never sent to the model.
    missing_media: str | None = None
    load_error: str | None = None  # a problem with this item found at load time: it fails with it

    @property
    def uid(self) -> str:
        """Unique across the datasets of a run."""
        return f"{self.dataset}/{self.id}"

    @property
    def media_path(self) -> str:
        return self.video if self.video is not None else ", ".join(self.frames or ())

    @property
    def cluster_key(self) -> str:
        return self.cluster if self.cluster is not None else self.media_path


@dataclass(frozen=True)
class FrameSelection:
    """Which frames the sampler chose and how; recorded per item."""

    selected_indices: tuple[int, ...]
    num_frames_total: int
    strategy: str
    fps_used: float | None
    reader: str
    video_fps: float | None = None
    num_frames_claimed: int | None = None  # the container's frame count, where fewer frames decode (a cut file)
    reader_version: str | None = None  # the version of the library behind ``reader``

    def as_dict(self) -> dict[str, Any]:
        out = {
            "selected_indices": list(self.selected_indices),
            "num_frames_total": self.num_frames_total,
            "strategy": self.strategy,
            "fps_used": self.fps_used,
            "reader": self.reader,
            "reader_version": self.reader_version,
            "video_fps": self.video_fps,
        }
        if self.num_frames_claimed is not None:
            out["num_frames_claimed"] = self.num_frames_claimed
        return out


@dataclass(frozen=True, eq=False)
class VideoInput:
    """The decoded frames (RGB uint8, HxWx3) of one item, ready for an engine."""

    item_id: str
    frames: tuple[np.ndarray, ...]
    selection: FrameSelection
    source: str
    dataset: str = ""
    reference: np.ndarray | None = None  # an image after the frames, labelled in the prompt
    frame_label: str = DEFAULT_FRAME_LABEL  # the text before each frame; {index} counts from 1
    tiles: int = 1  # tiles per frame at most (InternVL's dynamic tiling; 1: the frame squashed to one tile)
    frame_labels: tuple[str, ...] | None = None  # each frame's own text before it (a judge protocol's)

    @property
    def is_image(self) -> bool:
        """One still image (an image file, not a frame of a video): models tile it."""
        return len(self.frames) == 1 and self.selection.reader == "image"

    def labels(self) -> list[str]:
        """The text before each frame, in order ("Frame1: ", "Frame2: ", ...)."""
        if self.frame_labels is not None:
            return list(self.frame_labels)
        return [self.frame_label.format(index=i) for i in range(1, len(self.frames) + 1)]

    def timestamps(self) -> list[float] | None:
        """Seconds into the video of each frame, when the frame rate is known."""
        fps = self.selection.video_fps
        return [i / fps for i in self.selection.selected_indices] if fps else None


@dataclass(frozen=True)
class Generation:
    id: str
    text: str  # the answer as scored: stop strings cut, whitespace stripped
    tokens: int | None = None
    latency_ms: float | None = None
    truncated: bool = False
    raw_text: str | None = None  # the decoded output before that (None: same as text)
    prompt: str | None = None  # the text the model saw, when the engine changed what it was given
    timing: Mapping[str, float] | None = None  # the engine's stages in ms (see STAGES), shared by a batch


@dataclass(frozen=True)
class Score:
    scorer: str
    value: float
    passed: bool
    extracted: str | None = None  # what the scorer read from the prediction (e.g. the letter)


@dataclass(frozen=True)
class ItemRecord:
    """One line of items.jsonl. Field order is the on-disk order."""

    id: str
    dataset: str
    model: str
    backend: str
    quant: str
    category: str | None
    question: str
    answer: str | None
    prediction: str | None
    scorer: str
    score: float | None
    passed: bool | None  # None: unscored (no checkable answer)
    latency_ms: float | None
    truncated: bool
    tokens: int | None
    error: str | None
    video: Mapping[str, Any] | None
    decode: Mapping[str, Any]
    categories: Mapping[str, str] = field(default_factory=dict)
    cluster: str | None = None
    media: str | None = None  # the video file, frame folder or image files the item is about
    meta: Mapping[str, Any] = field(default_factory=dict)
    prompt: str | None = None  # the text sent with the frames (after templating and subtitles)
    raw_response: str | None = None  # the model's output before stop strings and stripping
    extracted: str | None = None  # what the scorer read from the prediction (letter, yes/no, number)
    missing_media: str | None = None  # the media path the download lacks (not scored, not an error)
    timing: Mapping[str, Any] | None = None  # where the item's time went, stage by stage (STAGES); not compared between runs
    warnings: Mapping[str, str] | None = None  # kind -> what to know about this record (a cut response, a cut video)
    options: tuple[str, ...] | None = None  # the item's options, as asked (None: none)
    scorer_args: Mapping[str, Any] | None = None  # the scorer's arguments (tolerances, alternatives)
    scorer_version: str | None = None  # which extraction rules made the score (scoring.SCORER_VERSION)
    judge: Mapping[str, Any] | None = None  # where a judge model read the answer the rules could not
    preset: Mapping[str, Any] | None = None  # the --preset recipe the item was sent with: name, recipe, source
    context: Mapping[str, Any] | None = None  # frames cut (or the item refused) to fit the engine's context (context_fit)

    def as_dict(self) -> dict[str, Any]:
        """The JSON line's fields. A shallow copy (``dataclasses.asdict`` deep-copies
        every value, a cost paid once per item): the nested mappings are copied one level."""
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        for name in ("video", "decode", "categories", "meta", "timing", "warnings", "scorer_args", "judge", "preset", "context"):
            if data[name] is not None:
                data[name] = dict(data[name])
        if data["options"] is not None:
            data["options"] = list(data["options"])
        return data

    def failure_summary(self) -> str:
        if self.error:
            return f"{self.id}: {self.error}"
        return (
            f"{self.id}: scorer {self.scorer} gave {self.score} for prediction {self.prediction!r}"
            f" (answer {self.answer!r})" + (" [truncated at max_new_tokens]" if self.truncated else "")
        )


_RECORD_FIELDS = tuple(f.name for f in fields(ItemRecord))
