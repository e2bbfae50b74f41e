"""--preset for video QA: each preset sends what its reference sends, checked item by item
against text and frame indices derived here by hand from the reference's own code (quoted
with its source), not from the preset's YAML. What the model sees is read back from the
native engine's real processor output (tiny InternVL3) and from the openai request.

References: InternVL internvl_chat/eval/mvbench/evaluate_mvbench.py @0355722a;
VLMEvalKit 0.0.20 (vlmeval/dataset/mvbench.py, videomme.py, vlm/internvl/utils.py);
lmms-eval @75571cfe (models/simple/internvl3.py, tasks/mvbench/utils.py, tasks/videomme/utils.py)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, REPO, read_jsonl
from vlm_bench.config import ConfigError, build_run_config
from vlm_bench.config.preset import resolve_preset, tiles_for
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.registry import adapter_class
from vlm_bench.runners.chat_request import chat_messages

MVBENCH = str(FIXTURES / "benchmarks" / "mvbench")
VIDEOMME = str(FIXTURES / "benchmarks" / "videomme")
MVBENCH_ITEM = "action_sequence_0000"  # ABC12.mp4: 100 frames at 10 fps, start 2.5 s, end 7.5 s
VIDEOMME_ITEM = "001-1"  # fixA01.mp4: 60 frames at 10 fps

MVBENCH_SYS = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
               "movement of objects, and the action and pose of persons. Based on your observations, select the best "
               "option that accurately addresses the question.\n")
VIDEOMME_LEAD = ("\nThese are the frames of a video. Select the best answer to the following multiple-choice question "
                 "based on the video. Respond with only the letter (A, B, C, or D) of the correct option.\n")
LETTER_LINE = "\nAnswer with the option's letter from the given choices directly."


def raw_row(json_name: str, index: int) -> dict:
    return json.loads((FIXTURES / "benchmarks" / "mvbench" / "json" / json_name).read_text())[index]


def get_index(bound, fps, max_frame, num_segments, first_idx=0):
    """InternVL evaluate_mvbench.py, VLMEvalKit MVBench and lmms-eval internvl3 share this:
        start_idx = max(first_idx, round(start * fps)); end_idx = min(round(end * fps), max_frame)
        seg_size = float(end_idx - start_idx) / num_segments
        int(start_idx + (seg_size / 2) + np.round(seg_size * idx))"""
    start, end = bound if bound else (-100000, 100000)
    start_idx = max(first_idx, round(start * fps))
    end_idx = min(round(end * fps), max_frame)
    seg_size = float(end_idx - start_idx) / num_segments
    return [int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)]


def videomme_indices(n_frames, nframe):
    """VLMEvalKit VideoMME.save_video_frames: step_size = len(vid) / (self.nframe + 1);
    indices = [int(i * step_size) for i in range(1, self.nframe + 1)]"""
    step_size = n_frames / (nframe + 1)
    return [int(i * step_size) for i in range(1, nframe + 1)]


def mvbench_qa(row) -> str:
    """qa_template (InternVL and VLMEvalKit alike): "Question: {q}\\n" + "Options:\\n" +
    "({L}) {c}\\n" per candidate, then .rstrip()."""
    question = f"Question: {row['question']}\n" + "Options:\n"
    for idx, c in enumerate(row["candidates"]):
        question += f"({chr(ord('A') + idx)}) {c}\n"
    return question.rstrip()


def expected_internvl_mvbench(row, n):
    """evaluate_mvbench.py: special_tokens = '\\n'.join(['Frame{}: <image>'.format(i + 1) ...]);
    question = special_tokens + '\\n' + self.prompt + '\\n' + question + self.question_prompt;
    question_prompt = '\\nOnly give the best option.'"""
    special = "\n".join("Frame{}: <image>".format(i + 1) for i in range(n))
    return special + "\n" + MVBENCH_SYS + "\n" + mvbench_qa(row) + "\nOnly give the best option."


def expected_vlmevalkit_mvbench(row, n):
    """MVBench.build_prompt: [SYS, image x n, qa, '\\nOnly give the best option.', 'Best option:(']
    -> reorganize_prompt: texts concatenated, 'Image-k: <image>\\n' lines first -> build_video_prompt:
    'Image-k' -> 'Frame-k', MVBench drops 'Best option:('."""
    text = MVBENCH_SYS + mvbench_qa(row) + "\nOnly give the best option." + "Best option:("
    prompt = "".join(f"Image-{i + 1}: <image>\n" for i in range(n)) + text
    for i in range(n):
        prompt = prompt.replace(f"Image-{i + 1}", f"Frame-{i + 1}")
    return prompt.replace("Best option:(", "")


def expected_vlmevalkit_videomme(question, candidates, n):
    """VideoMME.build_prompt: [SYS '', image x n, FRAMES_TMPL_NOSUB, 'Question: {}\\nAnswer: '.format(
    question + '\\n' + '\\n'.join(candidates))] -> reorganize_prompt -> build_video_prompt: Video-MME
    drops '\\nAnswer:' and appends "\\nAnswer with the option's letter from the given choices directly." """
    prompt = "".join(f"Image-{i + 1}: <image>\n" for i in range(n)) + "" + VIDEOMME_LEAD
    prompt += "Question: {}\nAnswer: ".format(question + "\n" + "\n".join(candidates))
    for i in range(n):
        prompt = prompt.replace(f"Image-{i + 1}", f"Frame-{i + 1}")
    return prompt.replace("\nAnswer:", "") + LETTER_LINE


def expected_lmms_mvbench(row, n):
    """internvl3.py: video_prefix = "".join([f"Frame{i + 1}: <image>\\n" ...]); question = video_prefix + contexts;
    mvbench_doc_to_text: "Question:" + doc["question"] + "\\nOption:\\n" + "({L}) {option}\\n"... + post_prompt
    ("Only give the best option.\\n")."""
    options = "".join(f"({chr(65 + i)}) {o}\n" for i, o in enumerate(row["candidates"]))
    contexts = "Question:" + row["question"] + "\nOption:\n" + options + "Only give the best option.\n"
    return "".join(f"Frame{i + 1}: <image>\n" for i in range(n)) + contexts


def expected_lmms_videomme(question, options, n):
    """videomme_doc_to_text: option_prompt + "\\n" + question + "\\n" + "\\n".join(options) + "\\n" + post_prompt,
    post_prompt "\\nAnswer with the option's letter from the given choices directly." """
    option_prompt = ("Select the best answer to the following multiple-choice question based on the video and the "
                     "subtitles. Respond with only the letter (A, B, C, or D) of the correct option.")
    contexts = option_prompt + "\n" + question + "\n" + "\n".join(options) + "\n" + LETTER_LINE
    return "".join(f"Frame{i + 1}: <image>\n" for i in range(n)) + contexts


# ---------------------------------------------------------------- what vlm-bench sends


@pytest.fixture(scope="module")
def tiny_engine():
    pytest.importorskip("torch")
    import torch

    from vlm_bench.config import resolve_model
    from vlm_bench.runners.native_backend import NativeEngine

    torch.set_num_threads(1)
    engine = NativeEngine(resolve_model("tiny_internvl3"))
    engine.load()
    return engine


def sent(preset: str, dataset: str, root: str, item: str, backend: str = "mock"):
    """(sample, media, prompt) for one item as the run with ``--preset`` prepares it."""
    run = build_run_config(model="mock" if backend == "mock" else "tiny_internvl3", backend=backend,
                           datasets=[dataset], dataset_roots=[root], preset=preset)
    evaluator = Evaluator(run)
    sample = next(s for s in load_samples(run.datasets[0]) if s.id == item)
    media = evaluator.media(sample)
    prompt = adapter_class(run.model.family)(run.model, None).build_prompt(sample, run.datasets[0], media)
    return sample, media, prompt


def native_text(engine, media, prompt) -> str:
    """The user turn the tiny InternVL3's processor builds, each image's tokens shown as <image>."""
    inputs = engine.prepare_inputs([(media, prompt)])
    text = engine.processor.tokenizer.decode(inputs["input_ids"][0])
    text = re.sub(r"<img>(?:<IMG_CONTEXT>)+</img>", "<image>", text)
    return text.split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]


def openai_text(media, prompt) -> str:
    messages = chat_messages(media, prompt, None, 448, placeholder="<image>")
    return messages[-1]["content"][0]["text"]


# ---------------------------------------------------------------- the parity tests


def test_internvl_preset_sends_the_official_mvbench_prompt_byte_for_byte(tiny_engine):
    sample, media, prompt = sent("internvl", "mvbench", MVBENCH, MVBENCH_ITEM)
    row = raw_row("action_sequence.json", 0)
    assert list(media.selection.selected_indices) == get_index((2.5, 7.5), 10.0, 99, 16)
    expected = expected_internvl_mvbench(row, 16)
    assert native_text(tiny_engine, media, prompt) == expected
    assert openai_text(media, prompt) == expected
    assert "addresses the question.\n\nQuestion:" in expected  # the blank line the default lacks


def test_vlmevalkit_preset_sends_its_mvbench_query_frames_and_jpeg_pixels(tiny_engine):
    sample, media, prompt = sent("vlmevalkit", "mvbench", MVBENCH, MVBENCH_ITEM)
    row = raw_row("action_sequence.json", 0)
    indices = get_index((2.5, 7.5), 10.0, 99, 8)
    assert list(media.selection.selected_indices) == indices
    expected = expected_vlmevalkit_mvbench(row, 8)
    assert native_text(tiny_engine, media, prompt) == expected
    assert openai_text(media, prompt) == expected
    # the frames are what Pillow's JPEG file (quality 75) gives back, pixel for pixel
    from PIL import Image

    import cv2

    capture = cv2.VideoCapture(sample.video)
    raw = []
    for i in range(100):
        ok, bgr = capture.read()
        assert ok
        if i in indices:
            raw.extend([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)] * indices.count(i))
    for got, frame in zip(media.frames, raw):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG")  # VLMEvalKit: im.save(pth) to frame-k-of-8.jpg
        assert np.array_equal(got, np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
        assert not np.array_equal(got, frame)


def test_vlmevalkit_preset_sends_its_videomme_query_and_interior_frames(tiny_engine):
    sample, media, prompt = sent("vlmevalkit", "videomme", VIDEOMME, VIDEOMME_ITEM)
    assert list(media.selection.selected_indices) == videomme_indices(60, 8) == [6, 13, 20, 26, 33, 40, 46, 53]
    expected = expected_vlmevalkit_videomme(sample.question, list(sample.options), 8)
    assert native_text(tiny_engine, media, prompt) == expected
    assert openai_text(media, prompt) == expected


def test_lmms_eval_preset_sends_its_prompts_whole_video_frames_and_tiles(tiny_engine):
    sample, media, prompt = sent("lmms-eval", "mvbench", MVBENCH, MVBENCH_ITEM)
    row = raw_row("action_sequence.json", 0)
    # load_video(video_path, num_segments=self.num_frame): no bound, so the whole video
    assert list(media.selection.selected_indices) == get_index(None, 10.0, 99, 32)
    # dynamic_max_num = max(1, min(self.max_num, self.total_max_num // self.num_frame)) = 64 // 32
    assert media.tiles == 2
    assert native_text(tiny_engine, media, prompt) == expected_lmms_mvbench(row, 32)
    sample, media, prompt = sent("lmms-eval", "videomme", VIDEOMME, VIDEOMME_ITEM)
    assert native_text(tiny_engine, media, prompt) == expected_lmms_videomme(sample.question, list(sample.options), 32)


def internvl_tiles(width, height, max_num, image_size):
    """InternVL's dynamic_preprocess (use_thumbnail=True) tile count: the closest aspect
    ratio among i x j <= max_num, a tie going to the larger grid when the image's area
    exceeds half of it; a thumbnail after several tiles."""
    aspect_ratio = width / height
    target_ratios = sorted({(i, j) for n in range(1, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                            if 1 <= i * j <= max_num}, key=lambda x: x[0] * x[1])
    best_ratio_diff, best_ratio, area = float("inf"), (1, 1), width * height
    for ratio in target_ratios:
        ratio_diff = abs(aspect_ratio - ratio[0] / ratio[1])
        if ratio_diff < best_ratio_diff:
            best_ratio_diff, best_ratio = ratio_diff, ratio
        elif ratio_diff == best_ratio_diff and area > 0.5 * image_size * image_size * ratio[0] * ratio[1]:
            best_ratio = ratio
    blocks = best_ratio[0] * best_ratio[1]
    return blocks + 1 if blocks != 1 else blocks


@pytest.mark.parametrize("size", [(160, 90), (90, 160), (300, 100), (100, 100), (130, 100), (64, 48)])
@pytest.mark.parametrize("tiles", [1, 2, 4, 12])
def test_frames_are_tiled_as_internvls_dynamic_preprocess_tiles_them(tiny_engine, size, tiles):
    from dataclasses import replace

    _, media, _ = sent("lmms-eval", "mvbench", MVBENCH, MVBENCH_ITEM)
    frames = tuple(np.random.RandomState(0).randint(0, 255, (size[1], size[0], 3), dtype=np.uint8) for _ in range(2))
    media = replace(media, frames=frames, tiles=tiles)
    image_size = tiny_engine.model.config.vision_config.image_size[0]
    got = tiny_engine.prepare_inputs([(media, "Q?")])["pixel_values"].shape[0]
    assert got == 2 * internvl_tiles(*size, tiles, image_size)


def test_tiles_follow_the_budget_rule():
    assert [tiles_for({"max": 12, "total": 64}, n) for n in (1, 4, 8, 16, 32, 64, 128)] == [12, 12, 8, 4, 2, 1, 1]
    assert tiles_for({}, 8) == 1


def test_one_tile_frames_as_images_are_the_video_paths_pixels(tiny_engine):
    """A preset's labels send frames as images; with one tile each the pixels and the
    tokens around them are the video path's."""
    from dataclasses import replace

    _, media, prompt = sent("internvl", "mvbench", MVBENCH, MVBENCH_ITEM)
    video = tiny_engine.prepare_inputs([(media, prompt)])
    relabelled = tiny_engine.prepare_inputs([(replace(media, frame_label="Frame-{index}: "), prompt)])
    assert np.array_equal(video["pixel_values"].numpy(), relabelled["pixel_values"].numpy())
    assert video["input_ids"].shape[1] + 16 == relabelled["input_ids"].shape[1]  # one "-" token per frame


