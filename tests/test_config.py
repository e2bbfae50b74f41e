import textwrap

import pytest
import yaml

from vlm_bench.config import (
    ConfigError,
    build_run_config,
    load_dataset_config,
    load_model_config,
    model_catalog,
    resolve_decode,
    resolve_model,
    resolve_video,
)
from vlm_bench.evaluate import Evaluator
from vlm_bench.types import DecodeConfig, Sample, VideoConfig


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def model_yaml(tmp_path):
    return write(
        tmp_path / "m.yaml",
        """
        family: mock
        video: {max_frames: 16, strategy: stride, stride: 4, fps: null}
        decode: {max_new_tokens: 100}
        """,
    )


@pytest.fixture
def dataset_yaml(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"id": "a", "video": "a.mp4", "question": "q", "answer": "x"}\n')
    return write(
        tmp_path / "d.yaml",
        """
        name: dset
        path: d.jsonl
        video: {max_frames: 12, stride: null}
        decode: {max_new_tokens: 50}
        """,
    )


def test_defaults_when_nothing_is_set():
    assert resolve_video() == VideoConfig(max_frames=32, strategy="uniform", fps=None, stride=None)
    assert resolve_decode() == DecodeConfig(temperature=0.0, max_new_tokens=1024, stop=())


def test_precedence_dataset_over_model_over_defaults(model_yaml, dataset_yaml):
    run = build_run_config(model=str(model_yaml), datasets=[str(dataset_yaml)])
    ev = Evaluator(run)
    sample = Sample(id="a", dataset="dset", question="q", answer="x", video="a.mp4")
    # dataset max_frames 12 beats model 16; the dataset's null stride does not hide the model's 4;
    # strategy comes from the model; fps from the defaults
    assert ev.video_config(sample) == VideoConfig(max_frames=12, strategy="stride", fps=None, stride=4)


def test_item_overrides_beat_dataset_and_cli_beats_all(model_yaml, dataset_yaml):
    sample = Sample(
        id="a", dataset="dset", question="q", answer="x", video="a.mp4",
        video_overrides={"max_frames": 6, "strategy": "uniform"},
    )
    run = build_run_config(model=str(model_yaml), datasets=[str(dataset_yaml)])
    assert Evaluator(run).video_config(sample) == VideoConfig(6, "uniform", None, 4)
    run = build_run_config(
        model=str(model_yaml),
        datasets=[str(dataset_yaml)],
        video_overrides={"max_frames": 3, "strategy": "fps", "fps": 2.0, "stride": None},
        decode_overrides={"max_new_tokens": 7},
    )
    ev = Evaluator(run)
    assert ev.video_config(sample) == VideoConfig(3, "fps", 2.0, 4)
    ev.load()
    assert ev.decode_config(sample).max_new_tokens == 7


def test_decode_precedence(model_yaml, dataset_yaml):
    ev = Evaluator(build_run_config(model=str(model_yaml), datasets=[str(dataset_yaml)]))
    ev.load()
    sample = Sample(id="a", dataset="dset", question="q", answer="x", video="a.mp4")
    assert ev.decode_config(sample) == DecodeConfig(0.0, 50, ())


@pytest.mark.parametrize(
    "text, key",
    [
        ("family: mock\nvidoe: {max_frames: 4}\n", "vidoe"),
        ("family: mock\nvideo: {max_frame: 4}\n", "max_frame"),
        ("family: mock\ndecode: {max_tokens: 4}\n", "max_tokens"),
        ("family: internvl3\nvision_args: {long_side: 4}\n", "long_side"),
    ],
)
def test_unknown_model_keys_are_named(tmp_path, text, key):
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        load_model_config(write(tmp_path / "m.yaml", text))


