"""The VLMEvalKit backend against the real ``vlmeval`` package (the ``vlmeval`` extra;
``tox -e vlmeval``). Real InternVLChat needs CUDA and remote-code weights, so the model is
a tiny stand-in registered in VLMEvalKit's own ``supported_VLM``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EVAL_TEST, SMOKE_JSONL, read_jsonl
from vlm_bench.config import build_run_config, resolve_model
from vlm_bench.datasets import load_samples
from vlm_bench.frames import load_media
from vlm_bench.runners.vlmeval_backend import VLMEvalKitEngine, import_vlmeval
from vlm_bench.types import VideoConfig

HERE = Path(__file__).resolve().parent


def test_import_puts_tls_grad_and_seeds_back():
    """In a fresh interpreter: a bare import of vlmeval changes them; ours restores them."""
    probe = (
        "import ssl, random, numpy as np, torch\n"
        "def state():\n"
        "    return (ssl._create_default_https_context.__name__, torch.is_grad_enabled(),\n"
        "            torch.random.get_rng_state().sum().item(), float(np.random.get_state()[1][:4].sum()), random.random())\n"
        "torch.manual_seed(7); np.random.seed(7); random.seed(7)\n"
        "before = state()\n"
        "torch.manual_seed(7); np.random.seed(7); random.seed(7)\n"
        "{action}\n"
        "after = state()\n"
        "print(before == after, before[:2], after[:2])\n"
    )
    bare = subprocess.run([sys.executable, "-c", probe.format(action="import vlmeval.config")],
                          capture_output=True, text=True, timeout=300)
    ours = subprocess.run([sys.executable, "-c", probe.format(
        action="from vlm_bench.runners.vlmeval_backend import import_vlmeval; import_vlmeval()")],
        capture_output=True, text=True, timeout=300)
    assert bare.stdout.startswith("False") and "_create_unverified_context" in bare.stdout, bare.stdout + bare.stderr
    assert ours.stdout.startswith("True ('create_default_context', True)"), ours.stdout + ours.stderr


def test_internvlchat_prompt_lists_one_frame_line_per_sampled_frame(tmp_path):
    from vlmeval.vlm.internvl.utils import build_video_prompt, reorganize_prompt

    run = build_run_config(model="mock", datasets=[str(SMOKE_JSONL)])
    sample = next(s for s in load_samples(run.datasets[0]) if s.id == "square_colour_mc")
    media = load_media(sample, VideoConfig(max_frames=6))
    engine = VLMEvalKitEngine(resolve_model("internvl3_38b"), frames_dir=str(tmp_path))
    message = engine.message(media, "What colour is the moving square?")
    assert [m["type"] for m in message] == ["image"] * 6 + ["text"]
    assert len({m["value"] for m in message[:6]}) == 6
    prompt = build_video_prompt(reorganize_prompt(message, 6, dataset="MVBench"), "MVBench")
    lines = prompt.splitlines()
    assert lines[:6] == [f"Frame-{k}: <image>" for k in range(1, 7)]
    assert lines[6] == "What colour is the moving square?"
    # the files hold the sampler's frames, in order, unchanged (PNG)
    import cv2
    import numpy as np

    for m, frame in zip(message, media.frames):
        assert np.array_equal(cv2.cvtColor(cv2.imread(m["value"]), cv2.COLOR_BGR2RGB), frame)
    assert engine.message(media, "again")[0]["value"] == message[0]["value"]  # written once


def test_video_mme_letter_line_appears_once_in_internvlchats_prompt(tmp_path):
    """The videomme template ends with VLMEvalKit's letter line; InternVLChat's own
    build_video_prompt appends it again for 'Video-MME', so the engine sends it without."""
    from vlmeval.vlm.internvl.utils import build_video_prompt, reorganize_prompt

    from vlm_bench.config import resolve_dataset
    from vlm_bench.runners.vlmeval_backend import LETTER_LINE, vlmeval_video_text

    template = resolve_dataset("videomme", root=str(SMOKE_JSONL.parent.parent / "benchmarks" / "videomme"))
    prompt = template.prompt_template("mc").format(question="Q?", options="A. x\nB. y\nC. z\nD. w")
    assert prompt.endswith(LETTER_LINE.strip())
    run = build_run_config(model="mock", datasets=[str(SMOKE_JSONL)])
    sample = next(s for s in load_samples(run.datasets[0]) if s.id == "square_colour_mc")
    media = load_media(sample, VideoConfig(max_frames=2))
    engine = VLMEvalKitEngine(resolve_model("internvl3_38b"), frames_dir=str(tmp_path))
    sent, seen = vlmeval_video_text(prompt, "Video-MME")
    final = build_video_prompt(reorganize_prompt(engine.message(media, sent), 2, dataset="Video-MME"), "Video-MME")
    assert final.count(LETTER_LINE.strip()) == 1
    assert final.endswith(seen)


def test_frame_files_are_keyed_by_content_not_name(tmp_path):
    run = build_run_config(model="mock", datasets=[str(SMOKE_JSONL)])
    sample = load_samples(run.datasets[0])[0]
    copy = tmp_path / "same.mp4"
    copy.write_bytes(Path(sample.video).read_bytes())
    from dataclasses import replace

    engine = VLMEvalKitEngine(resolve_model("internvl3_38b"), frames_dir=str(tmp_path / "f"))
    a = load_media(sample, VideoConfig(max_frames=4))
    b = load_media(replace(sample, video=str(copy)), VideoConfig(max_frames=4))
    c = load_media(sample, VideoConfig(max_frames=5))
    assert engine.frames.key(a) == engine.frames.key(b) != engine.frames.key(c)


def test_non_video_dataset_name_warns(tmp_path):
    engine = VLMEvalKitEngine(resolve_model("internvl3_38b"), frames_dir=str(tmp_path))
    engine._modality = import_vlmeval()["DATASET_MODALITY"]
    with pytest.warns(UserWarning, match="does not know 'MMBench' as a video dataset"):
        engine.check_dataset("MMBench")
    with warnings_as_errors():
        engine.check_dataset("Video-MME")


class warnings_as_errors:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_end_to_end_through_vlmevalkits_registry(pytester, tmp_path):
    """pytest evals --backend=vlmeval with a model from supported_VLM, through
    BaseModel.generate's message checks and InternVLChat's prompt functions."""
    pytester.makeconftest(
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
        "import tiny_vlmeval_model\ntiny_vlmeval_model.register()\n"
    )
    pytester.makepyfile(test_vlmeval_items=EVAL_TEST)
    model = pytester.path / "tiny_vlmeval.yaml"
    model.write_text("family: internvl3\nengine: vlmeval\nmodel_name: TinyInternVL3-vlmbench\n"
                     "vlmeval_dataset: MVBench\nvideo: {max_frames: 4}\n")
    out = pytester.path / "out"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--model", str(model), "--dataset", str(SMOKE_JSONL),
                                           "--max-new-tokens", "6", "--results-dir", str(out))
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 9, result.stdout.str()
    records = read_jsonl(out / "items.jsonl")
    assert all(r["backend"] == "vlmeval" and r["error"] is None for r in records), [r["error"] for r in records]
    assert all(r["prediction"] is not None and r["tokens"] is not None for r in records)
    assert any(r["truncated"] for r in records)  # 6 new tokens from a random model: the limit is reached
    assert all(len(r["video"]["selected_indices"]) <= 4 for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["manifest"]["config"]["backend"] == "vlmeval" and summary["total"] == 9


def test_preset_vlmevalkit_is_what_vlmevalkit_itself_builds_for_its_datasets(tmp_path):
    """--preset vlmevalkit: VLMEvalKit's own reorganize_prompt and build_video_prompt, run
    on the message this backend sends, give the text the native and openai backends send
    (tests/test_presets.py derives it by hand from VLMEvalKit's code)."""
    from vlmeval.vlm.internvl.utils import build_video_prompt, reorganize_prompt

    from test_presets import (MVBENCH, MVBENCH_ITEM, VIDEOMME, VIDEOMME_ITEM, expected_vlmevalkit_mvbench,
                              expected_vlmevalkit_videomme, raw_row, sent)
    from vlm_bench.runners.vlmeval_backend import vlmeval_video_text

    engine = VLMEvalKitEngine(resolve_model("internvl3_38b"), frames_dir=str(tmp_path))
    sample, media, prompt = sent("vlmevalkit", "mvbench", MVBENCH, MVBENCH_ITEM)
    text, _ = vlmeval_video_text(prompt, "MVBench")
    built = build_video_prompt(reorganize_prompt(engine.message(media, text), 8, dataset="MVBench"), "MVBench")
    assert built == expected_vlmevalkit_mvbench(raw_row("action_sequence.json", 0), 8)
    sample, media, prompt = sent("vlmevalkit", "videomme", VIDEOMME, VIDEOMME_ITEM)
    text, seen = vlmeval_video_text(prompt, "Video-MME")
    built = build_video_prompt(reorganize_prompt(engine.message(media, text), 8, dataset="Video-MME"), "Video-MME")
    assert built == expected_vlmevalkit_videomme(sample.question, list(sample.options), 8)
    assert built.endswith(seen)


def test_preset_vlmevalkit_frames_are_vlmevalkits_own_indices():
    """VLMEvalKit's dataset classes compute the indices; the preset's frames are those."""
    import numpy as np
    from vlmeval.dataset.mvbench import MVBench

    from test_presets import MVBENCH, MVBENCH_ITEM, sent

    _, media, _ = sent("vlmevalkit", "mvbench", MVBENCH, MVBENCH_ITEM)
    stand_in = MVBench.__new__(MVBench)  # get_index needs only num_segments
    stand_in.num_segments = 8
    assert list(media.selection.selected_indices) == list(np.asarray(stand_in.get_index((2.5, 7.5), 10.0, 99)))
