"""The chat-completions request the openai backend sends (frames as data-URI images after
their labels, then the question) and the reading of what comes back."""

from __future__ import annotations

import base64
from typing import Any, Callable

import cv2
import numpy as np

from vlm_bench.types import VideoInput

MISSING = "the openai backend needs the openai client: pip install 'vlm-bench[serve]'"


def resize_square(frame: np.ndarray, side: int) -> np.ndarray:
    """``frame`` squashed to side x side exactly as the -hf InternVL video processor does
    it (torchvision's CPU kernel: bicubic with antialias, on uint8), so the server's tiler
    sees one tile. Without torch: Pillow's bicubic (within about one grey level of it)."""
    if frame.shape[0] == side and frame.shape[1] == side:
        return frame
    try:
        import torch
    except ImportError:
        try:
            from PIL import Image
        except ImportError as exc:
            raise RuntimeError(f"resizing frames needs torch or Pillow: {MISSING}") from exc
        return np.asarray(Image.fromarray(frame).resize((side, side), Image.BICUBIC))
    tensor = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(tensor, size=(side, side), mode="bicubic", antialias=True, align_corners=False)
    return out[0].permute(1, 2, 0).numpy()


def data_uri(image: np.ndarray, image_format: str = "png") -> str:
    """An RGB uint8 image as a ``data:image/...;base64,`` URI."""
    ext, mime, params = (".png", "png", []) if image_format == "png" else (".jpg", "jpeg", [cv2.IMWRITE_JPEG_QUALITY, 95])
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(image[..., ::-1]), params)
    if not ok:
        raise ValueError(f"could not encode a {image.shape} image as {image_format}")
    return f"data:image/{mime};base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def chat_messages(media: VideoInput, prompt: str, system: str | None, frame_size: int, placeholder: str | None,
                  image_format: str = "png") -> list[dict[str, Any]]:
    """The system message and one user message: labelled frames (each resized to one
    square tile of ``frame_size``; a still image, or a judge protocol's stills, at its own
    size), a reference image if any, then the question. With a ``placeholder`` ("<image>", "<IMAGE_TOKEN>") the labels
    and placeholders are one text part and the images follow; else text and image parts
    alternate."""
    if media.is_image:
        visuals = [("", media.frames[0])]
    elif media.frame_labels is not None:  # a judge protocol's stills: each at its own size, after its own text
        visuals = list(zip(media.labels(), media.frames))
    else:
        visuals = [(label, resize_square(f, frame_size)) for label, f in zip(media.labels(), media.frames)]
    if media.reference is not None:
        visuals.append(("", media.reference))
    images = [{"type": "image_url", "image_url": {"url": data_uri(img, image_format)}} for _, img in visuals]
    if placeholder is not None:
        text = "".join(f"{label}{placeholder}\n" for label, _ in visuals) + prompt
        content = [{"type": "text", "text": text}, *images]
    else:
        content = []
        for (label, _), image in zip(visuals, images):
            if label:
                content.append({"type": "text", "text": label})
            content.append(image)
        content.append({"type": "text", "text": prompt})
    msgs: list[dict[str, Any]] = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append({"role": "user", "content": content})
    return msgs


def parse_completion(raw: Any, url: str, item_id: str, scrub: Callable[[Any], str]) -> Any:
    """The chat completion in a raw response, or an error that says the server at ``url``
    answered something else, with the first bytes of what it sent."""
    try:
        response = raw.parse()
    except Exception as exc:
        response, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = f"a {type(response).__name__}, not a JSON object"
    if response is not None and hasattr(response, "choices"):
        return response
    try:
        head = raw.http_response.content[:200].decode("utf-8", "replace")
    except Exception:
        head = "?"
    kind = raw.http_response.headers.get("content-type", "no content type") if hasattr(raw, "http_response") else "?"
    raise RuntimeError(
        f"the server at {url} answered item {item_id!r} with something that is not an OpenAI chat completion "
        f"({kind}; {scrub(why)}); it began: {scrub(head)!r}. Is --base-url an OpenAI-compatible API?"
    )
