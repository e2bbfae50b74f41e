import textwrap

import numpy as np

from conftest import SMOKE_JSONL, SQUARE_MP4
from vlm_bench.config import build_run_config, load_dataset_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.frames import load_media
from vlm_bench.runners.mock_backend import MockEngine
from vlm_bench.types import DecodeConfig, VideoConfig


def mock_model(tmp_path, **extra):
    body = "family: mock\n" + textwrap.dedent("".join(f"{k}: {v}\n" for k, v in extra.items()))
    path = tmp_path / "mock.yaml"
    path.write_text(body)
    return str(path)


def smoke_evaluator(model="mock", **kw):
    run = build_run_config(model=model, datasets=[str(SMOKE_JSONL)], **kw)
    samples = load_samples(run.datasets[0])
    return Evaluator(run, samples), samples


def test_clean_mock_run_passes_every_smoke_item():
    ev, samples = smoke_evaluator()
    records = [ev.evaluate(s) for s in samples]
    assert all(r.passed and r.error is None for r in records), [r.failure_summary() for r in records if not r.passed]
    video_rec = next(r for r in records if r.id == "square_direction")
    assert video_rec.video["selected_indices"] == [2, 8, 14, 20, 26, 31, 37, 43]  # mock.yaml: 8 frames
    assert video_rec.video["reader"] == "opencv" and video_rec.video["num_frames_total"] == 48  # short: read sequentially
    assert video_rec.latency_ms is not None and video_rec.latency_ms >= 0
    override = next(r for r in records if r.id == "colour_first")
    assert override.video["strategy"] == "stride" and override.video["selected_indices"] == [0, 20, 30, 50]


def test_scripted_responses_and_default_response(tmp_path):
    model = mock_model(tmp_path, responses='{square_direction: "left", square_colour_mc: "The answer is B."}',
                       default_response='"no idea"')
    ev, samples = smoke_evaluator(model)
    by_id = {s.id: ev.evaluate(s) for s in samples}
    assert not by_id["square_direction"].passed and by_id["square_direction"].prediction == "left"
    assert by_id["square_colour_mc"].passed and by_id["square_colour_mc"].score == 1.0
    assert by_id["colour_count"].prediction == "no idea" and not by_id["colour_count"].passed


def test_truncation_and_stop_strings(tmp_path):
    model = mock_model(tmp_path, default_response='"one two three four five"')
    ev, samples = smoke_evaluator(model, decode_overrides={"max_new_tokens": 2})
    rec = ev.evaluate(samples[0])
    assert rec.truncated and rec.prediction == "one two" and rec.tokens == 2
    ev, samples = smoke_evaluator(model, decode_overrides={"max_new_tokens": 10})
    rec = ev.evaluate(samples[0])
    assert not rec.truncated and rec.tokens == 5


def test_missing_media_fails_that_item_only(tmp_path, write_jsonl):
    path = write_jsonl([
        {"id": "gone", "video": "nowhere.mp4", "question": "q", "answer": "a"},
        {"id": "ok", "video": str(SQUARE_MP4), "question": "q", "answer": "a"},
    ])
    run = build_run_config(model="mock", datasets=[str(path)])
    ev = Evaluator(run, load_samples(run.datasets[0]))
    gone, ok = (ev.evaluate(s) for s in load_samples(run.datasets[0]))
    assert not gone.passed and "video file not found" in gone.error and "'gone'" in gone.error
    assert "data.jsonl:1" in gone.error and gone.video is None and gone.prediction is None
    assert ok.passed and ok.error is None


def test_engine_exception_is_recorded(monkeypatch):
    def boom(self, media, prompt, decode, model_cfg=None):
        raise RuntimeError("CUDA exploded")

    monkeypatch.setattr(MockEngine, "generate_video", boom)
    ev, samples = smoke_evaluator()
    rec = ev.evaluate(samples[0])
    assert not rec.passed and rec.error == f"engine error on item {samples[0].id!r}: RuntimeError: CUDA exploded"


def test_load_failure_is_reported_on_every_item(monkeypatch):
    def fail(self):
        raise RuntimeError("weights not found")

    monkeypatch.setattr(MockEngine, "load", fail)
    ev, samples = smoke_evaluator()
    records = [ev.evaluate(s) for s in samples[:3]]
    assert all("failed to load model 'mock': weights not found" in r.error for r in records)


def test_unimplemented_backend_is_a_clear_error(monkeypatch):
    import vlm_bench.runners as runners

    monkeypatch.setitem(runners.ENGINES, "native", "vlm_bench.runners.no_such_backend:Engine")
    ev, samples = smoke_evaluator("internvl3_1b", backend="native")
    assert "is not part of this vlm-bench version" in ev.evaluate(samples[0]).error


def test_one_load_for_many_items():
    before = MockEngine.loads
    ev, samples = smoke_evaluator()
    for s in samples:
        ev.evaluate(s)
    assert MockEngine.loads - before == 1


def test_engine_sees_the_sampled_frames(monkeypatch):
    seen = {}
    original = MockEngine.generate_video

    def spy(self, media, prompt, decode, model_cfg=None):
        seen["frames"], seen["prompt"] = media.frames, prompt
        return original(self, media, prompt, decode, model_cfg)

    monkeypatch.setattr(MockEngine, "generate_video", spy)
    ev, samples = smoke_evaluator()
    sample = next(s for s in samples if s.id == "square_colour_mc")
    ev.evaluate(sample)
    media = load_media(sample, VideoConfig(max_frames=8))
    assert len(seen["frames"]) == 8
    assert all(np.array_equal(a, b) for a, b in zip(seen["frames"], media.frames))
    assert seen["prompt"] == (
        "What colour is the moving square?\nA. red\nB. white\nC. green\nD. black\n"
        "Answer with the option's letter from the given choices directly."
    )


def test_unlettered_options_get_letters():
    ev, samples = smoke_evaluator()
    ev.load()
    sample = next(s for s in samples if s.id == "colour_last")
    prompt = ev.adapter.build_prompt(sample, ev.datasets["smoke"])
    assert "\nA. red\nB. green\nC. blue\n" in prompt


def test_dataset_prompt_template(tmp_path):
    (tmp_path / "d.jsonl").write_text(f'{{"id": "a", "video": "{SQUARE_MP4}", "question": "Q?", "answer": "x"}}\n')
    (tmp_path / "d.yaml").write_text('path: d.jsonl\nprompt: {open: "Watch closely. {question} One word."}\n')
    ds = load_dataset_config(tmp_path / "d.yaml")
    ev = Evaluator(build_run_config(model="mock", datasets=[str(tmp_path / "d.yaml")]))
    ev.load()
    (sample,) = load_samples(ds)
    assert ev.adapter.build_prompt(sample, ds) == "Watch closely. Q? One word."


def test_item_with_impossible_frame_settings_is_an_item_error(write_jsonl):
    path = write_jsonl([{"id": "a", "video": {"path": str(SQUARE_MP4), "strategy": "fps"}, "question": "q", "answer": "x"}])
    run = build_run_config(model="mock", datasets=[str(path)])
    (sample,) = load_samples(run.datasets[0])
    rec = Evaluator(run, [sample]).evaluate(sample)
    assert "strategy 'fps' needs an fps" in rec.error and "item 'a'" in rec.error


def test_record_has_decode_config():
    ev, samples = smoke_evaluator(decode_overrides={"max_new_tokens": 33})
    rec = ev.evaluate(samples[0])
    assert rec.decode == DecodeConfig(0.0, 33, ()).as_dict()
