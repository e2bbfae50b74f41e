"""Commercial video APIs (Luma, Runway, Veo, Sora) through their official SDKs, against
loopback fakes of the endpoints each SDK calls (tests/fake_video_apis.py): every scenario
for every provider, the key kept out of everything a run writes, the first-frame
uploader, resuming a killed run's submission, the dry run, the spending cap, requests
in flight and the rate limit, and the videos flowing into the judge."""

from __future__ import annotations

import importlib.util
import json
import re
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from conftest import REPO, read_jsonl
from fake_video_apis import PROVIDERS, FakeS3, FakeVideoAPIs, tiny_mp4
from vlm_bench.config import ConfigError, build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.generation import tree
from vlm_bench.generation.base import GeneratorUnavailable, create_generator
from vlm_bench.generation.catalog import load_generator_config, requirements, resolve_generator, with_transport
from vlm_bench.generation.engines.api import RateLimiter
from vlm_bench.generation.run import GenerationRunner, tasks_from_samples
from vlm_bench.generation.upload import S3Uploader

for _sdk in ("lumaai", "runwayml", "openai", "google.genai", "boto3"):
    if importlib.util.find_spec(_sdk.split(".")[0]) is None:
        pytest.skip(f"needs the api and s3 extras ({_sdk})", allow_module_level=True)

KEY = "sk-CANARY-7f3a9c1e5b"  # the canary: it must appear nowhere a run writes
S3_SECRET = "s3-secret-CANARY-42d1"
CATALOG = {  # VMEvalKit's names -> the provider's model id
    "luma-ray-2": "ray-2", "luma-ray-flash-2": "ray-flash-2",
    "veo-2.0-generate": "veo-2.0-generate-001", "veo-3.0-generate": "veo-3.0-generate-001",
    "veo-3.0-fast-generate": "veo-3.0-fast-generate-001", "veo-3.1-generate": "veo-3.1-generate-001",
    "runway-gen4-turbo": "gen4_turbo", "runway-gen4-aleph": "gen4_aleph", "runway-gen3a-turbo": "gen3a_turbo",
    "openai-sora-2": "sora-2", "openai-sora-2-pro": "sora-2-pro",
}
GENERATOR = {"luma": "luma-ray-2", "runway": "runway-gen4-turbo", "sora": "openai-sora-2", "veo": "veo-3.0-generate"}
KEY_ENV = {"luma": "LUMA_API_KEY", "runway": "RUNWAYML_API_SECRET", "sora": "OPENAI_API_KEY", "veo": "GOOGLE_API_KEY"}
FAST = {"poll_interval_s": 0.01, "retry_base_s": 0.001, "max_retries": 2, "poll_timeout_s": 5.0, "timeout_s": 5.0,
        "connect_timeout_s": 2.0, "requests_per_minute": None}
QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", "-W", "ignore::DeprecationWarning")
GEN_TEST = (REPO / "evals" / "test_generation.py").read_text()


@pytest.fixture(scope="module")
def apis(tmp_path_factory):
    with FakeVideoAPIs(tiny_mp4(tmp_path_factory.mktemp("video")), key=KEY) as server, FakeS3() as s3:
        server.s3 = s3
        yield server


