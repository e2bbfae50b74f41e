"""Every setting is checked before collection and before the engine loads: a clear
message naming the setting and the fix, never a traceback, an "engine error" per item or
a crash after the first item. Item-level problems fail collection naming file and line."""

import json
import textwrap

import pytest

from conftest import QUIET, SMOKE_JSONL, SQUARE_MP4, read_jsonl
from vlm_bench.config import ConfigError, build_run_config, load_dataset_config, load_model_config
from vlm_bench.datasets import DatasetError, load_samples
from vlm_bench.runners.mock_backend import MockEngine



def refused(suite, *args, dataset=SMOKE_JSONL):
    before = MockEngine.loads
    result = suite.runpytest_inprocess(*QUIET, "--dataset", str(dataset), "--results-dir", str(suite.path / "o"), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    text = result.stderr.str() + result.stdout.str()
    assert "Traceback" not in text and "INTERNALERROR" not in text
    result.stdout.no_fnmatch_line("*collected*")
    assert MockEngine.loads == before and not (suite.path / "o").exists()
    return result.stderr.str()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "-5"], "argument --seed: expected a whole number from 0 to 4294967295, got '-5'"),
        (["--seed", str(2**32)], "argument --seed: expected a whole number from 0 to 4294967295"),
        (["--fps", "inf"], "argument --fps: expected a finite number > 0, got 'inf'"),
        (["--fps", "nan"], "argument --fps: expected a finite number > 0, got 'nan'"),
        (["--frame-cache-gb", "inf"], "argument --frame-cache-gb: expected a finite number > 0, got 'inf'"),
        (["--max-frames", "100000"], "argument --max-frames: expected a whole number from 1 to 1024, got '100000'"),
        (["--min-pass-rate", "nan"], "argument --min-pass-rate: expected a rate between 0 and 1"),
        (["--progress-interval", "inf"], "argument --progress-interval: expected a finite number >= 0"),
    ],
)
def test_bad_command_line_values(suite, args, message):
    assert message in refused(suite, *args)


def test_frame_cache_on_a_file(suite):
    a_file = suite.path / "cache.bin"
    a_file.write_text("x")
    assert f"--frame-cache {a_file} is a file; give a folder" in refused(suite, "--frame-cache", str(a_file))
    assert "lies below a file" in refused(suite, "--frame-cache", str(a_file / "sub"))


MODEL_CASES = [
    ("vision_args: {short_side: 0}", "vision_args: short_side must be a whole number >= 1, got 0"),
    ("vision_args: {short_side: -448}", "short_side must be a whole number >= 1, got -448"),
    ("vision_args: {short_side: big}", "short_side must be a whole number >= 1, got 'big'"),
    ("vision_args: {max_num_tiles: 1.5}", "max_num_tiles must be a whole number >= 1, got 1.5"),
    ("video: {fps: .nan}", "video: fps must be a finite number > 0, got nan"),
    ("video: {fps: .inf}", "video: fps must be a finite number > 0, got inf"),
    ("video: {max_frames: 100000}", "video: max_frames must be a whole number from 1 to 1024, got 100000"),
    ("decode: {temperature: .nan}", "decode: temperature must be a finite number >= 0, got nan"),
    ("decode: {temperature: .inf}", "temperature must be a finite number >= 0, got inf"),
    ("delay_ms: slow", "delay_ms must be a finite number >= 0 (milliseconds), got 'slow'"),
    ("delay_ms: -1", "delay_ms must be a finite number >= 0"),
    ("default_response: 42", "default_response must be text, got 42 (put it in quotes)"),
    ("default_response: no", "default_response must be text, got False (YAML reads an unquoted yes/no/on/off as true/false: put it in quotes)"),
    ("responses: {q1: yes}", "responses: q1 must be text, got True (YAML reads"),
]


