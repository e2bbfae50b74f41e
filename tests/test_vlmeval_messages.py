"""The messages the VLMEvalKit backend sends (no vlmeval needed to build them)."""

import cv2
import numpy as np
import pytest

from conftest import SMOKE_JSONL
from vlm_bench.config import build_run_config, resolve_model
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import load_media
from vlm_bench.runners.vlmeval_backend import VLMEvalKitEngine
from vlm_bench.types import VideoConfig

pytestmark = pytest.mark.smoke


def test_frames_then_reference_image_then_text(tmp_path):
    run = build_run_config(model="mock", datasets=[str(SMOKE_JSONL)])
    sample = next(s for s in load_samples(run.datasets[0]) if s.id == "colour_last")
    from dataclasses import replace

    dots = str(SMOKE_JSONL.parent / "frames" / "dots_3.png")
    media = load_media(replace(sample, reference=dots), VideoConfig(max_frames=3))
    engine = VLMEvalKitEngine(resolve_model("internvl3_38b"), frames_dir=str(tmp_path))
    message = engine.message(media, "Does it end like the last image?")
    assert [m["type"] for m in message] == ["image"] * 4 + ["text"]
    read = [cv2.cvtColor(cv2.imread(m["value"]), cv2.COLOR_BGR2RGB) for m in message[:4]]
    assert all(np.array_equal(a, b) for a, b in zip(read[:3], media.frames))
    assert np.array_equal(read[3], media.reference)
    assert message[4]["value"] == "Does it end like the last image?"