def test_unknown_key_suggests_the_right_one(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'video'"):
        load_model_config(write(tmp_path / "m.yaml", "family: mock\nvidoe: {}\n"))


def test_unknown_dataset_key_is_named(tmp_path, dataset_yaml):
    write(tmp_path / "bad.yaml", "path: d.jsonl\nscorrer: mc\n")
    with pytest.raises(ConfigError, match="unknown key 'scorrer'"):
        load_dataset_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    "text, message",
    [
        ("family: llava\n", "family must be one of"),
        ("family: internvl3\nresponses: {a: b}\n", "only valid for family 'mock'"),
        ("family: internvl3\nquantization: int3\n", "quantization must be one of"),
        ("family: mock\nvideo: {max_frames: 0}\n", "max_frames must be a whole number from 1 to 1024"),
        ("family: mock\nvideo: {strategy: random}\n", "strategy must be one of"),
        ("family: mock\ndecode: {stop: [1]}\n", "stop must be a list of non-empty strings"),
        ("- a\n- b\n", "expected a mapping"),
        ("family: [unclosed\n", "not valid YAML"),
    ],
)
def test_model_yaml_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_model_config(write(tmp_path / "m.yaml", text))


def test_catalog_has_every_internvl3_size_with_its_hub_id():
    catalog = model_catalog()
    for size in ("1B", "2B", "8B", "9B", "14B", "38B", "78B"):
        cfg = load_model_config(catalog[f"internvl3_{size.lower()}"])
        assert cfg.family == "internvl3"
        assert cfg.hf_repo == f"OpenGVLab/InternVL3-{size}"


def test_internvl3_38b_has_the_prd_schema():
    raw = yaml.safe_load(open(model_catalog()["internvl3_38b"]))
    # the engine the standard install provides; VLMEvalKit is one --backend away
    assert raw["family"] == "internvl3" and raw["engine"] == "native"
    assert raw["hf_repo"] == "OpenGVLab/InternVL3-38B" and raw["quantization"] == "none"
    assert raw["vision_args"] == {"short_side": 448}
    assert raw["video"] == {"max_frames": 32, "strategy": "uniform", "fps": None, "stride": None}
    assert raw["decode"] == {"temperature": 0.0, "max_new_tokens": 1024, "stop": []}


def test_model_lookup_by_name_or_path_and_close_matches(model_yaml):
    assert resolve_model("internvl3-38b").name == "internvl3_38b"
    assert resolve_model(str(model_yaml)).family == "mock"
    with pytest.raises(ConfigError, match="did you mean internvl3_38b"):
        resolve_model("internvl3_3b8")
    with pytest.raises(ConfigError, match="model file not found"):
        resolve_model("missing.yaml")


def test_backend_rules(dataset_yaml):
    assert build_run_config(model="internvl3_38b").backend == "native"  # the YAML's engine
    assert build_run_config(model="internvl3_38b", backend="vlmeval").backend == "vlmeval"
    with pytest.raises(ConfigError, match="runs only with --backend=mock"):
        build_run_config(model="mock", backend="native")
    with pytest.raises(ConfigError, match="applies to the native backend only"):
        build_run_config(model="internvl3_38b", backend="vlmeval", quant="int4")
    assert build_run_config(model="internvl3_38b", backend="native", quant="int4").quant == "int4"


def test_impossible_frame_settings_fail_before_any_item(dataset_yaml):
    with pytest.raises(ConfigError, match="strategy 'fps' needs an fps"):
        build_run_config(model="mock", datasets=[str(dataset_yaml)], video_overrides={"strategy": "fps"})


def test_same_dataset_twice_is_refused(dataset_yaml):
    with pytest.raises(ConfigError, match="given twice"):
        build_run_config(model="mock", datasets=[str(dataset_yaml), str(dataset_yaml)])


def test_catalog_bf16_weights_are_twice_the_parameter_count():
    """docs/backends.md's GPU guide and examples/served_memory.py read ``bf16_weights_gb``;
    it is the parameter count times two bytes, as the docs say."""
    from vlm_bench.config import MODELS_DIR

    checked = 0
    for path in sorted(MODELS_DIR.glob("internvl3_*.yaml")):
        info = resolve_model(path.stem).info
        assert abs(info["bf16_weights_gb"] - 2 * info["parameters_b"]) <= 0.15, path.name
        checked += 1
    assert checked >= 7
