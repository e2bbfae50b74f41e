"""Frames fitted to the engine's context before the call (vlm_bench/context_fit.py): the
policy on its own, the native engine's count against the processor's own ``input_ids``, a
tiny InternVL whose ``max_position_embeddings`` is lowered, and a served model that reports a
small ``max_model_len`` (as vLLM does) or is given one with --max-model-len."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from conftest import EVAL_TEST, SMOKE_JSONL, read_jsonl
from vlm_bench.context_fit import ContextLimit, ContextOverflow, context_limit, fit_media
from vlm_bench.types import FrameSelection, VideoInput

torch = pytest.importorskip("torch")


def media(frames: int, tiles: int = 1, reader: str = "opencv") -> VideoInput:
    selection = FrameSelection(tuple(range(frames)), 100, "uniform", None, reader)
    return VideoInput("item-1", tuple(np.zeros((8, 8, 3), np.uint8) for _ in range(frames)), selection, "v.mp4", tiles=tiles)


def per_frame(tokens_per_tile: int = 100, text: int = 50):
    return lambda m: text + len(m.frames) * m.tiles * tokens_per_tile


def test_a_prompt_that_fits_is_left_alone():
    item = media(8)
    assert fit_media(item, per_frame(), 64, ContextLimit(2000, "test"), "fewer-frames", pytest.fail) == (item, None)


def test_fewer_frames_takes_the_most_that_fit_by_the_sampler_rule():
    asked = []

    def reselect(k):
        asked.append(k)
        return media(k)

    fitted, fit = fit_media(media(16), per_frame(), 64, ContextLimit(1000, "test"), "fewer-frames", reselect)
    assert asked == [8] and len(fitted.frames) == 8  # 50 + 8 x 100 + 64 <= 1000 < 50 + 9 x 100 + 64
    assert (fit.action, fit.tokens_before, fit.tokens_after, fit.frames_before, fit.frames_after) == ("fewer-frames", 1650, 850, 16, 8)
    assert "needs 1,650 tokens (16 frames x 1 tile(s)) + 64 new, over the context of 1,000 (test)" in fit.as_dict()["reason"]


def test_fewer_tiles_lowers_tiles_first_then_frames():
    fitted, fit = fit_media(media(4, tiles=6), per_frame(), 0, ContextLimit(1300, "test"), "fewer-tiles", pytest.fail)
    assert (fit.action, fitted.tiles, len(fitted.frames)) == ("fewer-tiles", 3, 4)
    fitted, fit = fit_media(media(8, tiles=2), per_frame(), 0, ContextLimit(500, "test"), "fewer-tiles", media)
    assert (fit.action, fitted.tiles, len(fitted.frames)) == ("fewer-frames", 1, 4)


def test_refuse_and_nothing_fits_name_the_item_and_the_fix():
    with pytest.raises(ContextOverflow, match=r"refused before the call \(refuse\): lower --max-frames to 8") as info:
        fit_media(media(16), per_frame(), 64, ContextLimit(1000, "test"), "refuse", pytest.fail)
    assert info.value.fit.action == "refused" and info.value.fit.as_dict()["frames_after"] is None
    with pytest.raises(ContextOverflow, match="shorten the prompt or lower max_new_tokens"):
        fit_media(media(4), per_frame(text=950), 64, ContextLimit(1000, "test"), "fewer-frames", media)
    with pytest.raises(ContextOverflow):  # an image has no frames to drop
        fit_media(media(1, reader="image"), per_frame(text=990), 64, ContextLimit(1000, "test"), "fewer-frames", media)


def test_the_lower_of_the_engines_limit_and_the_setting_wins():
    class Engine:
        def context_limit(self):
            return ContextLimit(4096, "the model config")

    assert context_limit(Engine(), None) == ContextLimit(4096, "the model config")
    assert context_limit(Engine(), 1000) == ContextLimit(1000, "--max-model-len")
    assert context_limit(Engine(), 9000).tokens == 4096
    assert context_limit(object(), 500) == ContextLimit(500, "--max-model-len") and context_limit(object(), None) is None


# ------------------------------------------------------------ the native engine


@pytest.fixture(scope="module")
def engine():
    from vlm_bench.config import resolve_model
    from vlm_bench.runners.native_backend import NativeEngine

    torch.set_num_threads(1)
    eng = NativeEngine(resolve_model("tiny-internvl3"))
    eng.load()
    return eng


def frames_of(n: int, size=(96, 128)) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(n)
    return tuple(rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(n))


@pytest.mark.parametrize("kind", ["video", "labelled tiles", "image", "judge stills", "reference"])
def test_the_native_count_equals_the_processors_input_ids(engine, kind):
    selection = FrameSelection((0, 1, 2), 3, "uniform", None, "opencv")
    item = VideoInput("x", frames_of(7), replace(selection, selected_indices=tuple(range(7))), "v.mp4")
    if kind == "labelled tiles":
        item = replace(item, frame_label="Frame-{index}: ", tiles=4, frames=frames_of(5, (300, 700)))
    elif kind == "image":
        item = VideoInput("x", frames_of(1, (500, 900)), replace(selection, selected_indices=(0,), reader="image"), "a.png")
    elif kind == "judge stills":
        item = replace(item, frames=frames_of(3, (200, 450)), frame_labels=("First: ", "Expected: ", "Generated: "))
    elif kind == "reference":
        item = replace(item, reference=frames_of(1, (400, 400))[0])
    prompt = "Which way does the square move? Answer in one word."
    counted = engine.prompt_tokens(item, prompt)
    assert counted == engine.prepare_inputs([(item, prompt)])["input_ids"].shape[1]
    assert counted > 7 * 16 if kind == "video" else counted > 0


@pytest.fixture(scope="module")
def short_context_model(tmp_path_factory):
    """The tiny InternVL with max_position_embeddings 400: room for the text and a few frames of 16 tokens."""
    from vlm_bench.registry.tiny_internvl import ensure_tiny_internvl

    folder = tmp_path_factory.mktemp("short") / "tiny-400"
    shutil.copytree(ensure_tiny_internvl(), folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["max_position_embeddings"] = 400
    (folder / "config.json").write_text(json.dumps(config))
    yaml_path = folder.parent / "short.yaml"
    yaml_path.write_text(f"family: internvl3\nengine: native\nhf_repo: {folder}\nvision_args: {{short_side: 64}}\n")
    return yaml_path


def run_short(pytester, model, *args, out="out"):
    pytester.makepyfile(test_eval=EVAL_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", "--model", str(model), "--dataset", str(SMOKE_JSONL),
                                "--results-dir", out, "--max-new-tokens", "16", *args)
    return result, {r["id"]: r for r in read_jsonl(pytester.path / out / "items.jsonl")}


def test_a_tiny_model_with_a_short_context_gets_fewer_frames_never_an_engine_error(pytester, short_context_model):
    result, records = run_short(pytester, short_context_model, "--backend", "native", "--max-frames", "16")
    assert all(r["error"] is None for r in records.values()), [r["error"] for r in records.values()]
    cut = {k: r for k, r in records.items() if r["context"]}
    assert cut and all(r["context"]["action"] == "fewer-frames" for r in cut.values())
    for r in cut.values():
        ctx = r["context"]
        assert ctx["limit"] == 400 and ctx["source"] == "the model config's max_position_embeddings"
        assert ctx["tokens_before"] + 16 > 400 >= ctx["tokens_after"] + 16 and not ctx["estimated"]
        assert len(r["video"]["selected_indices"]) == ctx["frames_after"] < ctx["frames_before"] == 16
        assert r["warnings"]["context_cut"].startswith(f"the prompt needs {ctx['tokens_before']:,} tokens")
    # the frames kept are the sampler's own choice for that many (uniform stays uniform over the clip)
    from vlm_bench.utils.sampling import uniform_indices

    square = records["square_direction"]
    assert square["video"]["selected_indices"] == uniform_indices(48, square["context"]["frames_after"], 24.0)


def test_refuse_gives_each_overflowing_item_an_error_record_before_the_call(pytester, short_context_model, monkeypatch):
    from vlm_bench.runners.native_backend import NativeEngine

    called = []
    original = NativeEngine.generate
    monkeypatch.setattr(NativeEngine, "generate", lambda self, batch, *a, **k: called.append(len(batch)) or original(self, batch, *a, **k))
    result, records = run_short(pytester, short_context_model, "--backend", "native", "--max-frames", "16",
                                "--context-policy", "refuse")
    refused = [r for r in records.values() if r["context"]]
    assert refused and all(r["context"]["action"] == "refused" and "refused before the call (refuse)" in r["error"] for r in refused)
    assert all(r["error"].startswith(f"item {r['id']!r}: the prompt needs") for r in refused)
    assert sum(called) == len(records) - len(refused)  # the refused never reached the engine


# ------------------------------------------------------------ a served model


def test_a_server_that_reports_max_model_len_gets_prompts_that_fit(pytester):
    pytest.importorskip("openai")
    from fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as srv:
        srv.max_model_len = 1500
        result, records = run_short(pytester, "tiny-internvl3", "--backend", "openai", "--base-url", srv.url, "--max-frames", "8")
        assert all(r["error"] is None for r in records.values()), [r["error"] for r in records.values()]
        cut = [r for r in records.values() if r["context"]]
        assert cut and all(r["context"]["estimated"] and r["context"]["limit"] == 1500 for r in cut)
        assert "GET /models" in cut[0]["context"]["source"]
        assert all(srv.prompt_tokens(body) + body["max_tokens"] <= 1500 for body in srv.requests)

    with FakeOpenAIServer() as srv:  # a server that does not say: the setting
        result, records = run_short(pytester, "tiny-internvl3", "--backend", "openai", "--base-url", srv.url,
                                    "--max-frames", "8", "--max-model-len", "1500", out="out2")
        cut = [r for r in records.values() if r["context"]]
        assert cut and all(r["context"]["source"] == "--max-model-len" for r in cut)


def test_the_policy_is_checked_before_anything_runs(pytester):
    pytester.makepyfile(test_eval=EVAL_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", "--dataset", str(SMOKE_JSONL), "--context-policy", "shrink")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--context-policy*invalid choice*shrink*"])
