"""Video generation: the generator catalog, tiny diffusers pipelines built locally and
loaded through from_pretrained, VMEvalKit's output tree (read back by the existing
vmevalkit_outputs grading), crash safety, the generator protocol API generators plug into,
and generate-then-judge with the tiny InternVL."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, REPO, read_jsonl
from generation_fakes import FakeAPIGenerator, api_config
from vlm_bench.config import ConfigError, build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.generation import tree
from vlm_bench.generation.base import GeneratorUnavailable, create_generator
from vlm_bench.generation.catalog import generator_catalog, load_generator_config, resolve_generator
from vlm_bench.generation.judge import write_judge_dataset
from vlm_bench.generation.run import GenerationRunner, check_video, tasks_from_samples

if importlib.util.find_spec("diffusers") is None:
    pytest.skip("needs the generation extra (diffusers)", allow_module_level=True)

QUIET = ("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning", "-W", "ignore::FutureWarning",
         "-W", "ignore::DeprecationWarning")
TASK_IDS = ["test/test_0000", "test/test_0001", "test/test_0002", "test/test_0003", "test/test_0004"]
GEN_TEST = (REPO / "evals" / "test_generation.py").read_text()
VMEVALKIT_OPEN_SOURCE = [  # VMEvalKit's MODEL_CATALOG, open-source families
    "ltx-video", "ltx-video-13b-distilled", "LTX-2", "hunyuan-video-i2v", "videocrafter2-512", "dynamicrafter-512",
    "dynamicrafter-256", "dynamicrafter-1024", "morphic-frames-to-video", "svd", "wan-2.1-i2v-480p",
    "wan-2.1-i2v-720p", "wan-2.2-i2v-a14b", "wan-2.2-ti2v-5b", "cogvideox-5b-i2v", "cogvideox1.5-5b-i2v",
    "sana-video-2b-480p", "sana",
]
REPOSITORY_ONLY = ["LTX-2", "videocrafter2-512", "dynamicrafter-256", "dynamicrafter-512", "dynamicrafter-1024",
                   "morphic-frames-to-video"]


@pytest.fixture(scope="module", autouse=True)
def pipelines_imported():
    """diffusers and its pipelines, imported before any pytester in-process run (those drop
    the modules first imported during them) and only when these tests run (collection of
    the suite stays free of the ~3 s import)."""
    from diffusers import LTXImageToVideoPipeline, StableVideoDiffusionPipeline, WanImageToVideoPipeline  # noqa: F401


def fixture_tasks(limit: int | None = None):
    run = build_run_config(model="mock", datasets=["vmevalkit_fixtures"], limit=limit)
    return tasks_from_samples(load_samples(run.datasets[0]), run.datasets)


def runner_for(name: str, outputs: Path, **overrides) -> GenerationRunner:
    cfg = resolve_generator(name)
    runner = GenerationRunner(cfg, cfg.settings(overrides, cuda=False), outputs)
    runner.load()
    return runner


@pytest.fixture
def cli(monkeypatch):
    """``vlm-bench`` in this process: its pytest sessions import the repository's root
    conftest.py as ``conftest``; put this suite's back afterwards."""
    from vlm_bench.cli import main

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "conftest", sys.modules["conftest"])
    return main


@pytest.fixture
def gen_suite(pytester):
    pytester.makepyfile(test_gen=GEN_TEST)
    return pytester


def gen_run(suite, *args):
    return suite.runpytest_inprocess(*QUIET, "--dataset", "vmevalkit_fixtures", *args)


# ---------------------------------------------------------------- catalog


def test_catalog_covers_vmevalkit_open_source_entries_and_their_pipelines_exist():
    import diffusers

    catalog = generator_catalog()
    assert set(VMEVALKIT_OPEN_SOURCE) <= set(catalog)
    for name in VMEVALKIT_OPEN_SOURCE:
        cfg = load_generator_config(catalog[name], name)
        assert cfg.kind == "open_source" and cfg.name == name
        if name in REPOSITORY_ONLY:
            assert cfg.unavailable and not cfg.engine
            with pytest.raises(GeneratorUnavailable, match=rf"^generator '{name}' is not available in this version: needs "):
                create_generator(cfg, cfg.settings())
        else:  # the installed diffusers has the pipeline each entry names
            assert cfg.model and getattr(diffusers, cfg.pipeline, None) is not None, name
            cfg.settings()  # the defaults pass the entry's own size and frame rules


