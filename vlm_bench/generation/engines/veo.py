"""Google Veo (``veo-2.0-generate-001``, ``veo-3.0-generate-001``,
``veo-3.0-fast-generate-001``, ``veo-3.1-generate-001``) through the ``google-genai`` SDK
on Vertex AI, as VMEvalKit runs it, authenticated with a Vertex AI API key
(``GOOGLE_API_KEY``, Vertex AI express mode).

The first frame goes inline (base64 bytes) in ``:predictLongRunning``; the operation is
polled with ``:fetchPredictOperation`` until done. The video comes back inline (or as an
https URI, downloaded); an operation error or a response whose videos were all filtered
(``raiMediaFilteredReasons``) is a refusal with the provider's reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from vlm_bench.generation.engines.api import APIGenerator, JobStatus, image_bytes


class VeoGenerator(APIGenerator):
    provider = "veo"
    default_base_url = "https://aiplatform.googleapis.com"  # the SDK's own, probed when --base-url is not given
    sdk_module = "google.genai"
    sdk_package = "google-genai"

    def make_client(self, key: str) -> Any:
        from google import genai
        from google.genai import types

        options = types.HttpOptions(timeout=int(self.api.timeout_s * 1000), base_url=self.base_url)
        return genai.Client(vertexai=True, api_key=key, http_options=options)

    def request(self, image_path: Path, prompt: str, *, dry_run: bool = False) -> dict[str, Any]:
        data, mime = image_bytes(image_path)
        config = dict(self.call_args)
        config.setdefault("number_of_videos", 1)
        config.setdefault("seed", int(self.settings.seed))
        if self.settings.negative_prompt:
            config.setdefault("negative_prompt", self.settings.negative_prompt)
        return {"model": self.model, "prompt": prompt, "image": {"image_bytes": data, "mime_type": mime}, "config": config}

    def submit(self, request: Mapping[str, Any]) -> str:
        from google.genai import types

        inputs = {"prompt": request["prompt"], "image": types.Image(**request["image"])}
        if hasattr(types, "GenerateVideosSource"):  # newer google-genai; older releases take prompt and image
            inputs = {"source": types.GenerateVideosSource(**inputs)}
        operation = self.client.models.generate_videos(model=request["model"], config=types.GenerateVideosConfig(**request["config"]),
                                                       **inputs)
        if not operation.name:
            raise ValueError("Veo answered the submission without an operation name")
        return operation.name

    def status(self, job_id: str) -> JobStatus:
        from google.genai import types

        operation = self.client.operations.get(types.GenerateVideosOperation(name=job_id))
        if not operation.done:
            return JobStatus("running", "running")
        if operation.error:
            error = operation.error
            return JobStatus("failed", "error", reason=f"{error.get('code')}: {error.get('message')}")
        response = operation.response or operation.result
        videos = list(response.generated_videos or []) if response is not None else []
        if not videos:
            reasons = list(getattr(response, "rai_media_filtered_reasons", None) or []) if response is not None else []
            return JobStatus("failed", "filtered", reason="; ".join(reasons) or "no video in the response")
        video = videos[0].video
        if video.video_bytes:
            return JobStatus("succeeded", "done", video_bytes=video.video_bytes)
        if video.uri and video.uri.startswith(("http://", "https://")):
            return JobStatus("succeeded", "done", video_url=video.uri)
        raise ValueError(f"Veo put the video at {video.uri!r}, which vlm-bench cannot fetch (leave storage_uri out of call_args)")

    def error_reason(self, exc: BaseException) -> str:
        message = getattr(exc, "message", None)
        return str(message) if message else super().error_reason(exc)

    def video_seconds(self) -> float | None:
        return float(self.call_args.get("duration_seconds", 8))
