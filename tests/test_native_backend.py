"""The native transformers backend, proven on a tiny InternVL built locally (random
weights, real InternVLForConditionalGeneration / InternVLProcessor code path)."""

import functools
import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import EVAL_TEST, SMOKE_JSONL, read_jsonl, without_timing
from vlm_bench.config import build_run_config, resolve_model
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.frames import load_media
from vlm_bench.registry.tiny_internvl import IMAGENET_MEAN, IMAGENET_STD, TINY, ensure_tiny_internvl

IMAGE_SEQ_LENGTH = TINY.image_seq_length
from vlm_bench.runners.native_backend import NativeEngine, hf_model_id
from vlm_bench.runners.quantization import quantized_linear_names
from vlm_bench.types import DecodeConfig, VideoConfig
from vlm_bench.utils.synthetic import BAND_ROWS, band_index

torch = pytest.importorskip("torch")  # the test extra installs it; a core-only install skips this module


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_cfg():
    return resolve_model("tiny-internvl3")


@pytest.fixture(scope="module")
def engine(tiny_cfg):
    eng = NativeEngine(tiny_cfg)
    eng.load()
    return eng


@pytest.fixture(scope="module")
def smoke():
    run = build_run_config(model="tiny-internvl3", datasets=[str(SMOKE_JSONL)])
    samples = load_samples(run.datasets[0])
    return run, {s.id: s for s in samples}


def item(smoke, item_id, max_frames=8):
    run, samples = smoke
    sample = samples[item_id]
    ev = Evaluator(run)
    ev.load()
    media = load_media(sample, VideoConfig(max_frames=max_frames))
    return media, ev.adapter.build_prompt(sample, ev.datasets["smoke"])


def test_hub_ids_map_to_transformers_native_checkpoints():
    assert hf_model_id("OpenGVLab/InternVL3-38B") == "OpenGVLab/InternVL3-38B-hf"
    assert hf_model_id("OpenGVLab/InternVL3-38B-hf") == "OpenGVLab/InternVL3-38B-hf"
    assert hf_model_id("someone/finetune") == "someone/finetune"


def test_tiny_checkpoint_is_a_real_internvl(engine):
    from transformers import InternVLForConditionalGeneration, InternVLProcessor, InternVLVideoProcessor

    assert isinstance(engine.model, InternVLForConditionalGeneration)
    assert isinstance(engine.processor, InternVLProcessor)
    assert isinstance(engine.processor.video_processor, InternVLVideoProcessor)
    tok = engine.processor.tokenizer
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"]) == [0, 1, 2, 3, 4, 5]
    assert engine.model.dtype == torch.float32  # CPU default
    assert engine.model.config._attn_implementation == "sdpa"