def test_unknown_keys_are_errors_naming_them(tmp_path):
    base = "family: X\nkind: open_source\nengine: a.b:C\n"
    for extra, named in [("pipline: Foo\n", "'pipline' (did you mean 'pipeline'?)"),
                         ("defaults: {frames: 3}\n", "defaults: unknown key 'frames'"),
                         ("needs: {gpu: 3}\n", "needs: unknown key 'gpu'"),
                         ("defaults: {seed: 3}\n", "the seed comes from --seed"),
                         ("kind: cloud\n", "kind must be one of open_source, api")]:
        path = tmp_path / "g.yaml"
        path.write_text(base + extra if not extra.startswith("kind") else "family: X\nengine: a.b:C\n" + extra)
        with pytest.raises(ConfigError, match=r"g\.yaml") as err:
            load_generator_config(path)
        assert named in str(err.value)
    with pytest.raises(ConfigError, match="did you mean"):
        resolve_generator("wan-2.1-i2v-48p")
    assert resolve_generator("WAN_2.2_TI2V_5B").name == "wan-2.2-ti2v-5b"  # case and -/_ folded


def test_settings_the_model_cannot_take_fail_before_any_task():
    ltx = resolve_generator("ltx-video")
    with pytest.raises(ConfigError, match=r"num_frames must be k\*8\+1 \(e\.g\. 97\), got 96"):
        ltx.settings({"num_frames": 96})
    with pytest.raises(ConfigError, match="height must be a multiple of 32, got 500"):
        ltx.settings({"height": 500})
    assert ltx.settings({"num_frames": 97, "seed": 3}).duration == round(97 / 24, 3)
    assert ltx.settings(cuda=False).dtype == "float32" and ltx.settings(cuda=True).dtype == "bfloat16"
    assert ltx.settings({"dtype": "bfloat16"}, cuda=False).dtype == "bfloat16"  # the command line wins


