"""The native engine's prompt length in tokens, counted before the call without touching a
pixel: the chat text with each image and video placeholder expanded as the InternVL
processor expands it (``<img>``, ``image_seq_length`` context tokens per tile, ``</img>``;
a video's ``Frame{i}: `` lines), tiles counted by the image processor's own
``get_number_of_image_patches``, then tokenized. tests/test_context_fit.py checks it equals
the processor's ``input_ids`` for each kind of input."""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np

from vlm_bench.types import DEFAULT_FRAME_LABEL, VideoInput


def frames_as_images(media: VideoInput) -> bool:
    """Frames the processor's video path cannot give as asked: a label other than its
    ``Frame1: ``, each frame's own label (a judge protocol's), or more than one tile per frame."""
    return not media.is_image and (media.frame_label != DEFAULT_FRAME_LABEL or media.tiles > 1
                                   or media.frame_labels is not None)


def processor_images(media: VideoInput, vision_args: Mapping[str, Any]) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The images the processor gets for one item, in the order of its text's image
    placeholders, and the ``images_kwargs`` they need: an image (tiled as the model tiles
    any image), frames given as images (InternVL's dynamic_preprocess with max_num = tiles;
    a judge protocol's stills tiled as any image), then the reference image. A video's
    frames go to the processor's video path, not here."""
    kwargs: dict[str, Any] = {}
    if media.is_image:
        images = [media.frames[0]]
    elif frames_as_images(media):
        images = list(media.frames)
        if media.frame_labels is None:
            kwargs = {"max_patches": media.tiles, "crop_to_patches": True}
    else:
        images = []
    if media.reference is not None:
        images.append(media.reference)
    if images and not kwargs and vision_args.get("max_num_tiles"):
        kwargs = {"max_patches": vision_args["max_num_tiles"]}
    return images, kwargs


def expanded_prompt(processor: Any, text: str, media: VideoInput, vision_args: Mapping[str, Any]) -> str:
    """``text`` (the chat template's output) with its placeholders replaced by what the
    processor puts there."""
    images, kwargs = processor_images(media, vision_args)
    patches = [processor.image_processor.get_number_of_image_patches(*image.shape[:2], kwargs) for image in images]
    start, end, context, seq = processor.start_image_token, processor.end_image_token, processor.image_token, processor.image_seq_length
    images = iter(patches)

    def expand(match: re.Match) -> str:
        if match.group("image"):
            return f"{start}{context * seq * next(images)}{end}"
        return "\n".join(f"Frame{i + 1}: {start}{context * seq}{end}" for i in range(len(media.frames)))

    pattern = re.compile(f"(?P<image>{re.escape(processor.image_token)})|(?P<video>{re.escape(processor.video_token)})")
    return pattern.sub(expand, text)


def count_tokens(processor: Any, texts: Sequence[str]) -> list[int]:
    return [len(ids) for ids in processor.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
