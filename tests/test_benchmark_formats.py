"""Dataset loaders for the real benchmark formats, over format-exact fixture files
(fixtures/make_benchmark_fixtures.py), through the shipped dataset configs."""

import json
from dataclasses import replace

import pytest

from conftest import EVAL_TEST, FIXTURES, read_jsonl
from vlm_bench.config import ConfigError, build_run_config, resolve_dataset
from vlm_bench.datasets import DatasetError, load_samples, select_samples
from vlm_bench.evaluate import Evaluator, load_media
from vlm_bench.types import VideoConfig
from vlm_bench.utils.subtitles import lines_at, parse_srt
from vlm_bench.utils.synthetic import band_index
from vlm_bench.utils.video import uniform_indices

BENCH = FIXTURES / "benchmarks"


def mvbench_fixture():
    cfg = resolve_dataset("mvbench", BENCH / "mvbench")
    tasks = {k: v for k, v in cfg.source["tasks"].items() if k in ("Action Sequence", "Episodic Reasoning")}
    tasks["Moving Direction"] = {"json": "moving_direction.json", "prefix": "video/clevrer/gifs/", "type": "gif", "bound": False}
    return replace(cfg, source=dict(cfg.source, tasks=tasks))


# ---------------------------------------------------------------- Video-MME


def test_videomme_rows_become_mc_items_with_its_categories():
    cfg = resolve_dataset("videomme", BENCH / "videomme")
    samples = load_samples(cfg)  # the real config reads the real Parquet layout
    assert [s.id for s in samples] == ["001-1", "001-2", "002-3", "002-1", "003-2"]
    s = samples[2]
    assert s.video == str(BENCH / "videomme" / "data" / "fixB02.mp4")
    assert s.options == ("A. first 2", "B. second 2", "C. third 2", "D. fourth 2")
    assert s.answer == "B" and s.scorer == "mc"
    assert s.categories == {"duration": "medium", "domain": "Sports Competition", "sub_category": "Football",
                            "task_type": "Action Reasoning"}
    assert s.cluster == "fixB02" and s.subtitles is None


def test_videomme_prompt_uses_the_reference_wording():
    cfg = resolve_dataset("videomme", BENCH / "videomme")
    ev = Evaluator(build_run_config(model="mock", datasets=["videomme"], dataset_roots=[str(BENCH / "videomme")]))
    ev.load()
    prompt = ev.adapter.build_prompt(load_samples(cfg)[0], cfg)
    assert prompt.endswith("A. first 0\nB. second 0\nC. third 0\nD. fourth 0\n"
                           "Answer with the option's letter from the given choices directly.")


def test_srt_parsing_and_lines_at_moments(tmp_path):
    cues = parse_srt(BENCH / "videomme" / "subtitle" / "fixA01.srt")
    assert [(c.start, c.end, c.text) for c in cues] == [
        (0.0, 2.0, "Welcome to the museum."),
        (2.5, 4.0, "This vase is three thousand years old."),
        (4.0, 6.0, "It came from the eastern shore."),
    ]
    assert lines_at(cues, [0.5, 1.5, 2.2, 3.0, 5.9]) == [
        "Welcome to the museum.", "This vase is three thousand years old.", "It came from the eastern shore."]
    assert lines_at(cues, [2.2]) == []  # between cues


def test_videomme_subtitles_only_at_the_sampled_frames():
    cfg = resolve_dataset("videomme_subtitles", BENCH / "videomme")
    sample = next(s for s in load_samples(cfg) if s.cluster == "fixA01")
    assert sample.subtitles.endswith("fixA01.srt")
    ev = Evaluator(build_run_config(model="mock", datasets=["videomme_subtitles"], dataset_roots=[str(BENCH / "videomme")]))
    ev.load()
    # 2 frames of a 6 s clip at 10 fps: indices 14 and 44 -> 1.4 s and 4.4 s: first and third cue
    media = load_media(sample, VideoConfig(max_frames=2))
    assert media.selection.selected_indices == (14, 44)
    prompt = ev.adapter.build_prompt(sample, cfg, media)
    assert prompt.startswith("This video's subtitles are listed below:\n"
                             "Welcome to the museum.\nIt came from the eastern shore.\nSelect the best answer")
    assert "three thousand" not in prompt
    other = next(s for s in load_samples(cfg) if s.cluster == "fixB02")  # no .srt: the plain template
    assert other.subtitles is None
    assert ev.adapter.build_prompt(other, cfg, load_media(other, VideoConfig(max_frames=2))).startswith("Select the best")