def test_generators_command_lists_what_each_needs(capsys, cli):
    assert cli(["generators"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "pip install 'vlm-bench[generation]'" in rows["svd"] and "GPU 20+ GB" in rows["svd"]
    assert "Wan-AI/Wan2.2-TI2V-5B-Diffusers / WanImageToVideoPipeline" in rows["wan-2.2-ti2v-5b"]
    assert "not available in this version: needs the DynamiCrafter repository" in rows["dynamicrafter-512"]


# ---------------------------------------------------------------- tiny pipelines


@pytest.mark.parametrize("name", ["tiny-svd", "tiny-ltx-video", "tiny-wan"])
def test_tiny_pipelines_make_checked_videos_through_from_pretrained(name, tmp_path):
    runner = runner_for(name, tmp_path)
    gen = runner.generator
    assert type(gen.pipe).__name__ == resolve_generator(name).pipeline
    assert Path(gen.source, "model_index.json").is_file()  # a saved pipeline folder, as from the hub
    task = fixture_tasks()[2]  # a 594x397 RGBA first frame
    out = tmp_path / "v.mp4"
    result = gen.generate(task.first_frame, task.prompt, 1.0, out)
    assert result.success, result.error
    s = runner.settings
    checked = check_video(out, runner.expected(result))
    # Wan keeps the frame's aspect ratio within height x width pixels (multiples of 16)
    size = (16, 32) if name == "tiny-wan" else (s.height, s.width)
    assert (checked["num_frames"], checked["height"], checked["width"]) == (s.num_frames, *size)
    if name != "tiny-svd":  # text-conditioned: the prompt changes the video; SVD takes no text
        other = tmp_path / "other.mp4"
        assert gen.generate(task.first_frame, "A different task.", 1.0, other).success
        assert other.read_bytes() != out.read_bytes()
        assert "prompt" in gen.call_kwargs("x", None, 32, 32)
    else:
        assert "prompt" not in gen.call_kwargs("x", None, 32, 32)


def test_the_13b_distilled_entry_runs_through_ltx_condition_pipeline(tmp_path):
    """The 0.9.8 entry's pipeline and its call arguments, on the tiny LTX weights."""
    from vlm_bench.generation.tiny import LOCAL_BUILDS

    entry = yaml.safe_load((REPO / "configs" / "generators" / "ltx-video-13b-distilled.yaml").read_text())
    entry.update(model=str(LOCAL_BUILDS["tiny-ltx-video"]()), defaults={"num_frames": 9, "fps": 8, "height": 32, "width": 32})
    entry["call_args"] = dict(entry["call_args"], max_sequence_length=64)
    path = tmp_path / "ltx13b-tiny.yaml"
    path.write_text(yaml.safe_dump(entry))
    runner = runner_for(str(path), tmp_path / "out")
    assert type(runner.generator.pipe).__name__ == "LTXConditionPipeline"
    record, _ = runner.run(fixture_tasks()[0])
    assert record.passed, record.error
    assert record.video["num_frames"] == 9


def test_memory_options_reach_the_pipeline_or_say_why_not(tmp_path):
    runner = runner_for("tiny-ltx-video", tmp_path, vae_tiling=True, vae_slicing=True)
    vae = runner.generator.pipe.vae
    assert vae.use_tiling and vae.use_slicing
    assert runner.run(fixture_tasks()[3])[0].passed
    cfg = resolve_generator("tiny-svd")
    with pytest.raises(GeneratorUnavailable, match=r"its VAE \(AutoencoderKLTemporalDecoder\) has no enable_tiling"):
        create_generator(cfg, cfg.settings({"vae_tiling": True})).load()
    with pytest.raises(GeneratorUnavailable, match="--cpu-offload model needs a CUDA GPU"):
        create_generator(cfg, cfg.settings({"cpu_offload": "model"})).load()


@pytest.mark.gpu
@pytest.mark.parametrize("offload", ["none", "model", "sequential"])
def test_tiny_pipeline_on_a_gpu(offload, tmp_path):
    """bf16 on the GPU (the catalog's default dtype there), with each CPU-offload mode."""
    cfg = resolve_generator("tiny-ltx-video")
    runner = GenerationRunner(cfg, cfg.settings({"dtype": "bfloat16", "cpu_offload": offload}, cuda=True), tmp_path)
    runner.load()
    assert runner.generator.device == "cuda"
    record, _ = runner.run(fixture_tasks()[0])
    assert record.passed, record.error
    assert record.meta["result_metadata"]["device"] == "cuda"


def test_same_seed_same_bytes_other_seed_other_video(tmp_path):
    task = fixture_tasks()[4]
    videos = []
    for outputs, seed in (("a", 0), ("b", 0), ("c", 1)):
        runner = runner_for("tiny-ltx-video", tmp_path / outputs, seed=seed)
        record, _ = runner.run(task)
        videos.append(Path(record.prediction).read_bytes())
    assert videos[0] == videos[1]
    assert videos[0] != videos[2]


# ---------------------------------------------------------------- the tree, skipping, override


def test_session_writes_vmevalkit_tree_that_grading_reads(gen_suite, tmp_path):
    out, res = tmp_path / "outputs" / "exp1", tmp_path / "res"
    result = gen_run(gen_suite, "--generator", "tiny-ltx-video", "--outputs-dir", str(out), "--results-dir", str(res))
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*vlm-bench generation: tiny-ltx-video*", "tasks 5: generated 5, already there 0, failed 0",
                                 "success rate 100.0%*", "generator loads per process: 1"])
    for task_id in ("test_0000", "test_0004"):
        (run_dir,) = [p for p in (out / "tiny-ltx-video" / "test_task" / task_id).iterdir() if not p.name.startswith(".")]
        assert run_dir.name.startswith(f"tiny-ltx-video_{task_id}_")
        meta = json.loads((run_dir / "metadata.json").read_text())
        assert list(meta) == ["inference", "input", "output", "paths", "question_data", "generation", "rules"]
        assert meta["rules"]["judgeable"] is True and 0.0 <= meta["rules"]["overall"] <= 1.0
        assert list(meta["inference"]) == ["run_id", "model", "timestamp", "status", "duration_seconds", "error"]
        assert list(meta["input"]) == ["prompt", "image_path", "question_id", "task_category"]
        assert list(meta["output"]) == ["video_path", "generation_id", "video_url"]
        assert list(meta["paths"]) == ["inference_dir", "video_dir", "question_dir"]
        assert meta["inference"]["status"] == "success" and meta["inference"]["run_id"] == run_dir.name
        assert meta["output"]["video_path"] == str(run_dir / "video" / "video.mp4")
        assert meta["input"]["prompt"] == (FIXTURES / "vmevalkit" / "test_task" / task_id / "prompt.txt").read_text().strip()
        assert meta["question_data"] == {"id": task_id, "domain": "test"}
        copied = sorted(p.name for p in (run_dir / "question").iterdir())
        expected = ["final_frame.png", "first_frame.png", "prompt.txt"] + (["ground_truth.mp4"] if task_id == "test_0004" else [])
        assert copied == sorted(expected)
    records = read_jsonl(res / "items.jsonl")
    assert sorted(r["id"] for r in records) == TASK_IDS and all(r["passed"] and r["video"]["num_frames"] == 9 for r in records)
    assert {r["backend"] for r in records} == {"diffusers"}
    summary = json.loads((res / "summary.json").read_text())
    assert summary["generation"]["success_rate"] == 1.0 and summary["pass_rate"] == 1.0
    # the existing grading dataset reads the tree as it is
    dataset = write_judge_dataset(tmp_path / "judge.yaml", out, FIXTURES / "vmevalkit")
    assert yaml.safe_load(dataset.read_text())["format"] == "vmevalkit-outputs"
    run = build_run_config(model="mock", datasets=[str(dataset)])
    every = [s for s in load_samples(run.datasets[0]) if s.meta["generator"] == "tiny-ltx-video"]
    assert sorted(s.meta["check"] for s in every) == ["goal"] * 5 + ["rules"] * 5  # a judge question and a rule verdict per video
    samples = [s for s in every if s.meta["check"] == "goal"]
    assert sorted(s.meta["task_id"] for s in samples) == [t.split("/")[1] for t in TASK_IDS]
    assert all(Path(s.video).name == "video.mp4" and s.meta["run_metadata"]["inference"]["status"] == "success" for s in samples)

    again = gen_run(gen_suite, "--generator", "tiny-ltx-video", "--outputs-dir", str(out), "--results-dir", str(tmp_path / "r2"))
    again.assert_outcomes(skipped=5)  # finished tasks are found, not made again
    again.stdout.fnmatch_lines(["tasks 5: generated 0, already there 5, failed 0"])
    redo = gen_run(gen_suite, "--generator", "tiny-ltx-video", "--outputs-dir", str(out), "--results-dir", str(tmp_path / "r3"),
                   "--override", "-k", "test_0001")
    redo.assert_outcomes(passed=1)
    runs = tree.runs(out / "tiny-ltx-video" / "test_task" / "test_0001")
    assert len(runs) == 2 and runs[0].video.read_bytes() == runs[1].video.read_bytes()  # a new run, same bytes


