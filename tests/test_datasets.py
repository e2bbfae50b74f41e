import json

import pytest

from conftest import SMOKE_JSONL
from vlm_bench.config import DatasetConfig, load_dataset_config
from vlm_bench.datasets import DatasetError, load_samples

GOOD = {"id": "a", "video": "clips/a.mp4", "question": "q?", "answer": "yes"}


def dataset_for(path):
    return DatasetConfig(name=path.stem, format="jsonl", path=str(path))


def test_smoke_fixture_loads():
    samples = load_samples(load_dataset_config(SMOKE_JSONL))
    assert len(samples) == 9
    assert len({s.id for s in samples}) == 9
    assert any(s.frames and len(s.frames) == 1 for s in samples)  # an image question
    assert any(s.video_overrides for s in samples)


def test_paths_resolve_against_the_jsonl(write_jsonl, tmp_path):
    path = write_jsonl([GOOD, {"id": "b", "frames": ["f/1.png", "f/2.png"], "question": "q", "answer": "2"}])
    a, b = load_samples(dataset_for(path))
    assert a.video == str(tmp_path / "clips/a.mp4")
    assert b.frames == (str(tmp_path / "f/1.png"), str(tmp_path / "f/2.png"))
    assert a.scorer == "exact" and a.source.endswith("data.jsonl:1")


def test_item_fields(write_jsonl):
    item = dict(GOOD, options=["x", "y"], answer="B", category="c",
                video={"path": "a.mp4", "max_frames": 4, "strategy": "fps", "fps": 1})
    (s,) = load_samples(dataset_for(write_jsonl([item])))
    assert s.options == ("x", "y") and s.scorer == "mc"  # options default to the mc scorer
    assert s.category == "c"
    assert s.video_overrides == {"max_frames": 4, "strategy": "fps", "fps": 1}


def test_numbers_become_text(write_jsonl):
    (s,) = load_samples(dataset_for(write_jsonl([dict(GOOD, id=7, answer=3, scorer="numeric")])))
    assert s.id == "7" and s.answer == "3"


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "a", "video": "a.mp4", "question": "q", "answer": "x"', "not valid JSON"),
        ('["a"]', "expected a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "question"}), "missing 'question'"),
        (json.dumps(dict(GOOD, question="  ")), "'question' is empty"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "answer"}), "missing 'answer'"),
        (json.dumps(dict(GOOD, frames=["a.png"])), "exactly one of 'video'"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "video"}), "exactly one of 'video'"),
        (json.dumps(dict(GOOD, questoin="q")), "unknown key 'questoin'"),
        (json.dumps(dict(GOOD, video={"max_frames": 4})), "needs 'path'"),
        (json.dumps(dict(GOOD, video={"path": "a.mp4", "max_frame": 4})), "unknown key 'max_frame'"),
        (json.dumps(dict(GOOD, frames=[], video=None)), "exactly one of"),
        (json.dumps(dict(GOOD, scorer="fuzzy")), "unknown scorer 'fuzzy'"),
        (json.dumps(dict(GOOD, options=["x", "y"], answer="z")), "neither a letter nor one of the options"),
        (json.dumps(dict(GOOD, options="x, y")), "'options' must be a list"),
        (json.dumps(dict(GOOD, scorer="numeric")), "holds no number"),
    ],
)
def test_malformed_line_names_file_line_and_problem(write_jsonl, line, message):
    path = write_jsonl([GOOD | {"id": "first"}, "", line])
    with pytest.raises(DatasetError) as err:
        load_samples(dataset_for(path))
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)


def test_duplicate_ids(write_jsonl):
    path = write_jsonl([GOOD, GOOD])
    with pytest.raises(DatasetError, match=r"data.jsonl:2: duplicate id 'a' \(first on line 1\)"):
        load_samples(dataset_for(path))


def test_dataset_yaml_root_and_default_scorer(tmp_path):
    (tmp_path / "ann.jsonl").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "d.yaml").write_text("path: ann.jsonl\nroot: /data/videos\nscorer: contains\n")
    (s,) = load_samples(load_dataset_config(tmp_path / "d.yaml"))
    assert s.video == "/data/videos/clips/a.mp4" and s.scorer == "contains" and s.dataset == "d"