@pytest.mark.parametrize("line, message", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_bad_model_yaml_values(tmp_path, line, message):
    path = tmp_path / "m.yaml"
    path.write_text(f"family: mock\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_model_config(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_quoted_yaml_words_are_text(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("family: mock\ndefault_response: 'no'\nresponses: {q1: 'yes'}\ndelay_ms: 5\n")
    cfg = load_model_config(path)
    assert cfg.default_response == "no" and cfg.responses == {"q1": "yes"}


def test_a_bad_model_yaml_stops_the_session_before_collection(suite):
    model = suite.path / "bad.yaml"
    model.write_text("family: mock\nvision_args: {short_side: 0}\n")
    assert "short_side must be a whole number >= 1, got 0" in refused(suite, "--model", str(model))


def dataset_yaml(tmp_path, body: str, name="d.yaml"):
    (tmp_path / "d.jsonl").write_text(json.dumps({"id": "a", "video": str(SQUARE_MP4), "question": "q", "answer": "x"}) + "\n")
    path = tmp_path / name
    path.write_text("path: d.jsonl\n" + textwrap.dedent(body))
    return path


@pytest.mark.parametrize(
    "body, message",
    [
        ('prompt: {mc: "{question}\\n{choices}"}', "prompt.mc uses the unknown field {choices}; it may use {question}, {options}"),
        ('prompt: {open: "{question} {subtitles}"}', "prompt.open uses the unknown field {subtitles}"),
        ('prompt: {mc_subtitles: "{subtitles} {question} {options} {answer}"}', "unknown field {answer}; it may use {question}, {options}, {subtitles}"),
        ('prompt: {vmevalkit_goal_check: "{prompt} {question}"}', "unknown field {question}; it may use {prompt}, {goal}"),
        ('prompt: {open: "{question"}', "prompt.open is not a valid template"),
        ('prompt: {open: "Q: {}"}', "prompt.open uses the unknown field {}"),
        ("root: no_such_media/", "media root not found"),
        ("name: x/a", "dataset name 'x/a' contains a slash"),
    ],
)
def test_bad_dataset_yaml_values(tmp_path, body, message):
    path = dataset_yaml(tmp_path, body)
    with pytest.raises(ConfigError, match=None) as info:
        build_run_config(model="mock", datasets=[str(path)])
    assert message in str(info.value)


def test_literal_braces_in_a_prompt_are_fine(tmp_path):
    path = dataset_yaml(tmp_path, 'prompt: {open: "Answer as JSON {{\\"answer\\": ...}}: {question}"}')
    assert load_dataset_config(path).prompt_template("open").format(question="q").startswith('Answer as JSON {"answer"')


def test_local_hf_repo_folder_that_is_missing(tmp_path):
    model = tmp_path / "local.yaml"
    model.write_text(f"family: internvl3\nhf_repo: {tmp_path / 'weights' / 'InternVL3-38B-hf'}\n")
    with pytest.raises(ConfigError, match="is a local folder path, and that folder does not exist"):
        build_run_config(model=str(model), backend="native", datasets=[str(SMOKE_JSONL)])
    model.write_text("family: internvl3\nhf_repo: OpenGVLab/InternVL3-1B\n")  # a hub id is not a folder
    build_run_config(model=str(model), backend="native", datasets=[str(SMOKE_JSONL)])


@pytest.mark.parametrize("value", [-5, 2**32, 1.5, True])
def test_seed_range_through_the_api(value):
    with pytest.raises(ConfigError, match="seed must be a whole number from 0 to 4294967295"):
        build_run_config(model="mock", datasets=[str(SMOKE_JSONL)], seed=value)


# ---------------------------------------------------------------- items, at collection


ITEM = {"id": "a", "video": str(SQUARE_MP4), "question": "Which?", "answer": "B"}


@pytest.mark.parametrize(
    "item, message",
    [
        (dict(ITEM, answer="3", scorer={"name": "numeric", "abs_tol": "x"}), "scorer 'numeric': abs_tol must be a finite number >= 0, got 'x'"),
        (dict(ITEM, answer="3", scorer={"name": "numeric", "rel_tol": -1}), "rel_tol must be a finite number >= 0, got -1"),
        (dict(ITEM, scorer={"name": "exact", "alternatives": "b"}), "alternatives must be a list of strings"),
        (dict(ITEM, scorer="fuzzy"), "unknown scorer 'fuzzy'; choose one of exact"),
        (dict(ITEM, answer="E", options=["w", "x", "y", "z"]), "mc scorer: answer 'E' names option E, beyond the 4 options (A-D)"),
        (dict(ITEM, answer="A", options=[f"option {i}" for i in range(27)]), "27 options: at most 26 (lettered A to Z)"),
    ],
)
def test_items_that_cannot_be_scored_stop_the_session_naming_the_line(suite, write_jsonl, item, message):
    data = write_jsonl([ITEM | {"id": "fine"}, item])
    result = suite.runpytest_inprocess(*QUIET, "--dataset", str(data), "--results-dir", str(suite.path / "o"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # before collection, said once
    result.stderr.fnmatch_lines([f"*vlm-bench: {data}:2: *{message}*"])
    assert "\n".join(result.outlines + result.errlines).count(f"{data}:2") == 1
    assert not (suite.path / "o").exists()


def test_every_bad_line_is_listed_once_in_one_message(suite, write_jsonl):
    """Three bad lines: one run names them all (not one per fix-and-rerun round), once,
    with no chained-exception text."""
    data = write_jsonl([ITEM | {"id": "fine"}, "{not json", ITEM | {"id": "x", "questoin": "q"}, ITEM | {"id": "fine"}])
    result = suite.runpytest_inprocess(*QUIET, "--dataset", str(data), "--results-dir", str(suite.path / "o"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    printed = "\n".join(result.outlines + result.errlines)
    assert f"{data}: 3 bad lines (fix them all, then run again):" in printed
    for line, problem in ((2, "not valid JSON"), (3, "unknown key 'questoin'"), (4, "duplicate id 'fine'")):
        assert printed.count(f"{data}:{line}: ") == 1 and problem in printed
    assert "During handling" not in printed and "Traceback" not in printed


def test_a_utf8_bom_is_not_part_of_the_first_line(suite, tmp_path):
    data = tmp_path / "bom.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + (json.dumps(ITEM | {"answer": "right"}) + "\n").encode())
    out = tmp_path / "o"
    result = suite.runpytest_inprocess(*QUIET, "--dataset", str(data), "--results-dir", str(out))
    result.assert_outcomes(passed=1)
    assert read_jsonl(out / "items.jsonl")[0]["id"] == "a"


def test_every_loader_checks_its_items(tmp_path, monkeypatch):
    """Items from any format go through the same scorability check (here a loader that
    yields an mc answer beyond its options)."""
    import vlm_bench.datasets as datasets
    from vlm_bench.types import Sample

    bad = Sample(id="q9", dataset="d", question="q", answer="E", options=("a", "b"), scorer="mc", source="ann.json:[9]")
    monkeypatch.setitem(datasets.LOADERS, "jsonl", lambda cfg: [bad])
    with pytest.raises(DatasetError, match=r"ann.json:\[9\]: item 'q9': mc scorer: answer 'E' names option E, beyond the 2 options \(A-B\)"):
        load_samples(load_dataset_config(SMOKE_JSONL))