def test_generation_and_video_qa_never_share_a_session(gen_suite, tmp_path):
    gen_suite.makepyfile(test_qa=(REPO / "evals" / "test_video_qa.py").read_text())
    result = gen_run(gen_suite, "--generator", "tiny-svd", "--outputs-dir", str(tmp_path / "o"), "--results-dir",
                     str(tmp_path / "r"), "-k", "test_0002")
    result.assert_outcomes(passed=1, deselected=5)  # -k leaves 4 tasks, and the video-QA test goes
    result.stdout.fnmatch_lines(["vlm-bench: 1 of the deselected is video QA, which does not run with --generator"])
    plain = gen_suite.runpytest_inprocess(*QUIET, "--dataset", "smoke", "--results-dir", str(tmp_path / "qa"))
    plain.assert_outcomes(passed=9, deselected=1)  # test_generation without --generator


# ---------------------------------------------------------------- failures


def test_a_video_that_fails_its_check_is_a_failed_run_without_video(gen_suite, tmp_path):
    gen_yaml = tmp_path / "wrong.yaml"
    gen_yaml.write_text("family: test\nkind: open_source\nengine: generation_fakes:WrongLengthGenerator\n"
                        "defaults: {num_frames: 5, height: 32, width: 32}\n")
    out = tmp_path / "o"
    result = gen_run(gen_suite, "--generator", str(gen_yaml), "--outputs-dir", str(out), "--results-dir", str(tmp_path / "r"),
                     "-k", "test_0003")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*generated video rejected: the video has num_frames 4, asked for 5*"])
    (run,) = tree.runs(out / "wrong" / "test_task" / "test_0003")
    assert run.status == "failed" and "num_frames 4" in run.metadata["inference"]["error"]
    assert run.video is None and run.metadata["output"]["video_path"] is None  # readers never take it as generated
    assert not list((out / "wrong" / "test_task" / "test_0003").glob(".*.partial"))
    assert tree.tree_stats(out)["wrong"] == {"tasks": 1, "generated": 0, "success_rate": 0.0, "seconds_per_video": None}