@pytest.fixture
def server(apis, monkeypatch):
    """The shared fake, reset, with every provider's key and the S3 store's settings in the environment."""
    apis.faults.clear()
    apis.refusal, apis.echo_key_in_refusal, apis.work_s = None, False, 0.0
    apis.hold.set()
    for env in KEY_ENV.values():
        monkeypatch.setenv(env, KEY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", apis.s3.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return apis


def fixture_tasks(limit=None):
    run = build_run_config(model="mock", datasets=["vmevalkit_fixtures"], limit=limit)
    return tasks_from_samples(load_samples(run.datasets[0]), run.datasets)


def api_cfg(provider, server, **api):
    cfg = with_transport(resolve_generator(GENERATOR[provider]), base_url=server.base_url(provider),
                         upload_to="s3://frames/vlm" if provider == "luma" else None)
    return replace(cfg, api={**cfg.api, **FAST, **api})


def runner_for(provider, server, outputs, **api):
    cfg = api_cfg(provider, server, **api)
    runner = GenerationRunner(cfg, cfg.settings(), outputs)
    runner.load()
    return runner


def job_count(server, provider):
    return sum(1 for j in server.jobs.values() if j.provider == provider)


def run_one(provider, server, outputs, task=None, **api):
    before = (server.count(provider, "submit"), job_count(server, provider))
    runner = runner_for(provider, server, outputs, **api)
    try:
        record, _ = runner.run(task or fixture_tasks()[0])
    finally:
        runner.close()
    return record, server.count(provider, "submit") - before[0], job_count(server, provider) - before[1]


def task_dir(outputs, provider, task=None):
    return tree.task_output_dir(outputs, GENERATOR[provider], task or fixture_tasks()[0])


# ---------------------------------------------------------------- catalog


def test_catalog_names_every_vmevalkit_api_model_with_its_sdk_key_and_extra():
    for name, model in CATALOG.items():
        cfg = resolve_generator(name)
        assert (cfg.kind, cfg.model, cfg.name) == ("api", model, name)
        gen = create_generator(cfg, cfg.settings())
        assert gen.resumable and gen.concurrency >= 1 and gen.api.requests_per_minute
        assert f"${cfg.needs['api_key']}" in requirements(cfg) and "vlm-bench[api" in requirements(cfg)
    assert "--upload-to" in requirements(resolve_generator("luma-ray-2"))
    assert "0.1 USD/s" in requirements(resolve_generator("openai-sora-2"))


def test_api_settings_and_transport_are_checked_before_any_task(tmp_path):
    cfg = resolve_generator("openai-sora-2")
    with pytest.raises(ConfigError, match=r"'openai-sora-2' is an API generator: height, steps do not apply"):
        cfg.settings({"steps": 4, "height": 64})
    assert cfg.settings({"seed": 7}).seed == 7
    with pytest.raises(ConfigError, match="--base-url: for API generators; 'svd' is open_source"):
        with_transport(resolve_generator("svd"), base_url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="the NAME of an environment variable"):
        with_transport(cfg, api_key_env="sk-live-key")
    bad = tmp_path / "g.yaml"
    bad.write_text("family: X\nkind: api\nengine: a.b:C\napi: {poll_intervals: 3}\n")
    with pytest.raises(ConfigError, match=r"api: unknown key 'poll_intervals' \(did you mean 'poll_interval_s'\?\)"):
        load_generator_config(bad)
    for setting, message in (("api: {poll_timeout_s: .nan}", "api: poll_timeout_s must be a finite number > 0, got nan"),
                             ("api: {usd_per_second: .inf}", "usd_per_second must be a finite number >= 0, got inf"),
                             ("defaults: {fps: .nan}", "defaults: fps must be a finite number > 0, got nan"),
                             ("defaults: {guidance_scale: -1}", "guidance_scale must be a finite number >= 0, got -1")):
        bad.write_text(f"family: X\nkind: api\nengine: a.b:C\n{setting}\n")
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_generator_config(bad)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_missing_key_stops_before_anything_is_sent_naming_the_variable(provider, server, monkeypatch):
    monkeypatch.delenv(KEY_ENV[provider])
    cfg = api_cfg(provider, server)
    with pytest.raises(GeneratorUnavailable, match=rf"needs its API key in the environment variable {KEY_ENV[provider]} "):
        create_generator(cfg, cfg.settings()).check()


def test_luma_without_an_uploader_says_how_to_configure_one(server):
    cfg = replace(api_cfg("luma", server), api={**api_cfg("luma", server).api, "upload_to": None})
    with pytest.raises(GeneratorUnavailable, match=r"luma fetches the first frame from a public URL; .*--upload-to s3://bucket/prefix"):
        create_generator(cfg, cfg.settings()).check()


# ---------------------------------------------------------------- scenarios, every provider


@pytest.mark.parametrize("provider", PROVIDERS)
def test_success_writes_a_checked_video_and_records_the_generation(provider, server, tmp_path):
    record, submits, jobs = run_one(provider, server, tmp_path)
    assert record.passed and (submits, jobs) == (1, 1), record.error
    assert record.video["num_frames"] == 6 and (record.video["height"], record.video["width"]) == (32, 64)
    (run,) = tree.runs(task_dir(tmp_path, provider))
    job = server.jobs[run.metadata["output"]["generation_id"]]
    assert run.metadata["inference"]["status"] == "success" and record.meta["generation_id"] == job.id
    sent = record.meta["result_metadata"]["request"]
    assert sent["model"] == CATALOG[GENERATOR[provider]] and "base64" not in json.dumps(sent)  # no image in the record
    if provider == "luma":  # uploaded first; the fake Luma fetched it through the presigned URL
        (stored,) = [k for k in server.s3.objects if k.startswith("/frames/vlm/")]
        assert job.request["frame0_bytes"] == len(server.s3.objects[stored]) == fixture_tasks()[0].first_frame.stat().st_size
    if provider == "runway":
        assert job.request["promptImage"].startswith("data:image/png;base64,") and job.request["ratio"] == "1280:720"  # 1920x1080
    if provider == "sora":
        assert (job.request["size"], job.request["seconds"]) == ("1280x720", "4")
    if provider == "veo":
        assert job.request["parameters"]["seed"] == 0 and job.request["parameters"]["durationSeconds"] == 8


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_with_retry_after_then_success_submits_once(provider, server, tmp_path):
    server.fault(provider, "submit", (429, {"Retry-After": "0.2"}))
    server.fault(provider, "poll", 503)
    start = len(server.seen)
    record, submits, jobs = run_one(provider, server, tmp_path)
    assert record.passed and (submits, jobs) == (2, 1), record.error
    first, second = [s.at for s in server.seen[start:] if s.kind == "submit"]
    assert second - first >= 0.2  # the provider's Retry-After, not the 1 ms backoff of these tests


def test_retry_after_in_seconds_milliseconds_or_a_date_and_backoff_with_jitter():
    from email.utils import format_datetime
    from datetime import datetime, timedelta, timezone

    from vlm_bench.utils.http import Backoff, retry_after

    assert retry_after({"retry-after": "7"}) == 7.0 and retry_after({"retry-after-ms": "250"}) == 0.25
    assert 28 <= retry_after({"retry-after": format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)}) <= 30
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None
    backoff = Backoff(1.0, seed=0)
    waits = [backoff.seconds(a) for a in range(8)]
    assert all(0.75 * min(60, 2**a) <= w <= 1.25 * min(60, 2**a) for a, w in enumerate(waits))
    assert len({round(w / min(60, 2**a), 6) for a, w in enumerate(waits)}) > 1  # jittered
    assert backoff.seconds(3, 5.0) == 5.0 and backoff.seconds(0, 900.0) == 60.0  # Retry-After wins, capped
    assert max(waits) <= 60.0 and Backoff(1.0, max_s=7.5).seconds(0, 100000.0) == 7.5  # the cap holds, and is a setting


