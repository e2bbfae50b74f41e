"""The openai backend against a scriptable OpenAI-compatible server (tests/fake_openai.py):
the request it sends, retries, a server that is down, the key, requests in flight and
resume. The real server (`transformers serve` with the tiny InternVL) is in
test_served_tiny.py."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from conftest import EVAL_TEST, REPO, SMOKE_JSONL, read_jsonl, without_timing
from fake_openai import FakeOpenAIServer
from vlm_bench.config import ConfigError, build_run_config, resolve_model
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.frames import load_media
from vlm_bench.registry.model_adapters.internvl3 import INTERNVL3_SYSTEM_PROMPT
from vlm_bench.runners import ServerUnavailable
from vlm_bench.runners.chat_request import resize_square
from vlm_bench.runners.openai_backend import OpenAIEngine, redact_url
from vlm_bench.types import DecodeConfig

pytest.importorskip("openai")  # the serve extra (in the test extra)

CANARY = "sk-canary-5f1d0c9e7b2a4e61"


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def smoke():
    run = build_run_config(model="tiny-internvl3", datasets=[str(SMOKE_JSONL)])
    samples = {s.id: s for s in load_samples(run.datasets[0])}
    ev = Evaluator(run)

    def item(item_id):
        sample = samples[item_id]
        return load_media(sample, ev.video_config(sample)), sample

    return item


def engine(url, seed=0, **server):
    cfg = resolve_model("tiny-internvl3")
    eng = OpenAIEngine(replace(cfg, server={"base_url": url, "retry_base_s": 0.0, **server}), seed=seed)
    eng.load()
    return eng


def decoded(part) -> np.ndarray:
    header, _, data = part["image_url"]["url"].partition(",")
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    return cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the request


def test_frames_go_in_order_with_labels_system_message_and_decode_settings(server, smoke):
    media, _ = smoke("square_direction")
    eng = engine(server.url, seed=7)
    gen = eng.generate_video(media, "Which way?", DecodeConfig(max_new_tokens=12, stop=("\n\n",)))
    body = server.requests[-1]
    assert body["model"] == "fake-model"  # the first of GET /v1/models
    assert body["max_tokens"] == 12 and body["temperature"] == 0 and body["seed"] == 7 and body["stop"] == ["\n\n"]
    assert "top_p" not in body  # greedy
    system, user = body["messages"]
    assert system == {"role": "system", "content": INTERNVL3_SYSTEM_PROMPT}
    parts = user["content"]
    n = len(media.frames)
    assert [p["type"] for p in parts] == ["text", "image_url"] * n + ["text"]
    assert [p["text"] for p in parts[0:-1:2]] == [f"Frame{i}: " for i in range(1, n + 1)]
    assert parts[-1]["text"] == "Which way?"
    for frame, part in zip(media.frames, parts[1::2]):  # in order, each one 64x64 tile, lossless
        assert np.array_equal(decoded(part), resize_square(frame, 64))
    assert gen.text == f"{n} images: way?" and gen.tokens == 4 and gen.truncated is False and gen.latency_ms > 0


def test_a_still_image_goes_at_its_own_size_without_a_label(server, smoke):
    media, _ = smoke("dots_image")
    engine(server.url).generate_video(media, "How many?", DecodeConfig())
    parts = server.requests[-1]["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"]
    assert np.array_equal(decoded(parts[0]), media.frames[0])


@pytest.mark.parametrize(
    ("owned_by", "setting", "placeholder"),
    [("lmdeploy", "auto", "<IMAGE_TOKEN>"), ("vllm", "auto", "<image>"), ("local", "auto", None),
     ("vllm", "none", None), ("local", "<image>", "<image>")],
)
def test_labels_and_images_laid_out_as_the_server_needs(smoke, owned_by, setting, placeholder):
    media, _ = smoke("dots_sequence")
    with FakeOpenAIServer(owned_by=owned_by) as server:
        eng = engine(server.url, frame_placeholder=setting, image_format="jpeg")
        eng.generate_video(media, "Count.", DecodeConfig())
    parts = server.requests[-1]["messages"][-1]["content"]
    assert eng.describe()["frame_placeholder"] == placeholder and eng.describe()["owned_by"] == owned_by
    if placeholder is None:
        assert [p["type"] for p in parts] == ["text", "image_url"] * 3 + ["text"]
    else:  # lmdeploy reads only the first text part; vLLM joins them and fills its placeholders in order
        assert parts[0] == {"type": "text", "text": "".join(f"Frame{i}: {placeholder}\n" for i in (1, 2, 3)) + "Count."}
        assert [p["type"] for p in parts[1:]] == ["image_url"] * 3
    assert all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in parts if p["type"] == "image_url")


def test_served_model_from_the_config_and_a_wrong_one_stops(server, smoke):
    server.models = ["a", "b"]
    assert engine(server.url, model="b").served_model == "b"
    with pytest.raises(ServerUnavailable, match=r"serves 'a', 'b', not 'c'; fix --served-model"):
        engine(server.url, model="c")


def test_length_is_truncation_and_stop_strings_are_cut(server, smoke):
    media, _ = smoke("colour_last")
    eng = engine(server.url)
    server.finish_reason = "length"
    assert eng.generate_video(media, "q", DecodeConfig()).truncated is True
    gen = eng.generate_video(media, "q", DecodeConfig(stop=(" images",)))  # the server left the stop string in
    assert gen.text == "8" and gen.truncated is False
    assert gen.raw_text == "8 images: q"  # the record's raw_response: what the server sent, uncut


def test_extra_body_fields_reach_the_server(server, smoke):
    media, _ = smoke("colour_last")
    engine(server.url, extra_body={"mm_processor_kwargs": {"max_dynamic_patch": 1}}).generate_video(media, "q", DecodeConfig())
    assert server.requests[-1]["mm_processor_kwargs"] == {"max_dynamic_patch": 1}


# ---------------------------------------------------------------- retries and failures


def test_retries_429_5xx_and_dropped_connections_then_answers(server, smoke):
    media, _ = smoke("colour_last")
    eng = engine(server.url, max_retries=3)
    server.failures.extend([(429, {"Retry-After": "0"}), 503, "drop"])
    gen = eng.generate_video(media, "q", DecodeConfig())
    assert gen.text.startswith("8 images") and len(server.requests) == 4


def test_backoff_doubles_and_honours_retry_after(server):
    eng = engine(server.url, retry_base_s=2.0)
    waits = [eng._backoff(a, None) for a in range(7)]
    assert [round(w / (2.0 * 2**a)) for a, w in enumerate(waits[:5])] == [1] * 5  # within +-25% jitter
    assert max(waits) <= 60
    # the server's Retry-After is honoured up to the cap docs/served.md states (60 s), which is a setting
    assert eng._backoff(0, 3.0) == 3.0 and eng._backoff(0, 100000.0) == 60.0
    assert engine(server.url, max_retry_wait_s=5.0)._backoff(0, 100000.0) == 5.0


def test_a_request_that_keeps_failing_is_that_items_error(server, smoke):
    media, _ = smoke("colour_last")
    eng = engine(server.url, max_retries=2)
    server.failures.extend([500] * 3)
    with pytest.raises(RuntimeError, match=r"item 'colour_last': the server at .* failed 3 times \(HTTP 500"):
        eng.generate_video(media, "q", DecodeConfig())
    server.failures.extend([400])
    with pytest.raises(RuntimeError, match=r"rejected the request \(HTTP 400"):  # not retried
        eng.generate_video(media, "q", DecodeConfig())
    assert len(server.requests) == 4


def test_a_server_that_stays_overloaded_stops_the_session(server, smoke):
    media, _ = smoke("colour_last")
    eng = engine(server.url, max_retries=1)
    server.failures.extend([429, 429])
    with pytest.raises(ServerUnavailable, match="still overloaded after 2 attempts.*lower --concurrency"):
        eng.generate_video(media, "q", DecodeConfig())


def test_a_missing_v1_gets_a_hint(server):
    with pytest.raises(ServerUnavailable, match=r"try --base-url http://127.0.0.1:\d+/v1"):
        engine(server.url.removesuffix("/v1"))


def test_userinfo_never_leaves_the_url():
    assert redact_url("http://me:secret@host:8000/v1") == "http://host:8000/v1"
    assert redact_url("https://host/v1") == "https://host/v1"


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "openai"}, "--backend openai needs the server's URL: --base-url"),
        ({"backend": "native", "server_overrides": {"base_url": "http://h:1/v1"}}, "--base-url applies to --backend openai"),
        ({"backend": "openai", "server_overrides": {"base_url": "h:1/v1"}}, "base_url must be an http"),
        ({"backend": "openai", "server_overrides": {"base_url": "http://h:1/v1", "concurrency": 0}}, "concurrency must be"),
    ],
)
def test_bad_server_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_run_config(model="tiny-internvl3", datasets=[str(SMOKE_JSONL)], **kwargs)


def test_a_key_given_as_the_variable_name_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as info:
        build_run_config(model="tiny-internvl3", backend="openai", datasets=[str(SMOKE_JSONL)],
                         server_overrides={"base_url": "http://h:1/v1", "api_key_env": CANARY})
    assert "NAME of an environment variable" in str(info.value) and CANARY not in str(info.value)


def test_an_unset_key_variable_is_a_clear_error(server, monkeypatch):
    monkeypatch.delenv("VLM_BENCH_TEST_KEY", raising=False)
    with pytest.raises(RuntimeError, match="the environment variable VLM_BENCH_TEST_KEY is not set"):
        engine(server.url, api_key_env="VLM_BENCH_TEST_KEY")


def test_a_key_echoed_across_the_cut_of_an_error_message_is_still_hidden(monkeypatch):
    monkeypatch.setenv("VLM_BENCH_TEST_KEY", CANARY)
    with FakeOpenAIServer(key="another", echo_key_on_401=True, echo_padding=260) as server:
        with pytest.raises(ServerUnavailable) as info:
            engine(server.url, api_key_env="VLM_BENCH_TEST_KEY")
    assert "..." in str(info.value) and CANARY[:5] not in str(info.value)  # cut after the key was replaced


def test_where_and_how_fast_are_not_part_of_the_fingerprint():
    from vlm_bench.config import run_fingerprint

    def fp(**server):
        return run_fingerprint(build_run_config(model="tiny-internvl3", backend="openai", datasets=[str(SMOKE_JSONL)],
                                                server_overrides={"base_url": "http://h:1/v1", **server}))

    assert fp() == fp(base_url="http://other:2/v1", concurrency=8, api_key_env="K")
    assert fp() != fp(model="another-model")


# ---------------------------------------------------------------- through the plugin


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_served_items=EVAL_TEST)
    return pytester


def run(suite, *args):
    return suite.runpytest_inprocess(
        "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "--backend", "openai", "--model", "tiny-internvl3", "--dataset", str(SMOKE_JSONL), *args,
    )


def ran_all(result) -> bool:
    """All nine smoke items ran (the fake's answers pass or fail by chance)."""
    outcomes = result.parseoutcomes()
    return outcomes.get("passed", 0) + outcomes.get("failed", 0) == 9 and "error" not in outcomes


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_server_that_is_down_stops_the_session_once_with_its_url(suite, workers):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run(suite, "--base-url", url, "--results-dir", str(suite.path / "out"), *workers)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    assert f"Exit: vlm-bench: cannot reach the server at {url}" in out and "--resume" in out
    assert "no tests ran" in out and "failed" not in result.parseoutcomes()  # said once, not per item
    assert not (suite.path / "out" / "items.jsonl").exists() or not read_jsonl(suite.path / "out" / "items.jsonl")
    if (suite.path / "out" / "summary.json").exists():
        assert "cannot reach the server" in json.loads((suite.path / "out" / "summary.json").read_text())["stopped"]


def test_requests_in_flight_give_the_same_records_and_resume_works(suite):
    with FakeOpenAIServer(delay_s=0.05) as srv:
        one, four = suite.path / "one", suite.path / "four"
        assert ran_all(run(suite, "--base-url", srv.url, "--results-dir", str(one)))
        assert srv.max_in_flight == 1
        assert ran_all(run(suite, "--base-url", srv.url, "--results-dir", str(four), "--concurrency", "4"))
        assert srv.max_in_flight == 4
        a, b = read_jsonl(one / "items.jsonl"), read_jsonl(four / "items.jsonl")
        assert [without_timing(r) for r in a] == [without_timing(r) for r in b] and all(r["error"] is None for r in b)
        assert json.loads((four / "summary.json").read_text())["workers"]["main"]["server"] == {
            "base_url": srv.url, "model": "fake-model", "owned_by": "fake", "frame_placeholder": None, "api_key_env": None,
            "concurrency": {"mode": "fixed", "in_flight": 4}}
        items = (four / "items.jsonl").read_text().splitlines()
        (four / "items.jsonl").write_text("\n".join(items[:5]) + "\n")  # as if the run stopped there
        before = len(srv.requests)
        run(suite, "--base-url", srv.url, "--results-dir", str(four), "--concurrency", "4", "--resume")
        assert len(srv.requests) - before == 4
        assert sorted(r["id"] for r in read_jsonl(four / "items.jsonl")) == sorted(r["id"] for r in a)


def test_kill_9_with_requests_in_flight_then_resume(suite):
    """A real process killed mid-run with requests in flight: no torn or duplicated
    record, and --resume finishes the rest."""
    with FakeOpenAIServer(delay_s=0.15) as srv:
        out = suite.path / "out"
        args = ["--base-url", srv.url, "--concurrency", "3", "--results-dir", str(out)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--backend", "openai",
             "--model", "tiny-internvl3", "--dataset", str(SMOKE_JSONL), *args],
            cwd=suite.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            while not (out / "items.jsonl").exists() or len(read_jsonl(out / "items.jsonl")) < 2:
                assert proc.poll() is None, "the run ended before it could be killed"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        written = read_jsonl(out / "items.jsonl")
        assert 2 <= len(written) < 9 and len({r["id"] for r in written}) == len(written)
        assert ran_all(run(suite, *args, "--resume"))
        ids = [r["id"] for r in read_jsonl(out / "items.jsonl")]
        assert len(ids) == len(set(ids)) == 9


def test_the_key_never_appears_in_anything_a_run_writes(suite, monkeypatch):
    monkeypatch.setenv("VLM_BENCH_TEST_KEY", CANARY)
    with FakeOpenAIServer(key=CANARY) as srv:
        out = suite.path / "out"
        result = run(suite, "--base-url", srv.url, "--api-key-env", "VLM_BENCH_TEST_KEY", "--results-dir", str(out),
                     "--log-level", "DEBUG", "--log-file", str(suite.path / "debug.log"),
                     "--junitxml", str(suite.path / "junit.xml"), "-rA")
        assert ran_all(result)
        assert len(srv.requests) == 9  # the key was sent, and accepted
    with FakeOpenAIServer(key="another", echo_key_on_401=True) as srv:  # a server that echoes what it got
        refused = run(suite, "--base-url", srv.url, "--api-key-env", "VLM_BENCH_TEST_KEY", "--results-dir", str(suite.path / "refused"))
        assert refused.ret == pytest.ExitCode.INTERRUPTED
        assert "refused the key in $VLM_BENCH_TEST_KEY" in refused.stdout.str() and "invalid key: Bearer ***" in refused.stdout.str()
    written = [p for p in suite.path.rglob("*") if p.is_file()]
    assert {"items.jsonl", "summary.json", "debug.log", "junit.xml"} <= {p.name for p in written}
    assert "VLM_BENCH_TEST_KEY" in (out / "summary.json").read_text()  # the variable's name is recorded, not its value
    for text in [p.read_bytes().decode("utf-8", "replace") for p in written] + [
        result.stdout.str(), result.stderr.str(), refused.stdout.str(), refused.stderr.str()
    ]:
        assert CANARY not in text


# ---------------------------------------------------------------- the docs


def test_the_docs_memory_table_is_what_the_script_computes():
    docs = (REPO / "docs" / "served.md").read_text()
    table = subprocess.run([sys.executable, str(REPO / "examples" / "served_memory.py")], capture_output=True, text=True, check=True).stdout
    assert len(table.splitlines()) == 10 and table in docs


def test_the_docs_served_model_yaml_is_a_valid_config(tmp_path):
    from vlm_bench.config import ServerConfig, load_model_config

    docs = (REPO / "docs" / "served.md").read_text()
    block = docs.split("A YAML for one served model:", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "served.yaml").write_text(block)
    cfg = load_model_config(tmp_path / "served.yaml")
    assert cfg.engine == "openai" and ServerConfig.of(cfg).concurrency == 16 and ServerConfig.of(cfg).frame_placeholder == "auto"
