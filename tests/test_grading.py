"""Grading video-generation models: a small VMEvalKit outputs tree built from the real
task pairs (fixtures/vmevalkit), with one "model" that copies the ground truth (older
layout, run folders with metadata.json) and one that repeats the first frame (newer
layout), judged with the mock backend and with the tiny native model."""

import json
import shutil

import cv2
import numpy as np
import pytest

from conftest import EVAL_TEST, FIXTURES, read_jsonl
from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.utils.synthetic import write_video

TASKS = ["test_0000", "test_0001", "test_0002", "test_0003", "test_0004"]
QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")


@pytest.fixture(scope="module")
def vmevalkit_data(tmp_path_factory):
    data = tmp_path_factory.mktemp("VMEvalKit") / "data"
    questions = data / "questions" / "test_task"
    shutil.copytree(FIXTURES / "vmevalkit" / "test_task", questions)
    for f in questions.rglob("*"):
        f.chmod(0o644 if f.is_file() else 0o755)
    (questions / "test_0003" / "question_metadata.json").write_text(json.dumps(
        {"id": "test_0003", "questions": [{"question": "By how many degrees does the camera rotate?", "answer": "180",
                                           "scorer": "numeric", "scorer_args": {"abs_tol": 20}}]}))
    exp = data / "outputs" / "pilot"
    for task in ("test_0003", "test_0004"):  # copy-gt: older layout, with two runs of test_0003
        runs = [("copy-gt_%s_20250103_143025" % task, "2025-01-03T14:30:25")]
        if task == "test_0003":
            runs.append(("copy-gt_test_0003_20250101_090000", "2025-01-01T09:00:00"))
        for run_id, stamp in runs:
            run = exp / "copy-gt" / "test_task" / task / run_id
            (run / "video").mkdir(parents=True)
            shutil.copyfile(questions / task / "ground_truth.mp4", run / "video" / "generated_video.mp4")
            (run / "metadata.json").write_text(json.dumps({"inference": {"run_id": run_id, "model": "copy-gt",
                                                                        "timestamp": stamp, "status": "success"}}))
    for task in TASKS:  # still-frame: newer layout, the first frame held for 2 s
        first = cv2.cvtColor(cv2.imread(str(questions / task / "first_frame.png")), cv2.COLOR_BGR2RGB)
        first = cv2.resize(first, (first.shape[1] // 4 * 2, first.shape[0] // 4 * 2))
        (exp / "still-frame" / "test_task" / task / "video").mkdir(parents=True)
        write_video(exp / "still-frame" / "test_task" / task / "video" / "video.mp4", [first] * 16, fps=8,
                    options={"crf": "23", "preset": "ultrafast"})
    return exp


def judge_yaml(path, **answers):
    path.write_text("family: mock\nresponses: " + json.dumps(answers) + "\n")
    return str(path)


def test_items_per_check_with_controls(vmevalkit_data):
    run = build_run_config(model="mock", datasets=["vmevalkit_outputs"], dataset_roots=[str(vmevalkit_data)])
    samples = load_samples(run.datasets[0])
    ids = [s.id for s in samples]
    # copy-gt: goal for 2 tasks + 1 QA (the latest test_0003 run only); still-frame: 5 goal + 1 QA;
    # controls: ground truth 2 goal + 1 QA, static first frame 5 goal; and rule scores for each of the 14 videos
    assert len([s for s in samples if s.scorer != "rules"]) == 17
    assert sum(s.scorer == "rules" for s in samples) == 14
    assert "copy-gt/test/test_0003/copy-gt_test_0003_20250103_143025/goal" in ids
    assert not any("20250101" in i for i in ids)
    assert sum(i.startswith("control:static/") and i.endswith("/goal") for i in ids) == 5
    goal = next(s for s in samples if s.id == "still-frame/test/test_0001/goal")
    assert goal.reference.endswith("test_0001/final_frame.png") and goal.answer == "yes" and goal.scorer == "yesno"
    assert "Complete this sliding puzzle" in goal.question and "Answer yes or no." in goal.question
    static = next(s for s in samples if s.id == "control:static/test/test_0002/goal")
    assert static.answer == "no" and static.frames == (static.frames[0],) * 16 and static.video is None
    qa = next(s for s in samples if s.id.startswith("control:ground_truth/test/test_0003/qa0"))
    assert (qa.answer, qa.scorer, qa.scorer_args) == ("180", "numeric", {"abs_tol": 20})
    all_runs = build_run_config(model="mock", datasets=["vmevalkit_outputs"], dataset_roots=[str(vmevalkit_data)], all_runs=True)
    assert len([s for s in load_samples(all_runs.datasets[0]) if s.scorer != "rules"]) == 19


def test_mock_judge_controls_flags_and_output_tree(pytester, vmevalkit_data):
    """A calibrated judge: yes for the ground truth and its copy, no for still videos."""
    say = {}
    for s in load_samples(build_run_config(model="mock", datasets=["vmevalkit_outputs"],
                                           dataset_roots=[str(vmevalkit_data)]).datasets[0]):
        if s.id.endswith("/goal"):
            say[s.id] = "Yes, it ends there." if s.id.startswith(("copy-gt", "control:ground_truth")) else "No."
        else:
            say[s.id] = "About 180 degrees." if s.id.startswith(("copy-gt", "control:ground_truth")) else "0"
    model = judge_yaml(pytester.path / "judge.yaml", **say)
    pytester.makepyfile(test_graded_items=EVAL_TEST)
    out = pytester.path / "out"
    result = pytester.runpytest_inprocess(*QUIET, "--dataset", "vmevalkit_outputs", "--dataset-root", str(vmevalkit_data), "--score", "judge",
                                          "--model", model, "--results-dir", str(out))
    result.assert_outcomes(passed=11, failed=6)  # the still-frame model fails all 6 of its checks
    summary = json.loads((out / "summary.json").read_text())["vmevalkit"]
    assert summary["controls"]["control:ground_truth"]["judge_accuracy"] == 1.0
    assert summary["controls"]["control:static"]["judge_accuracy"] == 1.0
    assert summary["static_video_goal_pass_rate"]["pass_rate"] == 0.0  # "No." to every static video
    assert all(c["unparseable"] == 0 for c in summary["controls"].values())
    assert summary["models"]["copy-gt"]["overall"]["pass_rate"] == 1.0
    # two tasks cannot tell a perfect model from a static video at 95% (t on 1 degree of freedom)
    assert summary["models"]["copy-gt"]["like_static_video"] is True
    assert summary["models"]["copy-gt"]["goal"]["clusters"] == 2
    assert summary["models"]["still-frame"]["goal"]["pass_rate"] == 0.0
    assert summary["models"]["still-frame"]["like_static_video"] is True  # no better than a static video
    assert summary["models"]["still-frame"]["per_domain"]["test"]["total"] == 6
    result.stdout.fnmatch_lines(["video-generation models, judged*", "still-frame * 0% * 0% * like a static video",
                                 "judge on static * 100%*(judge accuracy)"])
    tree = out / "pilot"
    meta = json.loads((tree / "copy-gt" / "test_task" / "test_0003" / "copy-gt_test_0003_20250103_143025" / "metadata.json").read_text())
    assert set(meta) >= {"inference", "input", "output", "paths", "question_data", "judge"}
    assert meta["inference"]["model"] == "copy-gt" and meta["inference"]["status"] == "success"
    assert meta["inference"]["timestamp"] == "2025-01-03T14:30:25"
    assert meta["input"]["question_id"] == "test_0003" and meta["input"]["task_category"] == "test"
    assert meta["output"]["video_path"].endswith("generated_video.mp4")
    assert [c["check"] for c in meta["judge"]["checks"]] == ["goal", "qa0"]
    assert meta["judge"]["checks"][0]["answer"] == "Yes, it ends there." and meta["judge"]["checks"][0]["frames"]
    assert meta["judge"]["judge_model"] == "judge"
    assert (tree / "still-frame" / "test_task" / "test_0000" / "latest" / "metadata.json").exists()
    assert (tree / "control-static" / "test_task" / "test_0004" / "latest" / "metadata.json").exists()
    assert len(list(tree.rglob("metadata.json"))) == 2 + 5 + 2 + 5


def test_uncalibrated_judge_is_visible(pytester, vmevalkit_data):
    """The default mock says yes to everything: it passes the static control's goal checks
    as 'reaches the goal', so its static accuracy is 0 and every model looks like static."""
    pytester.makepyfile(test_graded_items=EVAL_TEST)
    model = judge_yaml(pytester.path / "yes.yaml")
    (pytester.path / "yes.yaml").write_text("family: mock\ndefault_response: 'yes'\n")
    out = pytester.path / "out"
    pytester.runpytest_inprocess(*QUIET, "--dataset", "vmevalkit_outputs", "--dataset-root", str(vmevalkit_data), "--score", "judge",
                                 "--model", model, "--results-dir", str(out))
    summary = json.loads((out / "summary.json").read_text())["vmevalkit"]
    assert summary["controls"]["control:static"]["judge_accuracy"] == 0.0
    assert summary["static_video_goal_pass_rate"]["pass_rate"] == 1.0
    assert all(m["like_static_video"] for m in summary["models"].values())


def test_static_control_counts_only_a_yes_and_unparseable_answers_show(pytester, vmevalkit_data):
    """A judge that never answers yes or no: the static video must not count as reaching
    the goal (before, every answer other than a correct "no" did, 100%), and the
    unreadable answers are reported for the controls and for each generator."""
    pytester.makepyfile(test_graded_items=EVAL_TEST)
    model = pytester.path / "vague.yaml"
    model.write_text("family: mock\ndefault_response: 'It is hard to tell from these frames.'\n")
    out = pytester.path / "out"
    result = pytester.runpytest_inprocess(*QUIET, "--dataset", "vmevalkit_outputs", "--dataset-root", str(vmevalkit_data), "--score", "judge",
                                          "--model", str(model), "--results-dir", str(out))
    summary = json.loads((out / "summary.json").read_text())["vmevalkit"]
    static = summary["static_video_goal_pass_rate"]
    assert (static["pass_rate"], static["scored"], static["unparseable"]) == (0.0, 5, 5)
    assert summary["controls"]["control:static"]["unparseable"] == 5
    assert summary["controls"]["control:ground_truth"]["unparseable"] == 3  # 2 goal checks and 1 QA
    assert summary["models"]["copy-gt"]["unparseable"] == 3 and summary["models"]["still-frame"]["unparseable"] == 6
    assert summary["models"]["still-frame"]["like_static_video"] is True  # 0% vs 0%: cannot be told apart
    result.stdout.fnmatch_lines(["generator * unparsed  flag", "still-frame * 0% * 0% * 6  like a static video",
                                 "judge on static * 5  (judge accuracy)",
                                 "the judge said a static video reaches the goal: 0% of 5 goal checks*5 answers unparseable*"])


def test_tiny_native_judge_runs_every_check(pytester, vmevalkit_data):
    pytest.importorskip("torch")
    pytester.makepyfile(test_graded_items=EVAL_TEST)
    out = pytester.path / "out"
    result = pytester.runpytest_inprocess(*QUIET, "--dataset", "vmevalkit_outputs", "--dataset-root", str(vmevalkit_data), "--score", "judge",
                                          "--model", "tiny-internvl3", "--max-new-tokens", "4", "--max-frames", "4",
                                          "--results-dir", str(out))
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 17
    records = read_jsonl(out / "items.jsonl")
    assert all(r["error"] is None for r in records), [r["error"] for r in records if r["error"]]
    goal = next(r for r in records if r["id"] == "still-frame/test/test_0001/goal")
    assert len(goal["video"]["selected_indices"]) == 4 and goal["backend"] == "native"
    assert len(list((out / "pilot").rglob("metadata.json"))) == 14
    summary = json.loads((out / "summary.json").read_text())["vmevalkit"]
    assert set(summary["models"]) == {"copy-gt", "still-frame"}


def test_native_engine_puts_the_reference_image_after_the_frames(vmevalkit_data):
    pytest.importorskip("torch")
    from vlm_bench.config import resolve_model
    from vlm_bench.evaluate import Evaluator
    from vlm_bench.runners.native_backend import NativeEngine

    run = build_run_config(model="tiny-internvl3", datasets=["vmevalkit_outputs"], dataset_roots=[str(vmevalkit_data)],
                           video_overrides={"max_frames": 3})
    samples = {s.id: s for s in load_samples(run.datasets[0])}
    ev = Evaluator(run, list(samples.values()))
    media = ev.media(samples["copy-gt/test/test_0004/copy-gt_test_0004_20250103_143025/goal"])
    assert media.reference is not None and media.reference.shape[2] == 3
    engine = NativeEngine(resolve_model("tiny-internvl3"))
    engine.load()
    ids = engine.prepare_inputs([(media, "Does it end there?")])["input_ids"][0].tolist()
    text = engine.processor.tokenizer.decode(ids)
    assert text.index("Frame3:") < text.rindex("<img>") and text.count("<img>") == 4  # 3 frames, then the image
    assert text.rindex("</img>") < text.index("Does it end there?")
    assert np.asarray(media.reference).dtype == np.uint8


def test_a_generator_the_judge_tells_from_a_static_video_is_not_flagged():
    """With enough tasks a perfect generator's goal interval clears the static control's,
    so the flag is off for it and on for a generator that reaches no goal."""
    from vlm_bench.datasets.vmevalkit_outputs import KIND, STATIC
    from vlm_bench.grading import grading_summary

    def record(generator, task, passed, extracted):
        return {"id": f"{generator}/{task}/goal", "dataset": "outputs", "passed": passed, "error": None,
                "answer": "yes", "prediction": extracted, "extracted": extracted, "cluster": f"{generator}/{task}",
                "meta": {"kind": KIND, "generator": generator, "domain": "maze", "check": "goal"}}

    tasks = [f"maze_{i:04d}" for i in range(12)]
    records = [record("good", t, True, "yes") for t in tasks] + [record("bad", t, False, "no") for t in tasks]
    records += [record(STATIC, t, True, "no") for t in tasks]  # the judge says "no" to every static video
    summary = grading_summary(records)
    assert summary["static_video_goal_pass_rate"]["pass_rate"] == 0.0
    assert summary["models"]["good"]["like_static_video"] is False
    assert summary["models"]["bad"]["like_static_video"] is True