def test_default_run_is_unchanged_by_presets_existing():
    """No --preset: the dataset's own template and the model card's labels."""
    sample, media, prompt = sent(None, "mvbench", MVBENCH, MVBENCH_ITEM)
    assert media.frame_label == "Frame{index}: " and media.tiles == 1
    assert "addresses the question.\nQuestion:" in prompt
    assert len(media.frames) == 16


# ---------------------------------------------------------------- records, manifest, errors


def test_records_and_manifest_name_the_preset_and_its_source(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "evals"), "-p", "no:cacheprovider", "-q", "--backend", "mock",
         "--dataset", "mvbench", "--dataset-root", MVBENCH, "--preset", "vlmevalkit", "--limit", "3",
         "--min-pass-rate", "0", "--results-dir", str(tmp_path / "r")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    records = read_jsonl(tmp_path / "r" / "items.jsonl")
    assert len(records) == 3
    assert {json.dumps(r["preset"], sort_keys=True) for r in records} == {json.dumps(
        {"name": "vlmevalkit", "recipe": "mvbench", "source": "ms-vlmeval 0.0.20"}, sort_keys=True)}
    assert all(len(r["video"]["selected_indices"]) == 8 for r in records)
    manifest = json.loads((tmp_path / "r" / "summary.json").read_text())["manifest"]
    assert manifest["config"]["preset"]["name"] == "vlmevalkit"
    assert manifest["config"]["preset"]["source"] == {"package": "ms-vlmeval", "version": "0.0.20", "files": [
        "vlmeval/dataset/mvbench.py", "vlmeval/dataset/videomme.py", "vlmeval/dataset/video_base.py",
        "vlmeval/dataset/video_dataset_config.py", "vlmeval/vlm/internvl/internvl_chat.py", "vlmeval/vlm/internvl/utils.py"]}
    assert manifest["config"]["datasets"][0]["frame_label"] == "Frame-{index}: "
    fingerprint = json.loads((tmp_path / "r" / "run.json").read_text())["fingerprint"]
    assert fingerprint["datasets"][0]["preset"] == "vlmevalkit"