def test_cached_build_is_reused(tmp_path):
    first = ensure_tiny_internvl(tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_internvl(tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_builds_are_identical(tmp_path):
    a, b = ensure_tiny_internvl(tmp_path / "a"), ensure_tiny_internvl(tmp_path / "b")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_processor_receives_the_sampled_frames(engine, smoke):
    """Un-normalize the pixel tensor the model gets and read each frame's index band."""
    media, prompt = item(smoke, "square_direction")
    inputs = engine.prepare_inputs([(media, prompt)])
    pixels = inputs["pixel_values"]
    assert pixels.shape == (8, 3, 64, 64)  # one 64 px tile per frame (448 px on real checkpoints)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = ((pixels * std + mean) * 255).clamp(0, 255).permute(0, 2, 3, 1).numpy()
    band = BAND_ROWS * 64 // 96  # the band keeps its share of the height after resizing
    seen = [band_index(np.repeat(frame[: band - 1], 2, axis=0)) for frame in rgb]
    assert seen == list(media.selection.selected_indices) == [2, 8, 14, 20, 26, 31, 37, 43]


def test_prompt_has_one_image_block_per_frame(engine, smoke):
    media, prompt = item(smoke, "square_colour_mc", max_frames=6)
    ids = engine.prepare_inputs([(media, prompt)])["input_ids"][0].tolist()
    tok = engine.processor.tokenizer
    assert ids.count(tok.convert_tokens_to_ids("<img>")) == 6
    assert ids.count(tok.convert_tokens_to_ids("</img>")) == 6
    assert ids.count(tok.convert_tokens_to_ids("<IMG_CONTEXT>")) == 6 * IMAGE_SEQ_LENGTH
    text = tok.decode(ids)
    frames_at = [text.index(f"Frame{i}: <img>") for i in range(1, 7)]
    assert frames_at == sorted(frames_at) and "Frame7:" not in text
    assert text.index("Frame6:") < text.index("What colour is the moving square?")
    assert text.startswith("<|im_start|>system\n你是书生·万象")
    assert text.endswith("<|im_start|>assistant\n")


def test_single_frame_items_go_in_as_an_image(engine, smoke):
    media, prompt = item(smoke, "dots_image")
    inputs = engine.prepare_inputs([(media, prompt)])
    text = engine.processor.tokenizer.decode(inputs["input_ids"][0])
    tiles = inputs["pixel_values"].shape[0]
    assert tiles == 5  # dynamic tiling: 2x2 tiles of the 96 px image plus a thumbnail
    assert "Frame1:" not in text and text.count("<img>") == 1
    assert text.count("<IMG_CONTEXT>") == tiles * IMAGE_SEQ_LENGTH


def test_truncated_exactly_on_the_token_limit(engine, smoke):
    media, prompt = item(smoke, "colour_last")
    gen = engine.generate_video(media, prompt, DecodeConfig(max_new_tokens=2))
    assert gen.truncated and gen.tokens == 2
    full = engine.generate_video(media, prompt, DecodeConfig(max_new_tokens=12))
    stop = full.text[4:7]  # something the model will say, so a stop string ends it early
    stopped = engine.generate_video(media, prompt, DecodeConfig(max_new_tokens=12, stop=(stop,)))
    assert not stopped.truncated and stopped.tokens < 12 and stop not in stopped.text
    assert full.text.startswith(stopped.text)


def test_end_of_sequence_is_not_truncation(smoke, tiny_cfg):
    eng = NativeEngine(tiny_cfg)
    eng.load()
    media, prompt = item(smoke, "colour_last")
    first = eng.prepare_inputs([(media, prompt)])
    out = eng.model.generate(**first, max_new_tokens=3, do_sample=False)
    third = out[0, first["input_ids"].shape[1] + 2].item()
    eng.model.generation_config.eos_token_id = [eng.model.generation_config.eos_token_id, third]
    gen = eng.generate_video(media, prompt, DecodeConfig(max_new_tokens=3))
    assert gen.tokens == 3 and not gen.truncated  # stopped on an end token at the limit


def test_batch_equals_one_at_a_time(engine, smoke):
    items = [item(smoke, i) for i in ("square_direction", "colour_last", "square_colour_mc", "colour_count")]
    items.append(item(smoke, "dots_image"))  # an image goes in its own group
    items.append(item(smoke, "colour_first", max_frames=4))  # so does a shorter video
    decode = DecodeConfig(max_new_tokens=12)
    batched = engine.generate(items, decode)
    single = [engine.generate_video(m, p, decode) for m, p in items]
    assert [(g.id, g.text, g.tokens, g.truncated) for g in batched] == [(g.id, g.text, g.tokens, g.truncated) for g in single]
    assert len({g.text for g in single}) > 1  # the tiny model's answers depend on its input


def test_adapter_batches_when_batch_size_is_set(smoke, monkeypatch):
    run, samples = smoke
    run = replace(run, model=replace(run.model, batch_size=3))
    ev = Evaluator(run, list(samples.values()))
    calls = []
    original = NativeEngine.generate
    monkeypatch.setattr(NativeEngine, "generate", lambda self, b, d, model_cfg=None: calls.append(len(b)) or original(self, b, d, model_cfg))
    records = ev.evaluate_many(list(samples.values())[:5])
    assert calls == [3, 2]
    singles = [Evaluator(smoke[0], list(samples.values())).evaluate(s) for s in list(samples.values())[:5]]
    assert [r.prediction for r in records] == [r.prediction for r in singles]


def test_missing_weights_fail_fast_with_the_prd_error(monkeypatch, tmp_path):
    import transformers

    def never(*a, **k):
        raise AssertionError("must not reach the hub client, whose retries take tens of seconds")

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", never)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setenv("VLM_BENCH_HUB_TIMEOUT", "2")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    eng = NativeEngine(resolve_model("internvl3_1b"))
    with pytest.raises(RuntimeError, match=r"^Hugging Face model not available: OpenGVLab/InternVL3-1B-hf"):
        eng.load()
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is set"):
        eng.load()


def test_local_directory_loads_like_a_hub_id(tmp_path):
    path = ensure_tiny_internvl()
    yaml_path = tmp_path / "local.yaml"
    yaml_path.write_text(f"family: internvl3\nengine: native\nhf_repo: {path}\nvision_args: {{short_side: 64}}\n")
    eng = NativeEngine(resolve_model(str(yaml_path)))
    eng.load()
    assert eng.source == str(path)
    media = load_media(load_samples(build_run_config(model="mock", datasets=[str(SMOKE_JSONL)]).datasets[0])[0], VideoConfig(max_frames=4))
    assert eng.generate_video(media, "Where does it go?", DecodeConfig(max_new_tokens=4)).tokens == 4


def test_oom_is_reported_with_advice_and_the_run_goes_on(smoke, monkeypatch):
    run, samples = smoke
    ev = Evaluator(run, list(samples.values()))
    ev.load()
    model = ev.adapter._engine.model
    real_forward = model.forward
    calls = {"n": 0}

    @functools.wraps(real_forward)  # generate() checks its kwargs against forward's signature
    def forward(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    first = ev.evaluate(samples["square_direction"])
    assert first.error and "CUDA out of memory on item square_direction" in first.error
    assert "quantization: int8" in first.error and "--max-frames 4" in first.error
    second = ev.evaluate(samples["colour_last"])
    assert second.error is None and second.prediction


@pytest.mark.parametrize("quant, layer", [("int8", "Linear8bitLt"), ("int4", "Linear4bit")])
def test_bitsandbytes_quantizes_the_language_model_only(tiny_cfg, smoke, quant, layer):
    bnb = pytest.importorskip("bitsandbytes")
    eng = NativeEngine(tiny_cfg, quant=quant)
    eng.load()
    quantized, plain = quantized_linear_names(eng.model)
    assert quantized and all(".language_model." in n for n in quantized)
    assert all(type(m).__name__ == layer for n, m in eng.model.named_modules() if n in quantized)
    assert any(n.startswith("model.vision_tower.") for n in plain)
    assert any(n.startswith("model.multi_modal_projector.") for n in plain) and "lm_head" in plain
    media, prompt = item(smoke, "colour_last")
    gen = eng.generate_video(media, prompt, DecodeConfig(max_new_tokens=6))
    assert gen.tokens == 6 or not gen.truncated
    assert isinstance(bnb.__version__, str)


def test_missing_bitsandbytes_is_a_clear_error(tiny_cfg, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(RuntimeError, match=r"--quant=int4 needs bitsandbytes: pip install 'vlm-bench\[quant\]'"):
        NativeEngine(tiny_cfg, quant="int4").load()


@pytest.mark.smoke
def test_native_suite_end_to_end_twice_identical(pytester):
    pytester.makepyfile(test_native_items=EVAL_TEST)
    outs = []
    for name in ("a", "b"):
        out = pytester.path / name
        result = pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "--backend", "native", "--model", "tiny-internvl3", "--dataset", str(SMOKE_JSONL),
            "--max-new-tokens", "8", "--results-dir", str(out),
        )
        assert result.parseoutcomes().get("passed", 0) + result.parseoutcomes().get("failed", 0) == 9
        outs.append(read_jsonl(out / "items.jsonl"))
    for a, b in zip(*outs):
        assert a["backend"] == "native" and a["error"] is None
        assert a["video"]["selected_indices"] and a["latency_ms"] > 0 and isinstance(a["truncated"], bool)
        assert without_timing(a) == without_timing(b)
    manifest = json.loads((pytester.path / "a" / "summary.json").read_text())["manifest"]
    assert manifest["config"]["backend"] == "native"
    assert manifest["cpu_threads"] == {"threads": 1, "chosen_by": "OMP_NUM_THREADS"}  # tests/conftest.py sets it


def test_plugin_batches_upcoming_items(pytester, monkeypatch):
    model = pytester.path / "batched.yaml"
    model.write_text("family: internvl3\nengine: native\nlocal_build: tiny-internvl3\nbatch_size: 4\n"
                     "vision_args: {short_side: 64}\nvideo: {max_frames: 8}\n")
    calls = []
    original = NativeEngine.generate
    monkeypatch.setattr(NativeEngine, "generate", lambda self, b, d, model_cfg=None: calls.append(len(b)) or original(self, b, d, model_cfg))
    pytester.makepyfile(test_batched_items=EVAL_TEST)
    outs = {}
    for name, yaml_path in (("batched", str(model)), ("single", "tiny-internvl3")):
        pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", "--model", yaml_path,
            "--dataset", str(SMOKE_JSONL), "--max-new-tokens", "8", "--results-dir", str(pytester.path / name),
        )
        outs[name] = read_jsonl(pytester.path / name / "items.jsonl")
    assert calls[:3] == [4, 4, 1]  # 9 items in batches of 4 (then the single run: one by one)
    assert [r["prediction"] for r in outs["batched"]] == [r["prediction"] for r in outs["single"]]
    assert [r["id"] for r in outs["batched"]] == [r["id"] for r in outs["single"]]


def test_a_batch_with_reference_images_keeps_each_items_images_in_its_own_place(engine):
    """The processor matches images to placeholders in text order across the batch: item 1's
    image and reference, then item 2's, as one at a time."""
    from vlm_bench.types import FrameSelection, VideoInput

    rng = np.random.default_rng(3)
    selection = FrameSelection((0,), 1, "all", None, "image")
    items = [(VideoInput(f"i{k}", (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),), selection, "a.png",
                         reference=rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), "Same?") for k in range(2)]
    together = engine.prepare_inputs(items)["pixel_values"]
    apart = torch.cat([engine.prepare_inputs([item])["pixel_values"] for item in items])
    assert torch.equal(together, apart)
