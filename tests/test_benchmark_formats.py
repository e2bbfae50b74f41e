"""Dataset loaders for the real benchmark formats, over format-exact fixture files
(fixtures/make_benchmark_fixtures.py), through the shipped dataset configs."""

import json
from dataclasses import replace

import pytest

from conftest import EVAL_TEST, FIXTURES, read_jsonl
from vlm_bench.config import ConfigError, build_run_config, resolve_dataset
from vlm_bench.datasets import DatasetError, load_samples, select_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.frames import load_media
from vlm_bench.types import VideoConfig
from vlm_bench.utils.subtitles import lines_at, parse_srt
from vlm_bench.utils.synthetic import band_index
from vlm_bench.utils.sampling import uniform_indices

BENCH = FIXTURES / "benchmarks"


def mvbench_fixture():
    return resolve_dataset("mvbench", BENCH / "mvbench")  # the shipped config on the shipped download layout


# ---------------------------------------------------------------- Video-MME


def test_videomme_rows_become_mc_items_with_its_categories():
    cfg = resolve_dataset("videomme", BENCH / "videomme")
    samples = load_samples(cfg)  # the real config reads the real Parquet layout
    assert [s.id for s in samples] == ["001-1", "001-2", "002-3", "002-1", "003-2"]
    s = samples[2]
    assert s.video == str(BENCH / "videomme" / "data" / "fixB02.MP4")  # the release mixes .mp4, .MP4, .mkv
    assert samples[4].video == str(BENCH / "videomme" / "data" / "fixC03.mkv")
    assert all(x.missing_media is None for x in samples)
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


def test_missing_video_is_missing_media_not_a_wrong_answer(pytester, tmp_path):
    import shutil

    root = tmp_path / "vm"
    shutil.copytree(BENCH / "videomme", root)
    (root / "data" / "fixC03.mkv").unlink()
    pytester.makepyfile(test_bench_items=EVAL_TEST)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", "-rs",
        "--dataset", "videomme", "--dataset-root", str(root), "--results-dir", str(tmp_path / "out"),
    )
    result.assert_outcomes(passed=4, skipped=1)
    result.stdout.fnmatch_lines(["*missing media: *fixC03.mp4 (left out of the pass rate*"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["scored"], summary["missing_media"], summary["pass_rate"]) == (4, 1, 1.0)
    record = next(r for r in read_jsonl(tmp_path / "out" / "items.jsonl") if r["id"] == "003-2")
    assert record["missing_media"].endswith("fixC03.mp4") and record["passed"] is None and record["error"] is None
    from vlm_bench.report import build_report

    markdown, page = build_report(tmp_path / "out")  # the reports show the count beside the rate
    assert "| unscored | missing media |" in markdown
    overall = next(line for line in markdown.splitlines() if line.startswith("| overall |"))
    assert overall.endswith("| 1 |") and "<th>missing media</th>" in page


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
    assert len({s.category for s in samples}) == 20 and len(samples) == 22  # every task ships in tiny form
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


def test_mvbench_gif_and_frame_folder(tmp_path):
    import numpy as np
    from PIL import Image

    from vlm_bench.utils.synthetic import indexed_frame

    gifs = tmp_path / "video" / "gifs"
    gifs.mkdir(parents=True)
    frames = [Image.fromarray(indexed_frame(i, np.full((48, 64, 3), 40, np.uint8))) for i in range(30)]
    frames[0].save(gifs / "clip.gif", save_all=True, append_images=frames[1:], duration=40, loop=0)
    (tmp_path / "moving.json").write_text(json.dumps([{"video": "clip.gif", "question": "q?", "candidates": ["up", "down"], "answer": "up"}]))
    cfg = replace(mvbench_fixture(), root=str(tmp_path), path=str(tmp_path),
                  source={"tasks": {"Moving": {"json": "moving.json", "prefix": "video/gifs/", "type": "gif", "bound": False}}})
    gif = load_media(load_samples(cfg)[0], VideoConfig(max_frames=4))
    assert gif.selection.reader == "opencv" and gif.selection.num_frames_total == 30
    assert [band_index(f) for f in gif.frames] == list(gif.selection.selected_indices)
    by_id = {s.id: s for s in load_samples(mvbench_fixture())}
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
    sample = next(s for s in load_samples(cfg) if s.id == "action_sequence_0000")
    prompt = ev.adapter.build_prompt(sample, cfg)
    assert prompt.startswith("Carefully watch the video")
    assert "Options:\n(A) Put down the cup.\n(B) Opened the door.\n(C) Sat on the bed.\nOnly give the best option." in prompt


def test_mvbench_answer_outside_candidates_fails_only_that_item(pytester, tmp_path):
    import shutil

    shutil.copytree(BENCH / "mvbench", tmp_path / "mv")
    path = tmp_path / "mv" / "json" / "moving_direction.json"
    rows = json.loads(path.read_text())
    rows[0]["answer"] = "diagonal"
    path.write_text(json.dumps(rows))
    pytester.makepyfile(test_bench_items=EVAL_TEST)
    out = tmp_path / "out"
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "--dataset", "mvbench", "--dataset-root", str(tmp_path / "mv"), "--results-dir", str(out),
    )
    result.assert_outcomes(passed=19, failed=1, skipped=2)
    result.stdout.fnmatch_lines(["*moving_direction.json:[[]0[]]: answer 'diagonal' is not one of the candidates*"])
    record = next(r for r in read_jsonl(out / "items.jsonl") if r["id"] == "moving_direction_0000")
    assert record["passed"] is False and record["prediction"] is None  # never sent to the model


