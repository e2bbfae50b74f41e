"""The openai backend against a real server: ``transformers serve`` with the tiny InternVL
(tests/served_server.py starts it once per session). ``pytest evals --backend openai``
runs the smoke set through it end to end, with requests in flight, and on every image and
video item the served answer equals the native backend's (greedy).

Why they can be equal: the server builds the prompt with the same chat template (frame
labels, one ``<IMG_CONTEXT>`` per image, InternVL3's system message), video frames arrive
already squashed to one 64x64 tile by the same torch kernel the -hf video processor uses
(so the image processor's dynamic tiling leaves each as one tile), PNG is lossless, and a
still image arrives at its own size and is tiled by the same image processor. Any of those
changed (JPEG, frames at their own size: 5 tiles each instead of 1, Pillow's resize: +-1
grey level) would be a preprocessing difference, and this test would name the item.
"""

import json

import pytest

from conftest import REPO, SMOKE_JSONL, read_jsonl
from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator

torch = pytest.importorskip("torch")  # the server and the native side both need it
pytest.importorskip("fastapi")  # transformers[serving], in the test extra

CANARY = "sk-canary-0b7e44d2c1a95f3e"


def test_smoke_set_through_transformers_serve_equals_native(tiny_server, pytester, monkeypatch):
    monkeypatch.setenv("VLM_BENCH_SERVE_KEY", CANARY)  # transformers serve ignores keys; nothing may write it
    out = pytester.path / "served"
    result = pytester.runpytest_inprocess(
        str(REPO / "evals"), "-p", "no:cacheprovider", "-m", "not benchmark",
        "--backend", "openai", "--model", "tiny-internvl3", "--dataset", str(SMOKE_JSONL),
        "--base-url", tiny_server.url, "--api-key-env", "VLM_BENCH_SERVE_KEY", "--concurrency", "4",
        "--results-dir", str(out),
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 9, result.stdout.str()[-3000:]
    served = {r["id"]: r for r in read_jsonl(out / "items.jsonl")}
    assert all(r["backend"] == "openai" and r["error"] is None and r["latency_ms"] > 0 for r in served.values())
    summary = json.loads((out / "summary.json").read_text())
    server = summary["workers"]["main"]["server"]
    assert server["model"] == tiny_server.model_dir  # the first of GET /v1/models
    assert server["owned_by"] == "local" and server["frame_placeholder"] is None  # interleaved parts

    torch.set_num_threads(1)
    run = build_run_config(model="tiny-internvl3", datasets=[str(SMOKE_JSONL)])
    samples = load_samples(run.datasets[0])
    native = Evaluator(run, samples)
    kinds = set()
    mismatches = []
    for sample in samples:
        mine, theirs = native.evaluate(sample), served[sample.id]
        media = native.media(sample)
        kinds.add("image" if media.is_image else "video")
        got = (theirs["prediction"], theirs["tokens"], theirs["truncated"], theirs["video"])
        want = (mine.prediction, mine.tokens, mine.truncated, mine.video)
        if got != want:
            mismatches.append(f"{sample.id} ({'image' if media.is_image else f'{len(media.frames)} frames'}): served {got} != native {want}")
    assert kinds == {"image", "video"}
    assert not mismatches, "\n".join(mismatches)

    for path in [p for p in pytester.path.rglob("*") if p.is_file()]:
        assert CANARY not in path.read_bytes().decode("utf-8", "replace"), path
    assert CANARY not in result.stdout.str() + result.stderr.str()
