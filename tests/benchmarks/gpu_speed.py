"""The native path's speed, stage by stage, on the GPU (and, for reference, on the CPU):

    python tests/benchmarks/gpu_speed.py --json gpu_speed.json     # on a GPU machine: docs/performance.md's table
    python tests/benchmarks/gpu_speed.py --quick                   # small and CPU-only (tests/test_gpu_speed_script.py)

Items go through the evaluator (frames, prompt, processor, generate, scoring, record),
one configuration after another, each on its own engine:

- ``tiny_internvl3`` per item on the GPU with torch's CPU threads left at every core (the
  engine's old default there), chosen by the engine, and one; with accelerate's
  ``device_map="auto"`` or the GPU named; with the processor on the GPU; and on the CPU
  with one thread, the same items.
- ``internvl3_1b_shape`` (InternVL3-1B's dimensions, random weights), 16 frames of
  448 px and 64 new tokens: the default, with a bare ``model.generate`` on the same inputs
  (the harness ratio); the processor on the GPU; eager attention; batches of 4 and 8 (items
  per second); ``--compile`` (and whether its greedy tokens equal the default's).

Each row gives the median item, items per second and the median of each stage
(records' ``timing``). Nothing here is asserted: tests/test_gpu_speed_script.py checks
the script runs, and the figures go to docs/performance.md with the hardware line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from vlm_bench.config import build_run_config
from vlm_bench.datasets import load_samples
from vlm_bench.evaluate import Evaluator
from vlm_bench.results.manifest import hardware, hardware_line
from vlm_bench.runners.native_backend import attention_backends
from vlm_bench.types import STAGES

COLUMNS = ("frames_wait_ms", "frames_decode_ms", "processor_ms", "prefill_ms", "decode_ms", "tokens_per_s", "generate_ms")


def make_clips(root: Path, count: int, size: tuple[int, int], frames: int) -> Path:
    """``count`` distinct clips (OpenCV's mp4v: no PyAV needed) and a JSONL of one question each."""
    rng = np.random.default_rng(0)
    lines = []
    for k in range(count):
        path = root / f"clip{k:03d}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (size[1], size[0]))
        base = rng.integers(30, 220, (*size, 3), dtype=np.uint8)
        for i in range(frames):
            writer.write(np.roll(base, 5 * i, axis=1))
        writer.release()
        # prompts of different lengths, as a real benchmark's are (a shape seen once must not look cheap)
        question = f"What moves in clip {k}?" + " Say where it goes and why." * (k % 7)
        lines.append(json.dumps({"id": f"q{k:03d}", "video": path.name, "question": question, "answer": "left"}))
    data = root / "items.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return data


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def evaluator_for(model: str, data: Path, frames: int, tokens: int, overrides: dict[str, Any]) -> Evaluator:
    run = build_run_config(model=model, backend="native", datasets=[str(data)], video_overrides={"max_frames": frames},
                           decode_overrides={"max_new_tokens": tokens})
    run = replace(run, model=replace(run.model, **overrides))
    return Evaluator(run, load_samples(run.datasets[0]))


def measure(label: str, model: str, data: Path, *, frames: int, tokens: int, warmup: int = 1, count: int | None = None,
            overrides: dict[str, Any] | None = None, threads: str | None = None, bare: bool = False) -> dict[str, Any]:
    """Items one after another as a session runs them (the next ones' frames decoded
    ahead, a batch's items generated together); the first ``warmup`` items are left out,
    then ``count`` are measured (default: the rest)."""
    with environment(OMP_NUM_THREADS=threads):
        ev = evaluator_for(model, data, frames, tokens, overrides or {})
        started = time.perf_counter()
        ev.load()
        load_s = time.perf_counter() - started
        if ev.load_error:
            raise RuntimeError(ev.load_error)
        samples = load_samples(ev.run.datasets[0])
        samples = samples[:warmup + count] if count else samples
        batch = ev.run.model.batch_size
        items, records, bare_ms = [], [], []
        wall_started = None
        for i, sample in enumerate(samples):
            if i == warmup:
                wall_started = time.perf_counter()
            ev.prefetch(samples[i + batch:i + batch + 2])
            t = time.perf_counter()
            record = ev.evaluate(sample, samples[i + 1:i + batch])
            took = (time.perf_counter() - t) * 1000
            if record.error:
                raise RuntimeError(f"{label}: {record.id}: {record.error}")
            if i >= warmup:
                items.append(took)
                records.append(record)
        wall = time.perf_counter() - wall_started
        if bare:  # after the timed run, on the same items: items per second stay the harness's own
            bare_ms = [bare_generate_ms(ev, sample) for sample in samples[warmup:]]
        describe = ev.adapter.engine.describe()
        ev.close()
    row: dict[str, Any] = {
        "config": label, "items": len(items), "load_s": round(load_s, 1),
        "item_p50_ms": round(statistics.median(items), 1),
        "items_per_s": round(len(items) / wall, 2),
        "stages_ms": {k: round(statistics.median(r.timing[k] for r in records if k in (r.timing or {})), 2)
                      for k in (*STAGES, "tokens_per_s") if any(k in (r.timing or {}) for r in records)},
        "tokens": statistics.median(r.tokens or 0 for r in records),
        "engine": describe,
    }
    if bare_ms:
        row["bare_generate_ms"] = round(statistics.median(bare_ms), 1)
        row["item_over_bare"] = round(row["item_p50_ms"] / row["bare_generate_ms"], 3)
    return row


def bare_generate_ms(ev: Evaluator, sample) -> float:
    """A bare ``model.generate`` on this item's own inputs and settings, timed to the end
    of the GPU's work."""
    import torch

    from vlm_bench.frames import load_media

    engine = ev.adapter.engine
    media = load_media(sample, ev.video_config(sample))
    prompt = ev.adapter.build_prompt(sample, ev.datasets[sample.dataset], media)
    inputs = engine.prepare_inputs([(media, prompt)], ev.run.model)
    decode = ev.decode_config(sample)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    torch.manual_seed(engine.seed)
    started = time.perf_counter()
    with torch.inference_mode(), attention_backends(engine.model.device):  # the attention the engine uses
        out = engine.model.generate(**inputs, max_new_tokens=decode.max_new_tokens, do_sample=False,
                                    pad_token_id=engine.processor.tokenizer.pad_token_id)
    out.tolist()
    return (time.perf_counter() - started) * 1000


def greedy_ids(model: str, data: Path, frames: int, tokens: int, overrides: dict[str, Any], count: int = 3) -> list[list[int]]:
    """The new token ids greedy decoding gives for the first ``count`` items (a random
    model's ids mostly lie past its small tokenizer, so texts would hide differences)."""
    import torch

    ev = evaluator_for(model, data, frames, tokens, overrides)
    ev.load()
    engine = ev.adapter.engine
    out = []
    for sample in load_samples(ev.run.datasets[0])[:count]:
        media = ev.media(sample)
        inputs = engine.prepare_inputs([(media, ev.adapter.build_prompt(sample, ev.datasets[sample.dataset], media))],
                                       ev.run.model)
        torch.manual_seed(engine.seed)
        with torch.inference_mode(), attention_backends(engine.model.device):
            ids = engine.model.generate(**inputs, max_new_tokens=tokens, do_sample=False,
                                        pad_token_id=engine.processor.tokenizer.pad_token_id)
        out.append(ids[0, inputs["input_ids"].shape[1]:].tolist())
    ev.close()
    return out


def table(rows: list[dict[str, Any]]) -> list[str]:
    head = ["config", "items", "item p50 ms", "items/s", *(c.replace("_ms", "") for c in COLUMNS), "vs bare"]
    rows = [r for r in rows if "error" not in r] + [r for r in rows if "error" in r]
    body = [[r["config"], "failed: " + r["error"][:60], *[""] * (len(head) - 2)] if "error" in r else [r["config"], str(r["items"]), f"{r['item_p50_ms']:.1f}", f"{r['items_per_s']:.2f}",
             *(f"{r['stages_ms'][c]:.1f}" if c in r["stages_ms"] else "-" for c in COLUMNS),
             f"{r['item_over_bare']:.3f}" if "item_over_bare" in r else "-"] for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body]]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model only, few items, CPU only (a check that it runs)")
    parser.add_argument("--json", help="also write the rows and the hardware here")
    parser.add_argument("--items", type=int, default=None, help="items measured per configuration (default 8; --quick 3)")
    parser.add_argument("--only", action="append", default=[], help="run only the configurations whose label holds this")
    args = parser.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available() and not args.quick
    args_only = args.only
    n = args.items or (3 if args.quick else 8)
    cores = str(os.cpu_count())
    rows: list[dict[str, Any]] = []
    notes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vlm-bench-gpu-speed-") as tmp:
        root = Path(tmp)
        (root / "tiny").mkdir()
        tiny = make_clips(root / "tiny", n + 1, (96, 128), 48)
        cpu = {"device_map": "cpu", "dtype": "float32"}

        def add(label: str, *args: Any, **kwargs: Any) -> None:
            if args_only and not any(part in label for part in args_only):
                return
            try:
                row = measure(label, *args, **kwargs)
            except Exception as exc:  # one configuration that fails must not cost the others (a GPU lease is short)
                row = {"config": label, "error": f"{type(exc).__name__}: {exc}"[:500]}
            rows.append(row)
            print("  ".join(f"{k}={v}" for k, v in row.items() if k != "engine"), flush=True)

        if cuda:
            add("tiny gpu, torch threads = all cores", "tiny_internvl3", tiny, frames=8, tokens=16, threads=cores)
            add("tiny gpu, threads chosen (1)", "tiny_internvl3", tiny, frames=8, tokens=16)
            add("tiny gpu, device_map cuda:0", "tiny_internvl3", tiny, frames=8, tokens=16,
                overrides={"device_map": "cuda:0"})
            add("tiny gpu, processor on gpu", "tiny_internvl3", tiny, frames=8, tokens=16,
                overrides={"processor_device": "model"})
            add("tiny gpu, --compile", "tiny_internvl3", tiny, frames=8, tokens=16, warmup=3, overrides={"compile": True})
        add("tiny cpu, 1 thread", "tiny_internvl3", tiny, frames=8, tokens=16, overrides=cpu, threads="1", bare=True)
        if cuda and (not args_only or any("1b" in part for part in args_only)):
            (root / "shape").mkdir()
            shape = make_clips(root / "shape", n + 8, (360, 640), 64)
            big = {"frames": 16, "tokens": 64, "count": n}
            add("1b-shape, default (sdpa, dynamic cache, bs 1)", "internvl3_1b_shape", shape, bare=True, **big)
            add("1b-shape, processor on gpu", "internvl3_1b_shape", shape, overrides={"processor_device": "model"}, **big)
            add("1b-shape, eager attention", "internvl3_1b_shape", shape, overrides={"attn_implementation": "eager"}, **big)
            add("1b-shape, batch 4", "internvl3_1b_shape", shape, warmup=4, overrides={"batch_size": 4}, **big)
            add("1b-shape, batch 8", "internvl3_1b_shape", shape, warmup=8, overrides={"batch_size": 8}, **big)
            add("1b-shape, --compile (static cache)", "internvl3_1b_shape", shape, warmup=3, overrides={"compile": True},
                **big)
            try:
                if args_only:
                    raise RuntimeError("--only given")
                plain = greedy_ids("internvl3_1b_shape", shape, 16, 64, {})
                compiled = greedy_ids("internvl3_1b_shape", shape, 16, 64, {"compile": True})
                notes["compile_same_greedy_tokens"] = plain == compiled
                notes["compile_tokens_equal_per_item"] = [sum(a == b for a, b in zip(x, y)) for x, y in zip(plain, compiled)]
            except Exception as exc:
                notes["compile_same_greedy_tokens"] = f"not checked: {type(exc).__name__}: {exc}"[:300]
    info = hardware()
    print()
    print("measured on: " + hardware_line({"hardware": info}))
    for line in table(rows):
        print(line)
    for key, value in notes.items():
        print(f"{key}: {value}")
    out = {"hardware": info, "rows": rows, "notes": notes, "torch": torch.__version__}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