@pytest.mark.parametrize("provider", PROVIDERS)
def test_5xx_until_the_retry_budget_is_spent_fails_without_a_job(provider, server, tmp_path):
    server.fault(provider, "submit", 500, 502, 503)
    record, submits, jobs = run_one(provider, server, tmp_path)
    assert not record.passed and (submits, jobs) == (3, 0)
    assert record.error.startswith("submit failed 3 times (HTTP 503") and record.meta["status"] == "failed"
    (run,) = tree.runs(task_dir(tmp_path, provider))
    assert run.status == "failed" and run.video is None and not tree.interrupted_runs(task_dir(tmp_path, provider))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_poll_timeout_keeps_the_generation_and_the_next_run_fetches_it_without_paying_again(provider, server, tmp_path):
    server.hold.clear()  # jobs never finish
    record, submits, _ = run_one(provider, server, tmp_path, poll_timeout_s=0.2)
    assert not record.passed and submits == 1 and record.meta["status"] == "pending"
    assert "after 0.2 s (api.poll_timeout_s)" in record.error and "the next run polls it again" in record.error
    (pending,) = tree.interrupted_runs(task_dir(tmp_path, provider))
    job_id = pending.metadata["output"]["generation_id"]
    assert pending.metadata["inference"]["status"] == "pending" and job_id in server.jobs and not tree.runs(task_dir(tmp_path, provider))
    server.hold.set()
    record, submits, jobs = run_one(provider, server, tmp_path)
    assert record.passed and (submits, jobs) == (0, 0) and record.meta["generation_id"] == job_id
    assert record.meta["result_metadata"]["resumed"] is True


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_moderation_refusal_is_recorded_with_the_providers_reason_and_not_retried(provider, server, tmp_path):
    server.refusal = "the prompt was flagged by moderation"
    record, submits, jobs = run_one(provider, server, tmp_path)
    assert not record.passed and (submits, jobs) == (1, 1)
    assert "the prompt was flagged by moderation" in record.error and record.meta["status"] == "failed"
    assert "the prompt was flagged by moderation" in record.meta["result_metadata"]["refusal_reason"]
    (job,) = [j for j in server.jobs.values() if j.refusal and j.provider == provider][-1:]
    assert job.polls == 1  # a refusal is final
    (run,) = tree.runs(task_dir(tmp_path, provider))
    assert "flagged by moderation" in run.metadata["inference"]["error"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_validation_error_at_submission_is_not_retried(provider, server, tmp_path):
    server.fault(provider, "submit", 400)
    record, submits, jobs = run_one(provider, server, tmp_path)
    assert not record.passed and (submits, jobs) == (1, 0)
    assert record.error.startswith(f"{provider} refused the submit (HTTP 400: ") and "fake failure" in record.error


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_json_is_retried_on_a_poll_but_never_resent_as_a_submission(provider, server, tmp_path):
    server.fault(provider, "poll", "malformed")
    record, submits, _ = run_one(provider, server, tmp_path)
    assert record.passed and submits == 1, record.error
    server.fault(provider, "submit", "malformed")
    record, submits, _ = run_one(provider, server, tmp_path / "again")
    assert not record.passed and submits == 1  # it may have been accepted: not sent twice
    assert "the provider may have accepted (and billed) it, so it is not resent" in record.error


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_truncated_video_is_never_kept(provider, server, tmp_path):
    if provider == "veo":  # the video comes inline in the poll's answer: the decode check rejects it
        server.fault("veo", "inline", "truncated")
        record, _, _ = run_one(provider, server, tmp_path)
        assert not record.passed and record.error.startswith("generated video rejected: ")
        (run,) = tree.runs(task_dir(tmp_path, provider))
        assert run.video is None
        return
    server.fault(provider, "download", "truncated", "truncated", "truncated")
    record, submits, _ = run_one(provider, server, tmp_path)
    assert not record.passed and submits == 1 and record.meta["status"] == "pending"
    assert "download" in record.error and ("incomplete" in record.error or "connection failed" in record.error)
    assert not tree.runs(task_dir(tmp_path, provider))
    record, submits, jobs = run_one(provider, server, tmp_path)  # the next run downloads it again, paying nothing
    assert record.passed and (submits, jobs) == (0, 0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_connection_that_never_opens_is_retried_then_fails_without_a_job(provider, server, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cfg = replace(api_cfg(provider, server), api={**api_cfg(provider, server).api, "base_url": closed + "/v1"})
    runner = GenerationRunner(cfg, cfg.settings(), tmp_path)
    runner.load()
    record, _ = runner.run(fixture_tasks()[0])
    assert not record.passed and record.error.startswith("submit failed 3 times (connection failed: ")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refused_key_fails_the_task_and_sends_nothing_more(provider, server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV[provider], "sk-wrong")
    runner = runner_for(provider, server, tmp_path)
    before = len(server.seen)
    first, _ = runner.run(fixture_tasks()[0])
    second, _ = runner.run(fixture_tasks()[1])
    assert first.error == f"{provider} refused the key in ${KEY_ENV[provider]} (HTTP 401: " + first.error.split("(HTTP 401: ", 1)[1]
    assert second.error.startswith(f"not sent: {provider} refused the key") and len(server.seen) == before + 1


# ---------------------------------------------------------------- kill -9 while polling

WORKER = """
import sys, threading
from dataclasses import replace
from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.generation.catalog import resolve_generator, with_transport
from vlm_bench.generation.run import GenerationRunner, tasks_from_samples
outputs, jobs = sys.argv[1], [arg.split(",") for arg in sys.argv[2:]]
run = build_run_config(model="mock", datasets=["vmevalkit_fixtures"], limit=1)
task = tasks_from_samples(load_samples(run.datasets[0]), run.datasets)[0]
def generate(name, base_url, upload_to):
    cfg = with_transport(resolve_generator(name), base_url=base_url, upload_to=upload_to or None)
    api = {**cfg.api, "poll_interval_s": 0.02, "poll_timeout_s": 60, "requests_per_minute": None}
    runner = GenerationRunner(replace(cfg, api=api), cfg.settings(), outputs)
    runner.load()
    runner.run(task)
threads = [threading.Thread(target=generate, args=job) for job in jobs]
for t in threads: t.start()
for t in threads: t.join()
"""


@pytest.fixture(scope="module")
def killed_while_polling(apis, tmp_path_factory):
    """One real process generating with all four providers at once, killed with SIGKILL
    once each has polled its job twice: (outputs, {provider: submissions seen})."""
    outputs = tmp_path_factory.mktemp("killed")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", AWS_ACCESS_KEY_ID="AKIDFAKE",
               AWS_SECRET_ACCESS_KEY=S3_SECRET, AWS_ENDPOINT_URL_S3=apis.s3.url, AWS_DEFAULT_REGION="us-east-1",
               **{env: KEY for env in KEY_ENV.values()})
    jobs = [f"{GENERATOR[p]},{apis.base_url(p)},{'s3://frames/vlm' if p == 'luma' else ''}" for p in PROVIDERS]
    apis.hold.clear()
    before = {p: apis.count(p, "poll") for p in PROVIDERS}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(outputs), *jobs], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while (any(apis.count(p, "poll") < before[p] + 2 for p in PROVIDERS) and proc.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    out = proc.communicate(timeout=30)[0].decode()
    apis.hold.set()
    assert proc.returncode == -signal.SIGKILL, out
    return outputs, {p: apis.count(p, "submit") for p in PROVIDERS}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_kill_9_while_polling_then_resume_without_a_second_submission(provider, server, killed_while_polling):
    outputs, submits = killed_while_polling
    (left,) = tree.interrupted_runs(task_dir(outputs, provider))
    job_id = left.metadata["output"]["generation_id"]  # stored before the first poll
    assert job_id in server.jobs and left.metadata["inference"]["status"] == "running"
    record, resubmits, jobs = run_one(provider, server, outputs)
    assert record.passed and (resubmits, jobs) == (0, 0) and server.count(provider, "submit") == submits[provider]
    (run,) = tree.runs(task_dir(outputs, provider))
    assert run.metadata["output"]["generation_id"] == job_id and run.dir.name == left.dir.name[1:-len(".partial")]


# ---------------------------------------------------------------- sessions: key hygiene, dry run, cap


@pytest.fixture
def gen_suite(pytester):
    pytester.makepyfile(test_gen=GEN_TEST)
    return pytester


def fast_yaml(tmp_path, provider, **api):
    """A copy of the provider's catalog entry with the tests' short waits."""
    data = yaml.safe_load(Path(resolve_generator(GENERATOR[provider]).path).read_text())
    data["api"] = {**data["api"], **FAST, **api}
    path = tmp_path / f"{GENERATOR[provider]}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def session_args(provider, server, tmp_path, *extra):
    upload = ["--upload-to", "s3://frames/vlm"] if provider == "luma" else []
    return [*QUIET, "--dataset", "vmevalkit_fixtures", "--generator", str(fast_yaml(tmp_path, provider)),
            "--base-url", server.base_url(provider), *upload, "--outputs-dir", str(tmp_path / "out"),
            "--results-dir", str(tmp_path / "res"), *extra]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_key_appears_nowhere_a_run_writes(provider, server, gen_suite, tmp_path):
    """A canary key (and the S3 secret), DEBUG logs to a file, a refusal that quotes the
    key back, a timeout, a success: grep everything the session wrote and printed."""
    server.fault(provider, "submit", "echo-key")
    server.fault(provider, "poll", 500, 500, 500)  # the second task's polls fail: it ends pending
    log = tmp_path / "debug.log"
    result = gen_suite.runpytest_inprocess(*session_args(provider, server, tmp_path, "--limit", "3", "-v", "--concurrency", "1",
                                                         "--log-file", str(log), "--log-file-level", "DEBUG"))
    result.assert_outcomes(passed=1, failed=2)
    records = read_jsonl(tmp_path / "res" / "items.jsonl")
    assert "request authorised with ***" in records[0]["error"] and records[1]["meta"]["status"] == "pending"
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] + [p for p in (tmp_path / "res").rglob("*") if p.is_file()]
    assert len(written) > 8 and log.stat().st_size > 0
    for path in [*written, log]:
        data = path.read_bytes()
        assert KEY.encode() not in data and S3_SECRET.encode() not in data, path
    printed = "\n".join(result.outlines + result.errlines)
    assert KEY not in printed and S3_SECRET not in printed and "***" in printed


def test_a_password_in_the_base_url_appears_nowhere_a_run_writes(server, gen_suite, tmp_path):
    """--base-url http://user:PASSWORD@host/...: not in the records, the summary's manifest
    (config and argv), the lock file, the output tree, nor httpx's request log lines."""
    password = "pw-CANARY-91c2e7"
    log = tmp_path / "debug.log"
    args = session_args("runway", server, tmp_path, "--limit", "2", "--log-file", str(log), "--log-file-level", "DEBUG")
    at = args.index("--base-url") + 1
    args[at] = args[at].replace("http://", f"http://user:{password}@")
    result = gen_suite.runpytest_inprocess(*args)
    assert result.ret in (0, 1)  # (httpx turns the URL's user:password into Basic auth, which this provider refuses)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".py"]
    assert log in written and "HTTP Request: POST" in log.read_text()
    assert [str(p) for p in written if password.encode() in p.read_bytes()] == []
    assert password not in "\n".join(result.outlines + result.errlines)
    assert server.base_url("runway") in json.dumps(json.loads((tmp_path / "res" / "summary.json").read_text())["manifest"])


def test_a_dead_endpoint_stops_the_run_at_once_naming_it(server, gen_suite, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/runway"
    args = session_args("runway", server, tmp_path)
    args[args.index("--base-url") + 1] = dead
    started = time.monotonic()
    result = gen_suite.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR and time.monotonic() - started < 30
    assert f"cannot reach the API at {dead}" in "\n".join(result.errlines) and "nothing was sent" in "\n".join(result.errlines)
    assert not (tmp_path / "res" / "items.jsonl").exists()


def test_a_missing_key_stops_the_session_before_any_task(server, gen_suite, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    before = len(server.seen)
    result = gen_suite.runpytest_inprocess(*session_args("sora", server, tmp_path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "needs its API key in the environment variable OPENAI_API_KEY" in "\n".join(result.errlines)
    assert len(server.seen) == before and not (tmp_path / "out").exists() and not (tmp_path / "res").exists()


def test_dry_run_lists_what_would_be_sent_with_a_cost_estimate_and_sends_nothing(server, gen_suite, tmp_path, monkeypatch):
    done, pending = fixture_tasks()[:2]
    run_one("veo", server, tmp_path / "out", task=done)  # one finished video
    server.hold.clear()
    run_one("veo", server, tmp_path / "out", task=pending, poll_timeout_s=0.05)  # one submission left pending
    server.hold.set()
    monkeypatch.delenv("GOOGLE_API_KEY")  # a dry run needs no key, and says it is missing
    before = len(server.seen)
    result = gen_suite.runpytest_inprocess(*session_args("veo", server, tmp_path, "--dry-run", "--max-generations", "2"))
    assert result.ret == 0 and len(server.seen) == before and not (tmp_path / "res").exists()
    out = "\n".join(result.outlines)
    assert "tasks 5: 2 to generate, 1 to resume (submitted before: no new charge), 1 already generated, 1 left for a later run" in out
    assert "estimated cost: 2 x 3.20 USD = 6.40 USD" in out  # 0.40 USD/s x 8 s
    assert "key $GOOGLE_API_KEY NOT SET" in out and f"resume   {pending.id}: poll and download generation projects/" in out
    (line,) = [line for line in out.splitlines() if line.startswith(f"  generate {fixture_tasks()[2].id}: ")]
    sent = json.loads(line.split(": ", 1)[1])
    assert sent["model"] == "veo-3.0-generate-001" and sent["config"]["duration_seconds"] == 8
    assert sent["image"]["image_bytes"].startswith("<") and f"  done     {done.id}" in out


def test_max_generations_caps_new_submissions_and_leaves_the_rest_for_later(server, gen_suite, tmp_path):
    before = server.count("runway", "submit")
    result = gen_suite.runpytest_inprocess(*session_args("runway", server, tmp_path, "--max-generations", "2"))
    result.assert_outcomes(passed=2)
    assert server.count("runway", "submit") - before == 2
    assert "3 task(s) deselected by --max-generations 2: left for a later run" in "\n".join(result.outlines)
    result = gen_suite.runpytest_inprocess(*session_args("runway", server, tmp_path, "--max-generations", "2", "--resume"))
    result.assert_outcomes(passed=2, skipped=2)  # the finished two are reused, two more made
    assert server.count("runway", "submit") - before == 4


def test_a_generation_run_shows_status_lines_with_the_count_of_videos_made(server, gen_suite, tmp_path):
    server.fault("runway", "submit", 400)  # one of the three is refused
    result = gen_suite.runpytest_inprocess(*session_args("runway", server, tmp_path, "--limit", "3", "--concurrency", "1",
                                                         "--progress", "always", "--progress-interval", "0"))
    result.assert_outcomes(passed=2, failed=1)
    lines = [line for line in result.outlines if line.startswith("vlm-bench: ") and " items (" in line]
    assert [line.split(",")[0] for line in lines] == [f"vlm-bench: {n}/3 items ({100 * n / 3:.0f}%)" for n in (1, 2, 3)]
    assert "pass rate 66.7% so far" in lines[-1]  # videos made over tasks done


def test_a_resumed_run_on_xdist_workers_runs_the_failed_tasks_again(server, gen_suite, tmp_path):
    """The controller drops errored records from items.jsonl on --resume; the workers must
    not take those tasks as finished (their records would vanish)."""
    server.fault("runway", "submit", 400)  # the first task is refused, the second made
    result = gen_suite.runpytest_inprocess(*session_args("runway", server, tmp_path, "--limit", "2", "--concurrency", "1"))
    result.assert_outcomes(passed=1, failed=1)
    before = server.count("runway", "submit")
    result = gen_suite.runpytest_subprocess(*session_args("runway", server, tmp_path, "--limit", "2", "--resume", "-n", "2"))
    result.assert_outcomes(passed=1, skipped=1)  # the refused task made now, the finished one reused
    assert server.count("runway", "submit") - before == 1
    records = read_jsonl(tmp_path / "res" / "items.jsonl")
    assert len(records) == 2 and all(r["error"] is None for r in records)


# ---------------------------------------------------------------- in flight, rate limit, uploader, judge


def test_rate_limiter_spaces_requests_evenly_across_threads():
    now, slept = [100.0], []

    def sleep(s):
        slept.append(s)

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # one per 0.5 s
    for _ in range(4):
        limiter.acquire()
    assert slept == [0.5, 1.0, 1.5]
    now[0] = 110.0  # idle for a while: no burst credit beyond the next slot
    limiter.acquire()
    assert slept == [0.5, 1.0, 1.5]


def test_several_tasks_in_flight_within_the_providers_requests_per_minute(server, tmp_path):
    server.work_s = 0.25
    runner = runner_for("sora", server, tmp_path, requests_per_minute=1200, poll_interval_s=0.05)  # one per 50 ms
    runner.generator.concurrency = 3
    limiter, released = runner.generator._limiter, []
    acquire = limiter.acquire

    def timed_acquire():
        acquire()
        released.append(time.monotonic())

    limiter.acquire = timed_acquire
    tasks = fixture_tasks()
    start = len(server.seen)
    for i, task in enumerate(tasks):
        runner.prefetch(tasks[i + 1:i + 3])
        assert runner.run(task)[0].passed
    runner.close()
    sora = [s.at for s in server.seen[start:] if s.provider == "sora"]
    assert len(released) == len(sora) > 15  # every request to the provider went through the limiter
    released.sort()
    # released on slots 50 ms apart (a thread may wake late from its slot, never early): no burst, the rate holds
    assert all(released[j] - released[i] >= (j - i - 1) * 0.05 for i in range(len(released)) for j in range(i + 1, len(released)))
    assert max(sora) - min(sora) >= 0.05 * (len(sora) - 1) * 0.95  # and the provider saw that rate
    created = sorted(j.created for j in server.jobs.values() if j.provider == "sora")[-5:]
    assert created[2] - created[0] < server.work_s  # three submitted before the first finished


def test_s3_uploader_names_objects_by_content_and_presigns_a_url_that_works(server, tmp_path):
    from urllib.request import urlopen

    image = fixture_tasks()[0].first_frame
    uploader = S3Uploader.from_url("s3://frames/some/prefix/")
    url = uploader.upload(image)
    assert uploader.location(image).startswith("s3://frames/some/prefix/") and "X-Amz-Signature=" in url
    assert S3_SECRET not in url and urlopen(url).read() == image.read_bytes()
    assert uploader.upload(image).split("?")[0] == url.split("?")[0]  # same content, same object
    missing = S3Uploader("frames", client=None)
    real = importlib.util.find_spec
    try:
        importlib.util.find_spec = lambda name, *a: None if name == "boto3" else real(name, *a)
        with pytest.raises(Exception, match=r"needs boto3: pip install 'vlm-bench\[s3\]'"):
            missing.check()
    finally:
        importlib.util.find_spec = real


def test_api_videos_flow_into_the_judge_like_open_source_ones(server, tmp_path, capsys, monkeypatch):
    from vlm_bench.cli import main

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "conftest", sys.modules["conftest"])
    judge = tmp_path / "yes.yaml"
    judge.write_text("family: mock\ndefault_response: 'yes'\n")
    code = main(["generate", "--generator", str(fast_yaml(tmp_path, "sora")), "--base-url", server.base_url("sora"),
                 "--dataset", "vmevalkit_fixtures", "--outputs-dir", str(tmp_path / "exp"), "--judge", str(judge),
                 "--results-dir", str(tmp_path / "res"), "--", *QUIET, "-q"])
    assert code == 0, capsys.readouterr().out[-2000:]
    row = json.loads((tmp_path / "res" / "generation_table.json").read_text())["generators"]["openai-sora-2"]
    assert (row["tasks"], row["generated"], row["goal"]["scored"], row["goal"]["passed"]) == (5, 5, 5, 5)
    judged = read_jsonl(tmp_path / "res" / "judge" / "items.jsonl")
    mine = [r["meta"]["check"] for r in judged if r["meta"]["generator"] == "openai-sora-2"]
    assert sorted(mine) == ["goal"] * 5 + ["rules"] * 5  # the judge's question and the rule verdict per video