def test_a_preset_changes_the_fingerprint_so_runs_do_not_mix():
    from vlm_bench.config import run_fingerprint

    plain = build_run_config(model="mock", datasets=["mvbench"], dataset_roots=[MVBENCH])
    preset = build_run_config(model="mock", datasets=["mvbench"], dataset_roots=[MVBENCH], preset="internvl")
    assert run_fingerprint(plain) != run_fingerprint(preset)
    assert "preset" not in json.dumps(run_fingerprint(plain))


def test_vlmeval_backend_refuses_a_preset_it_cannot_send():
    with pytest.raises(ConfigError, match="--backend vlmeval sends VLMEvalKit's own query: use --preset vlmevalkit"):
        build_run_config(model="internvl3_38b", backend="vlmeval", datasets=["mvbench"], dataset_roots=[MVBENCH],
                         preset="internvl")


def test_unknown_preset_is_named_with_the_catalog():
    with pytest.raises(ConfigError, match=r"unknown preset 'vlmevalkt'.*did you mean vlmevalkit"):
        build_run_config(model="mock", datasets=["mvbench"], dataset_roots=[MVBENCH], preset="vlmevalkt")


def test_served_tiles_are_a_recorded_difference():
    run = build_run_config(model="tiny_internvl3", backend="openai", datasets=["mvbench"], dataset_roots=[MVBENCH],
                           preset="lmms-eval", server_overrides={"base_url": "http://127.0.0.1:9/v1"})
    assert any("tiles per frame" in d for d in run.datasets[0].preset["differences"])


def test_every_shipped_preset_loads_and_names_a_pinned_source():
    for name in ("internvl", "vlmevalkit", "lmms-eval"):
        preset = resolve_preset(name)
        assert preset.source.get("commit") or preset.source.get("version")
        assert re.fullmatch(r"[0-9a-f]{40}", str(preset.source.get("commit", "0" * 40)))
