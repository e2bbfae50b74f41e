"""Command-line options, defined once for the pytest plugin and the ``vlm-bench`` CLI."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import math

from vlm_bench.types import BACKENDS, FRAME_STRATEGIES, MAX_FRAMES, QUANTIZATIONS, SEED_RANGE


def _checked(cast: Callable[[str], Any], expected: str, ok: Callable[[Any], bool]) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses with ``cast`` and rejects values failing ``ok``;
    argparse (and pytest) turn the error into a usage message."""

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


seed = _checked(int, f"a whole number from {SEED_RANGE[0]} to {SEED_RANGE[1]}", lambda v: SEED_RANGE[0] <= v <= SEED_RANGE[1])
positive_int = _checked(int, "a whole number >= 1", lambda v: v >= 1)
frame_count = _checked(int, f"a whole number from 1 to {MAX_FRAMES}", lambda v: 1 <= v <= MAX_FRAMES)
non_negative_int = _checked(int, "a whole number >= 0", lambda v: v >= 0)
positive_float = _checked(float, "a finite number > 0", lambda v: math.isfinite(v) and v > 0)
non_negative_float = _checked(float, "a finite number >= 0", lambda v: math.isfinite(v) and v >= 0)
unit_rate = _checked(float, "a rate between 0 and 1 (0.8 means 80%)", lambda v: 0.0 <= v <= 1.0)


def comma_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return values