def test_mvbench_data0613_paths_resolve(tmp_path):
    """The Hugging Face download keeps star and clevrer under video/data0613/; after
    VLMEvalKit's move they sit under video/ itself. Both resolve."""
    import shutil

    samples = {s.id: s for s in load_samples(mvbench_fixture())}
    assert "/video/data0613/star/Charades_v1_480/ABC12.mp4" in samples["action_sequence_0000"].video
    assert "/video/data0613/clevrer/video_validation/" in samples["moving_count_0000"].video
    shutil.copytree(BENCH / "mvbench", tmp_path / "mv")
    shutil.move(tmp_path / "mv" / "video" / "data0613" / "star", tmp_path / "mv" / "video" / "star")
    moved = {s.id: s for s in load_samples(resolve_dataset("mvbench", tmp_path / "mv"))}
    assert moved["action_sequence_0000"].video == str(tmp_path / "mv" / "video" / "star" / "Charades_v1_480" / "ABC12.mp4")
    assert moved["action_sequence_0000"].missing_media is None


def test_shipped_mvbench_config_runs_on_the_shipped_download_layout(pytester, tmp_path):
    """As documented: every task runs; the NTU RGB+D videos the download lacks are counted
    as missing media per task, beside the pass rate and out of it."""
    pytester.makepyfile(test_bench_items=EVAL_TEST)
    out = tmp_path / "out"
    args = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "--dataset", "mvbench", "--dataset-root", str(BENCH / "mvbench"))
    result = pytester.runpytest_inprocess(*args, "--results-dir", str(out))
    result.assert_outcomes(passed=20, skipped=2)
    result.stdout.fnmatch_lines(["scope * pass rate  missing  *", "overall * 20 * 20 * 100.0% * 2 *",
                                 "task: Fine-grained Pose * 0 * 0 * - * 2 *"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["missing_media"] == 2 and summary["scored"] == 20 and summary["pass_rate"] == 1.0
    assert summary["breakdowns"]["task"]["Fine-grained Pose"]["missing_media"] == 2
    assert summary["breakdowns"]["task"]["Action Sequence"]["missing_media"] == 0
    failed = pytester.runpytest_inprocess(*args, "--results-dir", str(tmp_path / "o2"), "--missing-media", "fail")
    assert failed.ret != 0
    failed.stdout.fnmatch_lines(["*2 items' media are missing (mvbench Fine-grained Pose: 2); e.g. *nturgbd*(--missing-media=fail)*"])


def test_resume_retries_items_whose_media_was_missing(pytester, tmp_path):
    import shutil

    shutil.copytree(BENCH / "mvbench", tmp_path / "mv")
    pytester.makepyfile(test_bench_items=EVAL_TEST)
    args = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "--dataset", "mvbench", "--dataset-root", str(tmp_path / "mv"), "--results-dir", str(tmp_path / "out"))
    pytester.runpytest_inprocess(*args).assert_outcomes(passed=20, skipped=2)
    nturgbd = tmp_path / "mv" / "video" / "nturgbd"
    nturgbd.mkdir()
    for name in ("S001C001P001R001A001_rgb.avi", "S001C001P001R001A003_rgb.avi"):
        shutil.copyfile(BENCH / "mvbench" / "video" / "vlnqa" / "vln_01.mp4", nturgbd / name)
    pytester.runpytest_inprocess(*args, "--resume").assert_outcomes(passed=22)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["missing_media"] == 0 and summary["scored"] == 22


# ---------------------------------------------------------------- NExT-QA


def test_nextqa_csv_and_video_map():
    samples = load_samples(resolve_dataset("nextqa", BENCH / "nextqa"))  # doc-doc/NExT-QA's dataset/nextqa/ layout
    assert [s.id for s in samples] == ["4580824633_6", "4580824633_7", "5372306455_2"]
    s = samples[0]
    assert s.video == str(BENCH / "nextqa" / "NExTVideo" / "1006" / "4580824633.mp4")
    assert s.options[1] == "B. to give it to the girl" and s.answer == "B"
    assert s.question == "why did the boy pick up one present from the group of them?"
    assert s.categories == {"type": "CW", "family": "causal"} and s.cluster == "4580824633"
    assert samples[2].question == "how many people are there, in the room?" and samples[2].answer == "A"
    assert load_media(s, VideoConfig(max_frames=4)).selection.num_frames_total == 50


def test_nextqa_map_at_the_root_and_missing(tmp_path):
    import shutil

    shutil.copytree(BENCH / "nextqa", tmp_path / "nq")
    annotations = tmp_path / "nq" / "dataset" / "nextqa"
    shutil.move(annotations / "map_vid_vidorID.json", tmp_path / "nq" / "map_vid_vidorID.json")
    (tmp_path / "nq" / "NExTVideo" / "1107" / "5372306455.mp4").unlink()
    samples = load_samples(resolve_dataset("nextqa", tmp_path / "nq"))
    assert samples[0].video.endswith("1006/4580824633.mp4") and samples[0].missing_media is None
    assert samples[2].missing_media.endswith("1107/5372306455.mp4")
    (tmp_path / "nq" / "map_vid_vidorID.json").unlink()
    with pytest.raises(DatasetError, match=r"no map_vid_vidorID.json in .*dataset/nextqa or .*nq \(doc-doc/NExT-QA keeps"):
        load_samples(resolve_dataset("nextqa", tmp_path / "nq"))


# ---------------------------------------------------------------- VMEvalKit task pairs


def test_vmevalkit_paper_tasks_are_scored_from_their_nested_metadata():
    """VMEvalKit's own paper examples: answers nested under <domain>_data (and some copied at
    the top level), sudoku as flat 9-lists with null blanks, the rotation angle under
    rotation_data."""
    samples = {s.id: s for s in load_samples(resolve_dataset("vmevalkit", BENCH / "vmevalkit_questions"))}
    chess = samples["chess/chess_0002"]
    assert (chess.answer, chess.scorer, chess.scorer_args) == ("Ra8#", "contains", {})
    assert "Which move gives checkmate?" in chess.question and "White can deliver checkmate in one move" in chess.question
    assert chess.frames[0].endswith("chess_0002/first_frame.png") and chess.video is None
    assert (samples["maze/maze_0003"].answer, samples["maze/maze_0003"].scorer) == ("4", "numeric")
    sudoku = samples["sudoku/sudoku_0011"]  # puzzle [3,1,2, 1,2,3, null,3,1]: the one blank holds 2
    assert (sudoku.answer, sudoku.scorer) == ("2", "numeric") and "empty cells" in sudoku.question
    rotation = samples["rotation/rotation_0014"]
    assert rotation.answer == "180" and rotation.scorer_args == {"abs_tol": 10.0}
    assert "180" not in rotation.question  # VMEvalKit's prompt states the angle; the question does not
    assert rotation.video.endswith("rotation_0014/ground_truth.mp4")  # the model sees the ground-truth video
    raven = samples["raven/raven_0014"]
    assert raven.answer is None and raven.categories == {"domain": "raven", "check": "task"}


@pytest.mark.parametrize("domain, answer, scorer", [
    ("sliding_puzzle", "2", "numeric"), ("clock", "2", "numeric"), ("counting_objects", "7", "numeric"),
    ("letter_counting", "3", "numeric"), ("2d_dice_reasoning", "5", "numeric"), ("edit_distance", "3", "numeric"),
    ("object_subtraction", "2", "numeric"), ("vpct", "2", "numeric"), ("majority_color", "blue", "contains"),
    ("mirror_clock", "5:45", "contains"), ("light_sequence", "1010", "normalized"),
    ("sequence_completion", "14", "numeric"),
])
def test_every_domain_with_an_answer_gets_its_own_scored_question(domain, answer, scorer):
    cfg = resolve_dataset("vmevalkit", BENCH / "vmevalkit_questions")
    sample = next(s for s in load_samples(cfg) if s.category == domain)
    assert (sample.answer, sample.scorer) == (answer, scorer)
    assert sample.question.startswith(cfg.prompt_template(f"vmevalkit_{domain}").split("{")[0])
    assert sample.categories == {"domain": domain, "check": "answer"}
    if domain == "sliding_puzzle":  # top-level solution_length: its own question, never the maze's
        assert "sliding puzzle" in sample.question and "maze" not in sample.question.lower()


def test_vmevalkit_answer_variants(tmp_path):
    """The other places VMEvalKit's generators put answers: only the top-level copy, several
    mates, several sudoku blanks, a bucket number as text; and a sudoku without blanks."""
    import shutil

    root = tmp_path / "q"
    shutil.copytree(BENCH / "vmevalkit_questions", root)

    def edit(domain, task, change):
        path = root / f"{domain}_task" / task / "question_metadata.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    edit("chess", "chess_0002", lambda d: (d.pop("chess_data"), d.update(mate_moves=["Ra8#", "Rh8#"])))
    edit("maze", "maze_0003", lambda d: d.pop("maze_data"))
    edit("sudoku", "sudoku_0011", lambda d: (d.pop("sudoku_data"), d.update(puzzle_array=[3, None, 2, 1, 2, None, None, 3, 1])))
    edit("vpct", "vpct_0000", lambda d: d.update(text_answer="3"))
    samples = {s.category: s for s in load_samples(resolve_dataset("vmevalkit", root))}
    assert (samples["chess"].answer, samples["chess"].scorer_args) == ("Ra8#", {"alternatives": ["Rh8#"]})
    assert samples["maze"].answer == "4"
    assert (samples["sudoku"].answer, samples["sudoku"].scorer) == ("1 3 2", "normalized")
    assert samples["vpct"].answer == "3"


def test_vmevalkit_real_task_pairs_run_unscored(pytester):
    """The real task pairs of fixtures/vmevalkit carry no metadata: their items run and are
    reported unscored beside the scored question tree."""
    pytester.makepyfile(test_bench_items=EVAL_TEST)
    out = pytester.path / "out"
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", "-rs",
        "--dataset", "vmevalkit_fixtures", "--dataset", "vmevalkit", "--dataset-root", f"vmevalkit={BENCH / 'vmevalkit_questions'}",
        "--results-dir", str(out),
    )
    result.assert_outcomes(passed=16, skipped=7)  # 16 domains with an answer; raven, shape sorter, 5 real pairs
    result.stdout.fnmatch_lines(["*unscored: test/test_0003 has no checkable answer*"])
    records = read_jsonl(out / "items.jsonl")
    real = [r for r in records if r["dataset"] == "vmevalkit_fixtures"]
    assert len(real) == 5 and all(r["passed"] is None and r["score"] is None and r["prediction"] == "" for r in real)
    assert all(r["video"]["selected_indices"] for r in real)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["total"], summary["scored"], summary["unscored"], summary["passed"]) == (23, 16, 7, 16)
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
