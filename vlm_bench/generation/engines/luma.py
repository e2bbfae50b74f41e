"""Luma Dream Machine (``ray-2``, ``ray-flash-2``) through the ``lumaai`` SDK.

The first frame goes as keyframe ``frame0``, which Luma fetches from a URL: it is
uploaded first (``--upload-to s3://bucket/prefix``). ``POST /generations/video``, then
``GET /generations/{id}`` until ``completed`` (the video at ``assets.video``) or
``failed`` (``failure_reason``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from vlm_bench.generation.engines.api import APIGenerator, JobStatus

RUNNING = ("queued", "dreaming", "pending", "processing")


class LumaGenerator(APIGenerator):
    provider = "luma"
    default_base_url = "https://api.lumalabs.ai"  # the SDK's own, probed when --base-url is not given
    sdk_module = "lumaai"
    sdk_package = "lumaai"

    def make_client(self, key: str) -> Any:
        import httpx
        import lumaai

        return lumaai.LumaAI(auth_token=key, base_url=self.base_url, max_retries=0,
                             timeout=httpx.Timeout(self.api.timeout_s, connect=self.api.connect_timeout_s))

    def request(self, image_path: Path, prompt: str, *, dry_run: bool = False) -> dict[str, Any]:
        uploader = self.uploader() if not dry_run or self.api.upload_to else None
        if dry_run:
            where = uploader.location(image_path) if uploader else "NO UPLOADER: set --upload-to s3://bucket/prefix"
            url = f"<presigned URL of {where}>"
        else:
            url = uploader.upload(image_path)
        return {"model": self.model, "prompt": prompt, **self.call_args,
                "keyframes": {"frame0": {"type": "image", "url": url}}}

    def describe_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        described = super().describe_request(request)
        described["keyframes"] = {"frame0": {"type": "image", "url": "<presigned upload URL>"}}  # its signature stays out
        return described

    def submit(self, request: Mapping[str, Any]) -> str:
        generation = self.client.generations.create(**request)
        if not generation.id:
            raise ValueError("Luma answered the submission without a generation id")
        return generation.id

    def status(self, job_id: str) -> JobStatus:
        generation = self.client.generations.get(job_id)
        state = str(generation.state or "")
        if state == "completed":
            video = generation.assets.video if generation.assets else None
            return JobStatus("succeeded", state, video_url=video)
        if state == "failed":
            return JobStatus("failed", state, reason=generation.failure_reason or "failed (no reason given)")
        if state in RUNNING or not state:
            return JobStatus("running", state or "queued")
        raise ValueError(f"Luma reports an unknown state {state!r}")

    def video_seconds(self) -> float | None:
        duration = str(self.call_args.get("duration", "5s")).rstrip("s")
        return float(duration) if duration.replace(".", "", 1).isdigit() else None