def test_a_full_disk_fails_the_task_not_the_session(tmp_path, monkeypatch):
    import errno

    def full(self, task):
        raise OSError(errno.ENOSPC, "No space left on device")

    cfg = api_config()
    runner = GenerationRunner(cfg, cfg.settings(), tmp_path, generator=FakeAPIGenerator(cfg, cfg.settings()))
    tasks = fixture_tasks()
    with monkeypatch.context() as m:
        m.setattr(tree.Staging, "copy_question", full)
        record, reused = runner.run(tasks[0])
    assert not record.passed and not reused and "No space left on device" in record.error
    assert str(tmp_path) in record.error
    assert runner.run(tasks[0])[0].passed  # space again: the task is made, its leftovers cleared
    assert not tree.interrupted_runs(tree.task_output_dir(tmp_path, "fake-api", tasks[0]))


def test_unavailable_generator_stops_the_session_with_what_it_needs(gen_suite, tmp_path):
    result = gen_run(gen_suite, "--generator", "dynamicrafter-512", "--outputs-dir", str(tmp_path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "generator 'dynamicrafter-512' is not available in this version: needs the DynamiCrafter repository" in err
    assert "Traceback" not in err + result.stdout.str()


def test_missing_weights_fail_fast(gen_suite, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    started = time.perf_counter()
    result = gen_run(gen_suite, "--generator", "wan-2.2-ti2v-5b", "--outputs-dir", str(tmp_path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "model not available: Wan-AI/Wan2.2-TI2V-5B-Diffusers" in result.stderr.str()
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "wan-2.2-ti2v-5b").exists()


def test_missing_diffusers_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a))
    cfg = resolve_generator("svd")
    with pytest.raises(GeneratorUnavailable, match=r"generator 'svd' needs diffusers: pip install 'vlm-bench\[generation\]'"):
        create_generator(cfg, cfg.settings()).check()


# ---------------------------------------------------------------- the protocol API generators follow


def test_a_killed_api_run_resumes_polling_its_stored_job_instead_of_paying_twice(tmp_path):
    cfg = api_config()
    task = fixture_tasks()[1]
    dying = FakeAPIGenerator(cfg, cfg.settings(), die_after_submit=True)
    with pytest.raises(SystemExit):
        GenerationRunner(cfg, cfg.settings(), tmp_path, generator=dying).run(task)
    task_out = tree.task_output_dir(tmp_path, "fake-api", task)
    (pending,) = tree.interrupted_runs(task_out)
    assert pending.metadata["output"]["generation_id"] == dying.submitted[0]  # stored before polling
    assert pending.metadata["inference"]["status"] == "running" and tree.runs(task_out) == []
    fresh = FakeAPIGenerator(cfg, cfg.settings())
    record, reused = GenerationRunner(cfg, cfg.settings(), tmp_path, generator=fresh).run(task)
    assert record.passed and not reused
    assert fresh.submitted == [] and fresh.resumed == dying.submitted  # polled, not submitted again
    (run,) = tree.runs(task_out)
    assert run.dir.name == pending.dir.name[1:-len(".partial")]
    assert run.metadata["output"]["generation_id"] == dying.submitted[0]
    assert run.metadata["output"]["video_url"].startswith("https://videos.invalid/job-0")
    assert run.metadata["inference"]["timestamp"] == pending.metadata["inference"]["timestamp"]
    assert not tree.interrupted_runs(task_out)


def test_api_generators_keep_several_tasks_in_flight(tmp_path):
    cfg = api_config(concurrency=3)
    gen = FakeAPIGenerator(cfg, cfg.settings(), poll_seconds=0.3)
    runner = GenerationRunner(cfg, cfg.settings(), tmp_path, generator=gen)
    tasks = fixture_tasks()
    records = []
    for i, task in enumerate(tasks):  # what the plugin does for each test
        runner.prefetch(tasks[i + 1: i + 1 + cfg.concurrency - 1])
        records.append(runner.run(task)[0])
    runner.close()
    assert [r.id for r in records] == TASK_IDS and all(r.passed for r in records)
    assert gen.max_active == 3 and len(gen.submitted) == 5  # three at once, each task once


def test_the_session_keeps_concurrency_tasks_in_flight(gen_suite, tmp_path):
    fake = tmp_path / "fake-api.yaml"
    fake.write_text("family: Fake\nkind: api\nengine: generation_fakes:FakeAPIGenerator\nconcurrency: 2\n")
    result = gen_run(gen_suite, "--generator", str(fake), "--outputs-dir", str(tmp_path / "o"),
                     "--results-dir", str(tmp_path / "r"), "--concurrency", "3")
    result.assert_outcomes(passed=5)
    records = read_jsonl(tmp_path / "r" / "items.jsonl")
    assert [r["id"] for r in records] == TASK_IDS  # records in task order, each once
    assert max(r["meta"]["result_metadata"]["in_flight"] for r in records) == 3  # --concurrency over the YAML's 2


def test_two_processes_on_one_tree_make_each_video_once(tmp_path):
    """Two runners (as two processes would) on the same tasks: the task lock makes the
    second wait and then find the first one's video."""
    cfg = api_config()
    gens = [FakeAPIGenerator(cfg, cfg.settings(), poll_seconds=0.1) for _ in range(2)]
    runners = [GenerationRunner(cfg, cfg.settings(), tmp_path, generator=g) for g in gens]
    tasks = fixture_tasks()
    results: list = []
    threads = [threading.Thread(target=lambda r=r: results.extend(r.run(t) for t in tasks)) for r in runners]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(gens[0].submitted) + len(gens[1].submitted) == 5
    assert sum(1 for _, reused in results if reused) == 5
    assert all(len(tree.runs(tree.task_output_dir(tmp_path, "fake-api", t))) == 1 for t in tasks)


# ---------------------------------------------------------------- real processes


def test_kill_9_mid_run_then_generate_and_judge_in_one_command(tmp_path, capsys, cli):
    """A real generation process (tiny LTX-Video) killed with SIGKILL after its first video;
    then the one documented command resumes it (finished tasks kept, the rest made) and
    grades the fresh videos with the tiny InternVL through the vmevalkit_outputs dataset."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = tmp_path / "outputs" / "exp1"
    common = ["--generator", "tiny-ltx-video", "--dataset", "vmevalkit_fixtures", "--outputs-dir", str(out)]
    slow = [sys.executable, "-m", "pytest", str(REPO / "evals" / "test_generation.py"), *QUIET, "-q", *common,
            "--steps", "40", "--results-dir", str(tmp_path / "killed")]
    proc = subprocess.Popen(slow, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gen_root = out / "tiny-ltx-video" / "test_task"
    deadline = time.time() + 180
    while time.time() < deadline and not any(tree.finished_run(p) for p in gen_root.glob("*") if p.is_dir()):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = {p.name: tree.finished_run(p).dir.name for p in gen_root.glob("*") if tree.finished_run(p)}
    assert 1 <= len(done_before) < 5
    capsys.readouterr()

    code = cli(["generate", *common, "--steps", "40", "--judge", "tiny-internvl3", "--results-dir", str(tmp_path / "res"),
                 "--", *QUIET, "-q"])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    after = {p.name: tree.finished_run(p).dir.name for p in gen_root.glob("*")}
    assert sorted(after) == [t.split("/")[1] for t in TASK_IDS]
    assert all(after[k] == v for k, v in done_before.items())  # finished videos kept, not made again
    assert not list(gen_root.glob("*/.*.partial"))  # the killed run's leftovers cleared
    records = read_jsonl(tmp_path / "res" / "items.jsonl")
    assert sum(r["meta"]["reused"] for r in records) == len(done_before) and all(r["passed"] for r in records)
    judged = read_jsonl(tmp_path / "res" / "judge" / "items.jsonl")
    generated = [r for r in judged if r["meta"]["generator"] == "tiny-ltx-video" and r["meta"]["check"] != "rules"]
    assert sorted(r["meta"]["task_id"] for r in generated) == sorted(after)  # one goal check per fresh video
    assert all(r["model"] == "tiny_internvl3" and r["backend"] == "native" and r["error"] is None for r in judged)
    assert {r["meta"]["generator"] for r in judged} == {"tiny-ltx-video", "control:ground_truth", "control:static"}
    table = json.loads((tmp_path / "res" / "generation_table.json").read_text())
    row = table["generators"]["tiny-ltx-video"]
    assert (row["tasks"], row["generated"], row["success_rate"]) == (5, 5, 1.0) and row["seconds_per_video"] > 0
    assert row["goal"]["scored"] == 5 and row["qa"] is None
    assert table["judge_calibration"]["ground_truth"]["total"] == 2 and table["judge_calibration"]["static_first_frame"]["total"] == 5
    assert "video generation, judged by tiny-internvl3" in printed
    assert "judge calibration: passes the ground-truth videos' checks" in printed


def test_generate_then_judge_table_counts_what_the_judge_says(tmp_path, capsys, cli):
    """A judge that says yes to everything: every goal check of the generator passes, it
    also says the static first-frame control reaches the goal, so the table flags the
    generator as indistinguishable from a static video."""
    judge = tmp_path / "yes.yaml"
    judge.write_text("family: mock\ndefault_response: 'yes'\n")
    out = tmp_path / "exp"
    code = cli(["generate", "--generator", "tiny-svd", "--dataset", "vmevalkit_fixtures", "--outputs-dir", str(out),
                 "--judge", str(judge), "--results-dir", str(tmp_path / "res"), "--", *QUIET, "-q"])
    assert code == 0  # the judge's failed items are results, not a failed command
    table = json.loads((tmp_path / "res" / "generation_table.json").read_text())
    row = table["generators"]["tiny-svd"]
    assert (row["tasks"], row["generated"], row["goal"]["passed"], row["goal"]["scored"]) == (5, 5, 5, 5)
    cal = table["judge_calibration"]
    assert (cal["ground_truth"]["passed"], cal["static_first_frame"]["passed"]) == (2, 0)
    assert cal["like_static_video"] == {"tiny-svd": True}
    printed = capsys.readouterr().out.split("video generation, judged by")[-1]
    (line,) = [line for line in printed.splitlines() if line.startswith("tiny-svd ")]
    assert "100% (5/5)" in line and line.endswith("like a static video")


def test_xdist_workers_each_load_once_on_their_own_gpu_slice(gen_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(REPO / "tests")]))
    fake = tmp_path / "fake-api.yaml"  # no torch to import: the workers start fast
    fake.write_text("family: Fake\nkind: api\nengine: generation_fakes:FakeAPIGenerator\n")
    result = gen_suite.runpytest_subprocess(*QUIET, "-n", "2", "--gpus-per-worker", "1", "--dataset", "vmevalkit_fixtures",
                                            "--generator", str(fake), "--outputs-dir", str(tmp_path / "o"),
                                            "--results-dir", str(tmp_path / "r"))
    result.assert_outcomes(passed=5)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert {w: (i["gpus"], i["generator_loads"]) for w, i in summary["workers"].items()} == {"gw0": ("4", 1), "gw1": ("5", 1)}
    assert sorted(r["id"] for r in read_jsonl(tmp_path / "r" / "items.jsonl")) == TASK_IDS  # each task once
