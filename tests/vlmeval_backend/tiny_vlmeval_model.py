"""A VLMEvalKit model for the tests: a real ``vlmeval.vlm.base.BaseModel`` subclass that
builds its prompt with InternVLChat's own functions and answers with the tiny local
InternVL (random weights) through the native engine."""

from __future__ import annotations

from functools import partial

import cv2

from vlm_bench.config import resolve_model
from vlm_bench.runners.native_backend import NativeEngine
from vlm_bench.runners.vlmeval_backend import import_vlmeval
from vlm_bench.types import DecodeConfig, FrameSelection, VideoInput

NAME = "TinyInternVL3-vlmbench"
api = import_vlmeval()


class TinyInternVLChat(api["BaseModel"]):
    INSTALL_REQ = False
    INTERLEAVE = True

    def __init__(self, **kwargs):
        super().__init__()
        self.engine = NativeEngine(resolve_model("tiny-internvl3"))
        self.engine.load()
        self.tokenizer = self.engine.processor.tokenizer
        self.kwargs = {"max_new_tokens": 16, "do_sample": False, **kwargs}
        self.prompts: list[str] = []

    def generate_inner(self, message, dataset=None):
        from vlmeval.vlm.internvl.utils import build_video_prompt, reorganize_prompt

        images = [m["value"] for m in message if m["type"] == "image"]
        prompt = reorganize_prompt(message, len(images), dataset=dataset)
        if dataset is not None and api["DATASET_MODALITY"](dataset) == "VIDEO":
            prompt = build_video_prompt(prompt, dataset)
        self.prompts.append(prompt)
        frames = tuple(cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in images)
        media = VideoInput("vlmeval", frames, FrameSelection(tuple(range(len(frames))), len(frames), "all", None, "image"), "")
        question = "\n".join(line for line in prompt.splitlines() if "<image>" not in line)
        return self.engine.generate_video(media, question, DecodeConfig(max_new_tokens=self.kwargs["max_new_tokens"])).text


def register() -> None:
    api["supported_VLM"][NAME] = partial(TinyInternVLChat)