def test_videomme_breakdown_by_duration_and_domain(pytester):
    pytester.makepyfile(test_bench_items=EVAL_TEST)
    out = pytester.path / "out"
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "--dataset", "videomme", "--dataset-root", str(BENCH / "videomme"), "--results-dir", str(out),
    )
    result.assert_outcomes(passed=5)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["breakdowns"]) == {"duration", "domain", "task_type", "duration x domain"}
    assert summary["breakdowns"]["duration x domain"]["short | Knowledge"]["total"] == 2
    assert summary["breakdowns"]["duration"]["long"]["clusters"] == 1
    assert summary["ci95"][1] == 1.0 and summary["ci95"][0] < 0.5 and summary["clusters"] == 3  # 3 videos say little
    result.stdout.fnmatch_lines(["duration x domain: medium | Sports Competition *"])


def test_missing_video_is_that_items_error(pytester, tmp_path):
    import shutil

    root = tmp_path / "vm"
    shutil.copytree(BENCH / "videomme", root)
    (root / "data" / "fixC03.mp4").unlink()
    pytester.makepyfile(test_bench_items=EVAL_TEST)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "--dataset", "videomme", "--dataset-root", str(root), "--results-dir", str(tmp_path / "out"),
    )
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["003-2: video file not found: *fixC03.mp4*"])


def test_root_is_required_and_checked(tmp_path):
    with pytest.raises(ConfigError, match="needs its data folder: pass --dataset-root PATH; get the data: https://"):
        build_run_config(model="mock", datasets=["videomme"])
    with pytest.raises(ConfigError, match="data folder not found"):
        build_run_config(model="mock", datasets=["videomme"], dataset_roots=[str(tmp_path / "nope")])
    with pytest.raises(ConfigError, match="annotations not found"):
        build_run_config(model="mock", datasets=["videomme"], dataset_roots=[str(tmp_path)])
    run = build_run_config(model="mock", datasets=["videomme", "nextqa"],
                           dataset_roots=[f"videomme={BENCH / 'videomme'}", f"nextqa={BENCH / 'nextqa'}"])
    assert [d.root for d in run.datasets] == [str(BENCH / "videomme"), str(BENCH / "nextqa")]


def test_bad_annotation_row_names_the_row(tmp_path):
    import pandas as pd

    (tmp_path / "videomme").mkdir()
    rows = pd.read_parquet(BENCH / "videomme" / "videomme" / "test-00000-of-00001.parquet")
    rows.loc[1, "answer"] = "E"
    rows.to_parquet(tmp_path / "videomme" / "test-00000-of-00001.parquet")
    with pytest.raises(DatasetError, match=r"test-00000-of-00001.parquet:row 2: answer 'E' is not one of the option letters"):
        load_samples(resolve_dataset("videomme", tmp_path))


# ---------------------------------------------------------------- MVBench


def test_mvbench_candidates_become_lettered_options():
    samples = load_samples(mvbench_fixture())
    by_id = {s.id: s for s in samples}
    assert set(by_id) == {"action_sequence_0000", "action_sequence_0001", "episodic_reasoning_0000", "moving_direction_0000"}
    s = by_id["action_sequence_0000"]
    assert s.options == ("(A) Put down the cup.", "(B) Opened the door.", "(C) Sat on the bed.")
    assert s.answer == "B" and s.bound == (2.5, 7.5) and s.categories == {"task": "Action Sequence"}
    assert by_id["moving_direction_0000"].bound is None  # a task without bounds ignores start/end


