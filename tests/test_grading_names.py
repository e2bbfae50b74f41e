"""The graded VMEvalKit output tree: generator names that sanitise alike stay apart, the
judge's control names are reserved, --overwrite removes the old run's tree, and a broken
task folder is a message, not a traceback."""

import json
import shutil

import numpy as np
import pytest

from conftest import EVAL_TEST, FIXTURES
from vlm_bench.config import build_run_config
from vlm_bench.datasets import DatasetError, load_samples
from vlm_bench.utils.synthetic import write_video

QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning")


def outputs_tree(root, generators):
    """data/questions/test_task/test_0000 (from the fixtures) and data/outputs/pilot with
    one tiny newer-layout video per generator."""
    questions = root / "data" / "questions" / "test_task" / "test_0000"
    shutil.copytree(FIXTURES / "vmevalkit" / "test_task" / "test_0000", questions)
    exp = root / "data" / "outputs" / "pilot"
    for name in generators:
        add_generator(exp, name)
    return exp, questions


def add_generator(exp, name):
    video = exp / name / "test_task" / "test_0000" / "video"
    video.mkdir(parents=True)
    write_video(video / "video.mp4", [np.full((32, 32, 3), 90, np.uint8)] * 4, fps=4)


def run_judge(pytester, exp, out, *extra):
    pytester.makepyfile(test_graded=EVAL_TEST)
    return pytester.runpytest_inprocess(*QUIET, "--dataset", "vmevalkit_outputs", "--dataset-root", str(exp),
                                        "--results-dir", str(out), *extra)


def test_generators_that_sanitise_alike_get_their_own_folders(pytester, tmp_path):
    exp, _ = outputs_tree(tmp_path, ["copy:gt", "copy-gt"])
    out = tmp_path / "out"
    run_judge(pytester, exp, out)
    trees = sorted(p.relative_to(out / "pilot").parts[0] for p in (out / "pilot").rglob("metadata.json"))
    assert trees == ["control-static", "copy-gt", "copy:gt"]
    models = {json.loads(p.read_text())["inference"]["model"] for p in (out / "pilot").rglob("metadata.json")}
    assert models == {"copy:gt", "copy-gt", "control:static"}
    summary = json.loads((out / "summary.json").read_text())["vmevalkit"]
    assert set(summary["models"]) == {"copy:gt", "copy-gt"}


@pytest.mark.parametrize("name", ["control:static", "control-static", "control:ground_truth", "control-ground_truth"])
def test_control_names_are_reserved(tmp_path, name):
    exp, _ = outputs_tree(tmp_path, ["fine-model", name])
    run = build_run_config(model="mock", datasets=["vmevalkit_outputs"], dataset_roots=[str(exp)])
    with pytest.raises(DatasetError, match=f"the generator folder name '{name}' is reserved for the judge's calibration controls"):
        load_samples(run.datasets[0])


def test_overwrite_removes_the_old_runs_tree(pytester, tmp_path):
    exp, _ = outputs_tree(tmp_path, ["old-model"])
    out = tmp_path / "out"
    run_judge(pytester, exp, out)
    assert (out / "pilot" / "old-model").is_dir()
    (out / "report.md").write_text("old report")
    shutil.rmtree(exp / "old-model")
    add_generator(exp, "new-model")
    run_judge(pytester, exp, out, "--overwrite")
    assert sorted(p.name for p in (out / "pilot").iterdir()) == ["control-static", "new-model"]
    assert not (out / "report.md").exists()


def test_broken_task_folders_are_messages(tmp_path):
    exp, questions = outputs_tree(tmp_path, ["model"])
    run = build_run_config(model="mock", datasets=["vmevalkit_outputs"], dataset_roots=[str(exp)])
    (questions / "question_metadata.json").write_text(json.dumps({"questions": [{"question": "q", "answer": "a", "scorer": "fuzzy"}]}))
    with pytest.raises(DatasetError, match=r"question_metadata.json: questions\[0\]: unknown scorer 'fuzzy'"):
        load_samples(run.datasets[0])
    (questions / "question_metadata.json").unlink()
    (questions / "prompt.txt").unlink()
    with pytest.raises(DatasetError, match="test_0000: the task folder has no prompt.txt"):
        load_samples(run.datasets[0])
