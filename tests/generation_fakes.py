"""Generators for the tests, light enough for xdist workers to import (no torch): one
that breaks the frame-count rule and one that submits and polls like a commercial API."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from vlm_bench.generation.base import GenerationResult
from vlm_bench.generation.config import GeneratorConfig
from vlm_bench.utils.synthetic import write_video


class WrongLengthGenerator:
    """Writes one frame fewer than asked: the check must reject the video."""

    resumable, concurrency = False, 1

    def __init__(self, cfg, settings):
        self.name, self.settings, self.load_count = cfg.name, settings, 0

    def load(self):
        self.load_count += 1

    def generate(self, image_path, text_prompt, duration, output_filename, *, resume_id=None, on_submitted=None):
        n = self.settings.num_frames
        write_video(output_filename, [np.full((32, 32, 3), 90, np.uint8)] * (n - 1), fps=8)
        return GenerationResult(True, str(output_filename), None, 0.01, "", self.name, "success",
                                {"num_frames": n, "height": 32, "width": 32})

    def close(self):
        pass


class FakeAPIGenerator:
    """Submits, then polls, like Luma/Runway/Veo/Sora: a job id comes first, the video later."""

    resumable = True

    def __init__(self, cfg, settings, poll_seconds=0.2, die_after_submit=False):
        self.name, self.settings, self.concurrency = cfg.name, settings, cfg.concurrency
        self.poll_seconds, self.die_after_submit = poll_seconds, die_after_submit
        self.load_count, self.submitted, self.resumed = 0, [], []
        self.active = self.max_active = 0
        self.lock = threading.Lock()

    def load(self):
        self.load_count += 1

    def generate(self, image_path, text_prompt, duration, output_filename, *, resume_id=None, on_submitted=None):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            active_at_start = self.active
        try:
            if resume_id:
                self.resumed.append(resume_id)
                job = resume_id
            else:
                with self.lock:
                    job = f"job-{len(self.submitted)}-{Path(image_path).parent.name}"
                    self.submitted.append(job)
                on_submitted(job)
                if self.die_after_submit:
                    raise SystemExit("killed while polling")  # not an Exception: nothing catches it, like kill -9
            time.sleep(self.poll_seconds)
            write_video(output_filename, [np.full((32, 64, 3), 120, np.uint8)] * 6, fps=6)
            return GenerationResult(True, str(output_filename), None, self.poll_seconds, job, "fake-api", "success",
                                    {"num_frames": 6, "height": 32, "width": 64, "in_flight": active_at_start}, video_url=f"https://videos.invalid/{job}.mp4")
        finally:
            with self.lock:
                self.active -= 1


def api_config(concurrency=1) -> GeneratorConfig:
    return GeneratorConfig(name="fake-api", family="Fake", kind="api", engine="generation_fakes:FakeAPIGenerator",
                           concurrency=concurrency, needs={"api_key": "FAKE_API_KEY"})
