"""The native engine's speed settings, each proven on the CPU to change nothing in what
greedy decoding answers: the attention implementation, a static KV cache with a compiled
decoding step (--compile), and batches. Their speed is measured on a GPU by
tests/benchmarks/gpu_speed.py (docs/performance.md)."""

import json
from dataclasses import replace

import pytest

from conftest import EVAL_TEST, SMOKE_JSONL, read_jsonl
from vlm_bench.config import ConfigError, build_run_config, resolve_model
from vlm_bench.datasets import load_samples
from vlm_bench.frames import load_media
from vlm_bench.runners.native_backend import NativeEngine
from vlm_bench.types import DecodeConfig, VideoConfig

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def clips():
    samples = load_samples(build_run_config(model="mock", datasets=[str(SMOKE_JSONL)]).datasets[0])
    return [load_media(s, VideoConfig(max_frames=k)) for k in (4, 3) for s in samples if s.video]


def answers(cfg, clips, batch=1):
    torch.set_num_threads(1)
    engine = NativeEngine(cfg)
    engine.load()
    decode = DecodeConfig(max_new_tokens=8)
    out = []
    for start in range(0, len(clips), batch):
        out += [g.raw_text for g in engine.generate([(m, "What happens?") for m in clips[start:start + batch]], decode)]
    return out, engine.describe()


def test_eager_attention_answers_as_sdpa_does(clips):
    base = resolve_model("tiny-internvl3")
    sdpa, described = answers(base, clips)
    eager, described_eager = answers(replace(base, attn_implementation="eager"), clips)
    assert described["attn_implementation"] == "sdpa" and described_eager["attn_implementation"] == "eager"
    assert eager == sdpa


def test_a_compiled_static_cache_answers_as_the_dynamic_one_does(clips):
    base = resolve_model("tiny-internvl3")
    dynamic, _ = answers(base, clips)
    compiled, described = answers(replace(base, compile=True), clips)
    assert described["cache"] == "static" and described["compile"] is True
    assert compiled == dynamic


def test_batches_answer_as_one_item_at_a_time_does(clips):
    base = resolve_model("tiny-internvl3")
    alone, _ = answers(base, clips)
    batched, described = answers(replace(base, batch_size=4), clips, batch=4)
    assert described["batch_size"] == 4 and batched == alone


def test_the_flags_reach_the_engine_and_the_records(pytester):
    pytester.makepyfile(test_items=EVAL_TEST)
    out = pytester.path / "out"
    pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--dataset", str(SMOKE_JSONL), "--model", "tiny-internvl3", "--backend", "native",
        "--attn", "eager", "--batch-size", "3", "--max-new-tokens", "4", "--min-pass-rate", "0", "--results-dir", str(out),
    )
    engine = json.loads((out / "summary.json").read_text())["manifest"]["engine"]
    assert engine["attn_implementation"] == "eager" and engine["batch_size"] == 3
    records = read_jsonl(out / "items.jsonl")
    assert any(r["timing"].get("batch", 1) > 1 for r in records)  # items that shared a batch say so


def test_engine_flags_are_refused_where_they_do_nothing():
    with pytest.raises(ConfigError, match="--attn, --compile applies to the native backend only"):
        build_run_config(model="mock", backend="mock", model_overrides={"attn_implementation": "eager", "compile": True})
    with pytest.raises(ConfigError, match="attn_implementation must be one of"):
        build_run_config(model="tiny-internvl3", model_overrides={"attn_implementation": "fast"})


def test_the_1b_shape_has_internvl3_1b_dimensions():
    from transformers import InternVLForConditionalGeneration

    from vlm_bench.registry.tiny_internvl import INTERNVL3_1B_SHAPE, build_tokenizer, internvl_config

    config = internvl_config(INTERNVL3_1B_SHAPE, build_tokenizer())
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(config)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(model.model.vision_tower) == pytest.approx(304e6, rel=0.01)  # InternViT-300M
    assert count(model.model.language_model) == pytest.approx(494e6, rel=0.01)  # Qwen2.5-0.5B
    assert INTERNVL3_1B_SHAPE.image_seq_length == 256  # tokens per 448 px tile
    assert resolve_model("internvl3_1b_shape").local_build == INTERNVL3_1B_SHAPE.name
