"""OpenAI Sora (``sora-2``, ``sora-2-pro``) through the ``openai`` SDK's videos API.

The first frame goes as ``input_reference`` (a multipart file upload to ``POST /videos``),
letterboxed to the requested ``size`` first, since Sora takes a reference image of the
video's exact size. Then ``GET /videos/{id}`` until ``completed`` or ``failed`` (its
``error`` code and message, e.g. a moderation block), and the video from
``GET /videos/{id}/content``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vlm_bench.generation.engines.api import DOWNLOAD_CHUNK, APIGenerator, JobStatus, write_stream

RUNNING = ("queued", "in_progress")
# openai's SDK marks the videos API deprecated (OpenAI announced its shutdown); until then it is the API
warnings.filterwarnings("ignore", message="The Sora API is scheduled", category=DeprecationWarning)
DEFAULT_SIZE = "1280x720"


def letterbox_png(image_path: Path, width: int, height: int) -> bytes:
    """The image scaled to fit width x height, centred on black, as PNG."""
    import cv2

    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{image_path}: not an image OpenCV can read")
    scale = min(width / image.shape[1], height / image.shape[0])
    w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    canvas = np.zeros((height, width, 3), np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    canvas[y:y + h, x:x + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", canvas, [cv2.IMWRITE_PNG_COMPRESSION, 1])  # lossless either way; fast
    if not ok:
        raise ValueError(f"{image_path}: could not encode the letterboxed reference")
    return encoded.tobytes()


class SoraGenerator(APIGenerator):
    provider = "sora"
    default_base_url = "https://api.openai.com/v1"  # the SDK's own, probed when --base-url is not given
    sdk_module = "openai"
    sdk_package = "openai"

    def make_client(self, key: str) -> Any:
        import openai

        return openai.OpenAI(api_key=key, base_url=self.base_url, max_retries=0,
                             timeout=openai.Timeout(self.api.timeout_s, connect=self.api.connect_timeout_s))

    def size(self) -> tuple[int, int]:
        width, _, height = str(self.call_args.get("size", DEFAULT_SIZE)).partition("x")
        return int(width), int(height)

    def request(self, image_path: Path, prompt: str, *, dry_run: bool = False) -> dict[str, Any]:
        width, height = self.size()
        reference = b"" if dry_run else letterbox_png(image_path, width, height)
        return {"model": self.model, "prompt": prompt, "size": f"{width}x{height}",
                **{k: str(v) if k == "seconds" else v for k, v in self.call_args.items() if k != "size"},
                "input_reference": ("first_frame.png", reference, "image/png")}

    def describe_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        described = super().describe_request({k: v for k, v in request.items() if k != "input_reference"})
        described["input_reference"] = f"first_frame.png letterboxed to {request['size']} (PNG upload)"
        return described

    def submit(self, request: Mapping[str, Any]) -> str:
        return self.client.videos.create(**request).id

    def status(self, job_id: str) -> JobStatus:
        video = self.client.videos.retrieve(job_id)
        state = str(video.status)
        if state == "completed":
            return JobStatus("succeeded", state)
        if state == "failed":
            error = video.error
            reason = f"{error.code}: {error.message}" if error is not None else "failed (no reason given)"
            return JobStatus("failed", state, reason=reason)
        if state in RUNNING:
            return JobStatus("running", state)
        raise ValueError(f"Sora reports an unknown status {state!r}")

    def fetch(self, job_id: str, status: JobStatus, out: Path) -> str | None:
        with self.client.videos.with_streaming_response.download_content(job_id, variant="video") as response:
            write_stream(response.iter_bytes(DOWNLOAD_CHUNK), response.headers.get("content-length"), out)
        return None

    def video_seconds(self) -> float | None:
        return float(self.call_args.get("seconds", 4))