def test_mvbench_bound_keeps_segment_centres_inside_it():
    s = next(x for x in load_samples(mvbench_fixture()) if x.id == "action_sequence_0000")
    media = load_media(s, VideoConfig(max_frames=8))
    indices = media.selection.selected_indices
    assert list(indices) == uniform_indices(100, 8, 10.0, (2.5, 7.5))
    assert all(25 <= i <= 75 for i in indices)
    assert [band_index(f) for f in media.frames] == [i % 62 for i in indices]


def test_mvbench_gif_and_frame_folder():
    by_id = {s.id: s for s in load_samples(mvbench_fixture())}
    gif = load_media(by_id["moving_direction_0000"], VideoConfig(max_frames=4))
    assert gif.selection.reader == "opencv" and gif.selection.num_frames_total == 30
    assert [band_index(f) for f in gif.frames] == list(gif.selection.selected_indices)
    folder = by_id["episodic_reasoning_0000"]
    media = load_media(folder, VideoConfig(max_frames=4))
    assert media.selection.reader == "image-folder" and media.selection.video_fps == 3.0
    # MVBench's rule for frame folders: files numbered from 1, bound 3-9 s at 3 fps -> frames 9..27
    numbers = [p + 1 for p in media.selection.selected_indices]
    assert numbers == uniform_indices(31, 4, 3.0, (3.0, 9.0), first_idx=1)
    assert all(9 <= n <= 27 for n in numbers)
    assert [band_index(f) for f in media.frames] == numbers  # JPEG file n shows index n


def test_mvbench_prompt_wording():
    cfg = mvbench_fixture()
    ev = Evaluator(build_run_config(model="mock", datasets=["mvbench"], dataset_roots=[str(BENCH / "mvbench")]))
    ev.load()
    sample = load_samples(cfg)[0]
    prompt = ev.adapter.build_prompt(sample, cfg)
    assert prompt.startswith("Carefully watch the video")
    assert "Options:\n(A) Put down the cup.\n(B) Opened the door.\n(C) Sat on the bed.\nOnly give the best option." in prompt


def test_mvbench_answer_outside_candidates(tmp_path):
    import shutil

    shutil.copytree(BENCH / "mvbench", tmp_path / "mv")
    path = tmp_path / "mv" / "json" / "moving_direction.json"
    rows = json.loads(path.read_text())
    rows[0]["answer"] = "diagonal"
    path.write_text(json.dumps(rows))
    cfg = replace(mvbench_fixture(), root=str(tmp_path / "mv"), path=str(tmp_path / "mv" / "json"))
    with pytest.raises(DatasetError, match=r"moving_direction.json:\[0\]: answer 'diagonal' is not one of the candidates"):
        load_samples(cfg)


# ---------------------------------------------------------------- NExT-QA


def test_nextqa_csv_and_video_map():
    samples = load_samples(resolve_dataset("nextqa", BENCH / "nextqa"))
    assert [s.id for s in samples] == ["4580824633_6", "4580824633_7", "5372306455_2"]
    s = samples[0]
    assert s.video == str(BENCH / "nextqa" / "NExTVideo" / "1006" / "4580824633.mp4")
    assert s.options[1] == "B. to give it to the girl" and s.answer == "B"
    assert s.question == "why did the boy pick up one present from the group of them?"
    assert s.categories == {"type": "CW", "family": "causal"} and s.cluster == "4580824633"
    assert samples[2].question == "how many people are there, in the room?" and samples[2].answer == "A"
    assert load_media(s, VideoConfig(max_frames=4)).selection.num_frames_total == 50


# ---------------------------------------------------------------- VMEvalKit task pairs