def shard_spec(text: str) -> tuple[int, int]:
    """``I/N``: shard I of N, counted from 0 (as Slurm's ``--array=0-7`` numbers its tasks)."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (shard I of N, counted from 0) such as 0/4, got {text!r}") from None
    if not sep or n < 1:
        raise argparse.ArgumentTypeError(f"expected I/N with N >= 1 shards, got {text!r}")
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(
            f"shard index {i} is out of range for {n} shards: shards are counted from 0, "
            f"so I runs from 0 to {n - 1} ({', '.join(f'{k}/{n}' for k in range(min(n, 3)))}{', ...' if n > 3 else ''})"
        )
    return i, n


@dataclass(frozen=True)
class Option:
    flag: str
    dest: str
    help: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


OPTIONS: tuple[Option, ...] = (
    Option("--backend", "vlm_backend", "engine: native (transformers), vlmeval (VLMEvalKit), openai (a model behind an OpenAI-compatible server: lmdeploy, vLLM, SGLang, transformers serve) or mock; default: the model YAML's engine", {"choices": BACKENDS}),
    Option("--base-url", "vlm_base_url", "--backend openai: the server's OpenAI API root, e.g. http://127.0.0.1:23333/v1 (default: the model YAML's server.base_url); with an API --generator: the provider API's base URL (default: its SDK's)"),
    Option("--api-key-env", "vlm_api_key_env", "--backend openai: the NAME of the environment variable holding the server's key (never the key itself); default: no key. With an API --generator: the variable holding the provider's key (default: the catalog's)"),
    Option("--served-model", "vlm_served_model", "--backend openai: the model id on the server (default: the model YAML's server.model, else the first of GET /v1/models)"),
    Option("--concurrency", "vlm_concurrency", "--backend openai: requests in flight (the server batches them); default: the model YAML's server.concurrency, else 1. With --generator: tasks in flight (API generators)", {"type": positive_int}),
    Option("--adaptive-concurrency", "vlm_adaptive_concurrency", "--backend openai: find the requests in flight while the run goes, from 1 up to --concurrency: grow while requests succeed and latency holds, shrink on 429, 5xx and timeouts; the manifest records the peak and final number (default: --concurrency, fixed)", {"action": "store_true", "default": None}),
    Option("--request-timeout", "vlm_request_timeout", "--backend openai: seconds one request may take, start to last byte (default: the model YAML's server.timeout_s, else 600)", {"type": positive_float}),
    Option("--max-retry-wait", "vlm_max_retry_wait", "--backend openai: the longest wait between two attempts of a request, whatever the server's Retry-After asks (default 60)", {"type": non_negative_float}),
    Option("--item-timeout", "vlm_item_timeout", "seconds one item may take, frames to record; past it the item gets an error record and the run goes on (default: no limit; for served runs, a few times the slowest expected answer, e.g. 300)", {"type": positive_float}),
    Option("--context-policy", "vlm_context_policy", "a prompt whose frames would overflow the engine's context, known before the call: fewer-frames (the default: the most that fit, chosen by the same sampler rule), fewer-tiles (tiles per frame first, then frames) or refuse (the item's record is an error); the record says what was cut and why", {"choices": ("fewer-frames", "fewer-tiles", "refuse")}),
    Option("--max-model-len", "vlm_max_model_len", "the engine's context in tokens, prompt and answer together, where the engine does not say it (a server other than vLLM, which reports max_model_len in GET /models); the lower of this and the engine's own is used", {"type": positive_int}),
    Option("--max-response-kb", "vlm_max_response_kb", "a record keeps at most this many KB of characters of a response; a longer one is cut, marked truncated and warned about (default 64)", {"type": positive_float}),
    Option("--judge-model", "vlm_judge_model", "a judge model reads the answers the extraction rules cannot (multiple choice, yes/no, numbers): a model id on --judge-base-url, or a catalog name / model YAML run here; judged records say so (docs/scoring.md)"),
    Option("--judge-base-url", "vlm_judge_base_url", "the judge's OpenAI-compatible API root (vLLM, lmdeploy, an API); without it the judge runs here"),
    Option("--judge-api-key-env", "vlm_judge_api_key_env", "the NAME of the environment variable holding the judge endpoint's key"),
    Option("--judge-cache", "vlm_judge_cache", "where judge replies are cached, by judge and prompt (default $VLM_BENCH_CACHE/judge)"),
    Option("--model", "vlm_model", "catalog name (see configs/models, e.g. internvl3_38b) or a model YAML path; default: mock"),
    Option("--dataset", "vlm_datasets", "JSONL file, dataset YAML or catalog name; repeat for several", {"action": "append"}),
    Option("--dataset-root", "vlm_dataset_roots", "data folder of a benchmark-format dataset (Video-MME, MVBench, NExT-QA, VMEvalKit); NAME=PATH for one of several", {"action": "append"}),
    Option("--questions-root", "vlm_questions_root", "VMEvalKit outputs (vmevalkit_outputs): the questions tree the videos were made from (VMEvalKit's data/questions; default: ../../questions from the outputs folder, else each run's own question/ copy)"),
    Option("--score", "vlm_score", "generated videos: rules (rule scores: final-frame accuracy, first-frame consistency, smoothness, quality; no model), judge (the judge model's checks) or both (grading's default); a generation run computes rule scores unless none (docs/grading.md)", {"choices": ("rules", "judge", "both", "none")}),
    Option("--judge-protocol", "vlm_judge_protocol", "generated videos: how the judge model grades: question (vlm-bench's goal question and the task's questions; default) or vmevalkit (VMEvalKit's own: first, expected final and last frame, a 1-5 rating, 4-5 a pass)", {"choices": ("question", "vmevalkit")}),
    Option("--preset", "vlm_preset", "send exactly what a reference sent, by name: for video QA internvl, vlmevalkit or lmms-eval (prompts, frame rules and counts, labels; configs/presets), for a generator vmevalkit or model-card (its call arguments); records name it and its source (docs/datasets.md#presets)"),
    Option("--limit", "vlm_limit", "keep N items per dataset, spread evenly over it (deterministic)", {"type": positive_int}),
    Option("--categories", "vlm_categories", "keep items in these categories (comma-separated; a value of any dimension, or dim=value)", {"type": comma_list}),
    Option("--missing-media", "vlm_missing_media", "items whose video the download lacks: report them (counted per task, left out of the pass rate) or fail at collection", {"choices": ("report", "fail"), "default": "report"}),
    Option("--all-runs", "vlm_all_runs", "VMEvalKit outputs: grade every run of a task, not only the latest", {"action": "store_true"}),
    Option("--batch-size", "vlm_batch_size", "native: items generated together (left-padded, grouped by shape); default: the model YAML's batch_size, else 1", {"type": positive_int}),
    Option("--attn", "vlm_attn", "native: the attention implementation (sdpa, eager, or flash_attention_2 where flash-attn is installed); default: the model YAML's, else sdpa", {"choices": ("sdpa", "eager", "flash_attention_2", "flash_attention_3", "flex_attention")}),
    Option("--compile", "vlm_compile", "native: a static KV cache and a compiled decoding step (torch.compile; CUDA graphs on a GPU); the first items pay for compiling", {"action": "store_true", "default": None}),
    Option("--quant", "vlm_quant", "bitsandbytes quantization for the native backend; default: the model YAML's", {"choices": QUANTIZATIONS}),
    Option("--max-frames", "vlm_max_frames", "frames per video (overrides every config)", {"type": frame_count}),
    Option("--frame-strategy", "vlm_frame_strategy", "how frames are chosen", {"choices": FRAME_STRATEGIES}),
    Option("--fps", "vlm_fps", "frames per second of video for --frame-strategy=fps", {"type": positive_float}),
    Option("--stride", "vlm_stride", "frame spacing for --frame-strategy=stride", {"type": positive_int}),
    Option("--seed", "vlm_seed", "random seed, 0 to 2**32-1 (default 0; a generator's --preset may name its reference's)", {"type": seed}),
    Option("--max-new-tokens", "vlm_max_new_tokens", "generation limit (overrides every config)", {"type": positive_int}),
    Option("--results-dir", "vlm_results_dir", "where items.jsonl and summary.json go; default vlm-results/<time>-<model>-<backend>"),
    Option("--overwrite", "vlm_overwrite", "replace results already in --results-dir", {"action": "store_true"}),
    Option("--resume", "vlm_resume", "continue the run in --results-dir: reuse its finished items (same settings required), rerun the rest", {"action": "store_true"}),
    Option("--shard", "vlm_shard", "run shard I of N (I/N, I counted from 0: 0/4 .. 3/4) of the items, chosen by a hash of each item id", {"type": shard_spec}),
    Option("--gpus-per-worker", "vlm_gpus_per_worker", "with pytest-xdist -n: GPUs each worker gets (its own slice of CUDA_VISIBLE_DEVICES)", {"type": positive_int}),
    Option("--frame-cache", "vlm_frame_cache", "cache decoded frames (resized, content-keyed) in this folder, shared across runs and workers"),
    Option("--frame-cache-gb", "vlm_frame_cache_gb", "size bound of the frame cache in GB (default 20; least recently used go first)", {"type": positive_float}),
    Option("--item-frames-gb", "vlm_item_frames_gb", "decoded frames one item may take, in GB; an item needing more fails with advice, and fewer items are prefetched when they are large (default: a quarter of this machine's memory, at most 16)", {"type": positive_float}),
    Option("--frame-memory-gb", "vlm_frame_memory_gb", "decoded frames kept in memory, so questions about one video (same frame settings) share one decode (default 2; 0 turns it off)", {"type": non_negative_float}),
    Option("--prefetch", "vlm_prefetch", "decode the frames of this many upcoming items in a background thread (default 2; 0 turns it off)", {"type": non_negative_int, "default": 2}),
    Option("--progress", "vlm_progress", "progress (items done, rate, ETA, pass rate so far): auto shows a bar on a terminal (status lines with -v), nothing with -q, in CI or in a log; always also prints status lines into a log", {"choices": ("auto", "always", "never"), "default": "auto"}),
    Option("--progress-interval", "vlm_progress_interval", "seconds between status lines, where no bar is drawn (default 30)", {"type": non_negative_float, "default": 30.0}),
    Option("--min-pass-rate", "vlm_min_pass_rate", "fail the session when the overall pass rate is below this (0..1); when met, failed items alone do not fail it", {"type": unit_rate}),
)


# What each option's value is, as help shows it (argparse would show the dest: VLM_DATASETS).
METAVARS = {
    "--base-url": "URL", "--api-key-env": "NAME", "--served-model": "ID", "--concurrency": "N",
    "--request-timeout": "SECONDS", "--max-retry-wait": "SECONDS", "--item-timeout": "SECONDS",
    "--max-response-kb": "KB", "--max-model-len": "TOKENS", "--judge-model": "NAME_OR_ID", "--judge-base-url": "URL", "--judge-api-key-env": "NAME",
    "--judge-cache": "DIR", "--model": "NAME_OR_PATH", "--dataset": "NAME_OR_PATH", "--dataset-root": "[NAME=]PATH",
    "--questions-root": "PATH", "--limit": "N", "--categories": "A,B", "--batch-size": "N", "--max-frames": "N",
    "--fps": "FPS", "--stride": "N", "--seed": "N", "--max-new-tokens": "N", "--results-dir": "DIR", "--shard": "I/N",
    "--gpus-per-worker": "K", "--frame-cache": "DIR", "--frame-cache-gb": "GB", "--item-frames-gb": "GB",
    "--frame-memory-gb": "GB", "--prefetch": "N", "--progress-interval": "SECONDS", "--min-pass-rate": "RATE",
    "--generator": "NAME_OR_PATH", "--outputs-dir": "DIR", "--num-frames": "N", "--video-fps": "FPS", "--height": "PX",
    "--width": "PX", "--steps": "N", "--guidance-scale": "X", "--negative-prompt": "TEXT", "--max-generations": "N",
    "--upload-to": "S3_URL", "--preset": "NAME", "--score": "WHAT", "--judge-protocol": "NAME",
}


def add_options(add: Callable[..., Any], options: Iterable[Option] = OPTIONS) -> None:
    """``add`` is pytest's ``group.addoption`` or argparse's ``add_argument``."""
    for opt in options:
        kwargs = dict(opt.kwargs)
        if opt.flag in METAVARS and "choices" not in kwargs and kwargs.get("action") not in ("store_true", "store_false"):
            kwargs.setdefault("metavar", METAVARS[opt.flag])
        add(opt.flag, dest=opt.dest, help=opt.help, **kwargs)


def option_args(values: Mapping[str, Any], options: Iterable[Option] = OPTIONS) -> list[str]:
    """Turn parsed option values (by dest) back into command-line arguments."""
    args: list[str] = []
    for opt in options:
        value = values.get(opt.dest)
        if value is None or value is False or (opt.kwargs.get("default") is not None and value == opt.kwargs["default"]):
            continue
        if value is True:
            args.append(opt.flag)
        elif isinstance(value, list) and opt.kwargs.get("action") == "append":
            for v in value:
                args += [opt.flag, str(v)]
        elif isinstance(value, list):
            args += [opt.flag, ",".join(value)]
        elif isinstance(value, tuple):  # --shard
            args += [opt.flag, "/".join(str(v) for v in value)]
        else:
            args += [opt.flag, str(value)]
    return args
