"""Runway (``gen4_turbo``, ``gen4_aleph``, ``gen3a_turbo``) through the ``runwayml`` SDK.

The first frame goes as a data URI in ``promptImage`` (``POST /v1/image_to_video``), then
``GET /v1/tasks/{id}`` until ``SUCCEEDED`` (the video at ``output[0]``) or ``FAILED``
(``failure`` and ``failureCode``, e.g. a moderation code). ``ratio: auto`` in call_args
picks the model's ratio closest to the first frame's aspect, as VMEvalKit does."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from vlm_bench.generation.engines.api import APIGenerator, JobStatus, data_uri_of, image_size

RUNNING = ("PENDING", "THROTTLED", "RUNNING")
RATIOS = {  # the pixel ratios each model takes
    "gen3a_turbo": ("1280:768", "768:1280"),
    "default": ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"),
}


class RunwayGenerator(APIGenerator):
    provider = "runway"
    default_base_url = "https://api.dev.runwayml.com"  # the SDK's own, probed when --base-url is not given
    sdk_module = "runwayml"
    sdk_package = "runwayml"

    def make_client(self, key: str) -> Any:
        import httpx
        import runwayml

        return runwayml.RunwayML(api_key=key, base_url=self.base_url, max_retries=0,
                                 timeout=httpx.Timeout(self.api.timeout_s, connect=self.api.connect_timeout_s))

    def ratio(self, image_path: Path) -> str:
        ratio = self.call_args.get("ratio", "auto")
        if ratio != "auto":
            return str(ratio)
        width, height = image_size(image_path)
        choices = RATIOS.get(self.model, RATIOS["default"])
        return min(choices, key=lambda r: abs(int(r.split(":")[0]) / int(r.split(":")[1]) - width / height))

    def request(self, image_path: Path, prompt: str, *, dry_run: bool = False) -> dict[str, Any]:
        args = {k: v for k, v in self.call_args.items() if k != "ratio"}
        if self.settings.seed is not None and "seed" not in args:
            args["seed"] = int(self.settings.seed)
        return {"model": self.model, "prompt_image": data_uri_of(image_path), "prompt_text": prompt,
                "ratio": self.ratio(image_path), **args}

    def submit(self, request: Mapping[str, Any]) -> str:
        created = self.client.image_to_video.create(**request)
        return created.id

    def status(self, job_id: str) -> JobStatus:
        task = self.client.tasks.retrieve(job_id)
        state = str(task.status)
        if state == "SUCCEEDED":
            output = getattr(task, "output", None) or []
            return JobStatus("succeeded", state, video_url=output[0] if output else None)
        if state in ("FAILED", "CANCELLED"):
            code = getattr(task, "failure_code", None)
            reason = getattr(task, "failure", None) or state.lower()
            return JobStatus("failed", state, reason=f"{code}: {reason}" if code else reason)
        if state in RUNNING:
            return JobStatus("running", state)
        raise ValueError(f"Runway reports an unknown task status {state!r}")

    def video_seconds(self) -> float | None:
        return float(self.call_args.get("duration", 5))