def test_vmevalkit_questions_from_metadata():
    samples = {s.id: s for s in load_samples(resolve_dataset("vmevalkit", BENCH / "vmevalkit_questions"))}
    chess = samples["chess/chess_0000"]
    assert chess.answer == "Qh7#" and chess.scorer == "contains" and chess.scorer_args == {"alternatives": ["Qg8#"]}
    assert "Which move gives checkmate?" in chess.question and "Find the checkmate in one move" in chess.question
    assert chess.frames[0].endswith("chess_0000/first_frame.png") and chess.video is None
    assert (samples["maze/maze_0000"].answer, samples["maze/maze_0000"].scorer) == ("9", "numeric")
    assert samples["sudoku/sudoku_0000"].answer == "1 2 3"
    rotation = samples["rotation/rotation_0000"]
    assert rotation.answer == "180" and rotation.scorer_args == {"abs_tol": 10.0}
    assert rotation.video.endswith("rotation_0000/ground_truth.mp4")  # the model sees the ground-truth video
    goal = samples["shapes/shapes_0000"]
    assert goal.answer is None and "Every outline is filled" in goal.question
    assert goal.categories == {"domain": "shapes", "check": "goal"}


def test_vmevalkit_real_task_pairs_run_unscored(pytester):
    """The real task pairs carry no metadata: their items run and are reported unscored."""
    pytester.makepyfile(test_bench_items=EVAL_TEST)
    out = pytester.path / "out"
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", "-rs",
        "--dataset", "vmevalkit_fixtures", "--dataset", "vmevalkit", "--dataset-root", f"vmevalkit={BENCH / 'vmevalkit_questions'}",
        "--results-dir", str(out),
    )
    result.assert_outcomes(passed=4, skipped=6)
    result.stdout.fnmatch_lines(["*unscored: test/test_0003 has no checkable answer*"])
    records = read_jsonl(out / "items.jsonl")
    real = [r for r in records if r["dataset"] == "vmevalkit_fixtures"]
    assert len(real) == 5 and all(r["passed"] is None and r["score"] is None and r["prediction"] == "" for r in real)
    assert all(r["video"]["selected_indices"] for r in real)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["total"], summary["scored"], summary["unscored"], summary["passed"]) == (10, 4, 6, 4)
    assert summary["pass_rate"] == 1.0
    assert summary["breakdowns"]["domain"]["test"]["unscored"] == 5


# ---------------------------------------------------------------- subsets


def test_limit_and_categories_are_deterministic_subsets():
    samples = load_samples(resolve_dataset("videomme", BENCH / "videomme"))
    assert [s.id for s in select_samples(samples, limit=2)] == ["001-2", "002-1"]  # spread, not the first two
    assert select_samples(samples, limit=2) == select_samples(samples, limit=2)
    assert [s.id for s in select_samples(samples, categories=["long", "Football"])] == ["002-3", "002-1", "003-2"]
    assert [s.id for s in select_samples(samples, categories=["domain=Knowledge"], limit=1)] == ["001-2"]


def test_limit_and_categories_options(pytester):
    pytester.makepyfile(test_bench_items=EVAL_TEST)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", "--collect-only", "-q",
        "--dataset", "videomme", "--dataset-root", str(BENCH / "videomme"), "--categories", "short,long", "--limit", "2",
    )
    result.stdout.fnmatch_lines(["*test_video_qa[[]001-1[]]", "*test_video_qa[[]003-2[]]"])
    assert "002-" not in result.stdout.str()


def test_all_benchmark_configs_parse():
    from vlm_bench.config import dataset_catalog, load_dataset_config

    for name in ("videomme", "videomme_subtitles", "mvbench", "nextqa", "vmevalkit"):
        cfg = load_dataset_config(dataset_catalog()[name])
        assert cfg.format == name.split("_")[0] and cfg.root is None
        assert cfg.docs.startswith("https://") and cfg.breakdowns
    assert len(load_dataset_config(dataset_catalog()["mvbench"]).source["tasks"]) == 20
