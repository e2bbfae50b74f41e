"""The messages the VLMEvalKit backend sends (no vlmeval needed to build them)."""

import cv2
import numpy as np

from conftest import SMOKE_JSONL
from vlm_bench.config import build_run_config, resolve_model
from vlm_bench.datasets import load_samples
from vlm_bench.frames import load_media
from vlm_bench.runners.vlmeval_backend import VLMEvalKitEngine
from vlm_bench.types import VideoConfig


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


def test_video_mme_letter_line_reaches_the_model_once(tmp_path):
    """InternVLChat's build_video_prompt appends the Video-MME letter line itself; the
    engine sends the template's text without it, and the record shows what the model saw."""
    from vlm_bench.runners.vlmeval_backend import LETTER_LINE, vlmeval_video_text
    from vlm_bench.types import DecodeConfig

    prompt = "Select the best answer.\nQ?\nA. x\nB. y" + LETTER_LINE
    sent, seen = vlmeval_video_text(prompt, "Video-MME")
    assert LETTER_LINE.strip() not in sent and seen == prompt and seen.count(LETTER_LINE.strip()) == 1
    assert vlmeval_video_text("Q?\nA. x", "Video-MME")[1] == "Q?\nA. x" + LETTER_LINE  # VLMEvalKit adds it
    assert vlmeval_video_text("Q?\nAnswer:", "MMBench-Video")[1] == "Q?"
    assert vlmeval_video_text(prompt, "MVBench") == (prompt, prompt)

    class InternVLChat:  # stands in for vlmeval.vlm.InternVLChat: applies build_video_prompt's rewrite
        def __init__(self):
            self.seen = []

        def generate(self, message, dataset):
            text = vlmeval_video_text(message[-1]["value"], dataset)[1]
            self.seen.append(text)
            return " B \n"

    run = build_run_config(model="mock", datasets=[str(SMOKE_JSONL)])
    sample = next(s for s in load_samples(run.datasets[0]) if s.id == "colour_last")
    media = load_media(sample, VideoConfig(max_frames=2))
    engine = VLMEvalKitEngine(resolve_model("internvl3_38b"), frames_dir=str(tmp_path))
    engine.model, engine._modality = InternVLChat(), lambda name: "VIDEO"
    from dataclasses import replace

    gen = engine.generate_video(media, prompt, DecodeConfig(), replace(resolve_model("internvl3_38b"), vlmeval_dataset="Video-MME"))
    assert engine.model.seen == [prompt]  # the line once, at the end
    assert (gen.text, gen.raw_text, gen.prompt) == ("B", " B \n", prompt)
