from __future__ import annotations

import os

# Tiny models on a 2-core machine run faster and steadier on one thread (set before torch loads).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from vlm_bench.utils.synthetic import indexed_frame, write_video

pytest_plugins = ["pytester", "served_server"]  # served_server: a real `transformers serve` (tiny_server)

# The VLMEvalKit tests need the heavy `vlmeval` extra; they run in its own environment
# (tox -e vlmeval, and the second step of .ci/run). The core environment tests the
# missing-package error instead (test_vlmeval_missing.py).
collect_ignore = [] if importlib.util.find_spec("vlmeval") else ["vlmeval_backend"]

# pytester's in-process runs put sys.modules back as it was before each test, dropping the
# modules first imported during it. torch cannot be imported twice in a process, and a
# re-imported transformers module makes new classes; so load the native stack once, here.
try:
    import torch  # noqa: F401
    from transformers import (  # noqa: F401
        AutoModelForImageTextToText,
        AutoProcessor,
        BitsAndBytesConfig,
        GotOcr2ImageProcessor,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        Qwen2Tokenizer,
    )
except ImportError:  # a core install without the native extra
    pass

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
SMOKE_JSONL = FIXTURES / "smoke" / "smoke.jsonl"
SQUARE_MP4 = FIXTURES / "smoke" / "videos" / "moving_square.mp4"
COLOUR_MP4 = FIXTURES / "smoke" / "videos" / "colour_cycle.mp4"
EVAL_TEST = (REPO / "evals" / "test_video_qa.py").read_text()


def need_torchcodec() -> None:
    """Skip where TorchCodec or the FFmpeg libraries it links are missing; CI installs both
    and sets VLM_BENCH_REQUIRE_TORCHCODEC=1, which turns the skip into a failure."""
    from vlm_bench.utils.readers import _torchcodec_error

    if importlib.util.find_spec("torchcodec") is not None and _torchcodec_error() is None:
        return
    why = "torchcodec not installed" if importlib.util.find_spec("torchcodec") is None else _torchcodec_error()
    if os.environ.get("VLM_BENCH_REQUIRE_TORCHCODEC") == "1":
        pytest.fail(f"TorchCodec is required here and cannot run: {why}")
    pytest.skip(f"TorchCodec cannot run here ({why}): pip install 'vlm-bench[torchcodec]' and apt-get install ffmpeg")


@pytest.fixture
def make_video(tmp_path):
    """Write an H.264 clip whose frames carry their index (see vlm_bench.utils.synthetic)."""

    def make(name: str = "clip.mp4", n: int = 30, fps: float = 10, size=(64, 96)) -> Path:
        base = np.full((*size, 3), 80, np.uint8)
        path = tmp_path / name
        write_video(path, (indexed_frame(i, base) for i in range(n)), fps=fps)
        return path

    return make


@pytest.fixture
def write_jsonl(tmp_path):
    def write(items, name: str = "data.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items))
        return path

    return write


def without_timing(record: dict) -> dict:
    """A record without the fields that differ between two runs of the same item."""
    from vlm_bench.types import TIMING_FIELDS

    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}


def untimed_line(line: str) -> str:
    """An items.jsonl line with its timing fields' values blanked, byte for byte otherwise."""
    line = re.sub(r'"latency_ms": [0-9.e+-]+', '"latency_ms": 0', line)
    return re.sub(r'"timing": (null|\{[^{}]*\})', '"timing": {}', line)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")


@pytest.fixture
def suite(pytester):
    """A pytester folder holding the evaluation test, as a user's checkout has it."""
    pytester.makepyfile(test_run_items=EVAL_TEST)
    return pytester


def run_items(suite, *args, dataset=SMOKE_JSONL):
    """One in-process pytest session over ``dataset`` (the smoke set by default)."""
    return suite.runpytest_inprocess(*QUIET, "--dataset", str(dataset), *args)
