"""Native backend on the tiny InternVL: what the harness adds to a bare ``model.generate``.

One method, for the check and for docs/performance.md: items run through the pytest path
(``pytest evals`` with the plugin: frames, prompt, processor, generate, scoring, record,
pytest's own per-test work), each on its own clip, so its frames are decoded (ahead, by
prefetch, as in a run). After each item, a bare ``model.generate`` runs on that item's
inputs (same frames, prompt and processor output, same generation settings), in the item's own
call phase (where the item's generate ran: pytest's capture, logging and warnings handling
are the same) and once the frames being decoded ahead for the next items are done; its
time is taken out of the item's: interleaved pairs. The ratio is the median harness item over the median bare generate, the first
pair (engine load) left out. Run with ``pytest -m benchmark tests/benchmarks/test_bench_native.py``."""

import json
import statistics

import numpy as np
import pytest

from conftest import EVAL_TEST
from perf_report import report
from vlm_bench.utils.synthetic import indexed_frame, write_video

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.benchmark
ITEMS = 13

PAIRS_PLUGIN = '''
import json, time
from concurrent.futures import wait
import pytest
import torch
from vlm_bench.frames import load_media

PAIRS = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.perf_counter()
    result = yield
    PAIRS[-1]["harness"] = time.perf_counter() - start - PAIRS[-1]["spent"]
    return result


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    # the bare generate runs here, in the test's own call phase (pytest's capture, logging and
    # warnings handling as for the item's generate); all of this is taken out of the item's time
    try:
        return (yield)
    finally:
        bare_generate(pyfuncitem)


def bare_generate(item):
    bare_started = time.perf_counter()
    evaluator = item.config.pluginmanager.get_plugin("vlm_bench_session").evaluator()
    engine = evaluator.adapter.engine
    sample = item.callspec.params["vlm_item"]
    media = load_media(sample, evaluator.video_config(sample))
    prompt = evaluator.adapter.build_prompt(sample, evaluator.datasets[sample.dataset], media)
    inputs = engine.prepare_inputs([(media, prompt)], evaluator.run.model)
    decode = evaluator.decode_config(sample)
    wait(list(evaluator.frames._media_ahead.values()))  # the next items' frames, decoding ahead, stay out of the bare run
    torch.manual_seed(engine.seed)  # as the engine does before its generate
    start = time.perf_counter()
    with torch.inference_mode():
        out = engine.model.generate(**inputs, max_new_tokens=decode.max_new_tokens, do_sample=False,
                                    pad_token_id=engine.processor.tokenizer.pad_token_id)
    bare = time.perf_counter() - start
    PAIRS.append({"bare": bare, "tokens": out.shape[1] - inputs["input_ids"].shape[1],
                  "spent": time.perf_counter() - bare_started})


def pytest_sessionfinish(session):
    with open("pairs.json", "w") as fh:
        json.dump(PAIRS, fh)
'''


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """One small clip per item (128x96, 48 frames): nothing is shared between items."""
    root = tmp_path_factory.mktemp("native-bench")
    rng = np.random.default_rng(0)
    lines = []
    for k in range(ITEMS):
        base = rng.integers(40, 200, (96, 128, 3), dtype=np.uint8)
        write_video(root / f"c{k}.mp4", (indexed_frame(i, np.roll(base, 3 * i, axis=1)) for i in range(48)), fps=24,
                    options={"crf": "18", "preset": "ultrafast"})
        lines.append(json.dumps({"id": f"q{k:02d}", "video": f"c{k}.mp4", "question": "What moves?", "answer": "x"}))
    (root / "items.jsonl").write_text("\n".join(lines) + "\n")
    return root


def pairs_through_pytest(pytester, clips, new_tokens: int) -> list[dict]:
    torch.set_num_threads(1)
    pytester.makepyfile(test_items=EVAL_TEST)
    pytester.makeconftest(PAIRS_PLUGIN)
    pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-q", "--model", "tiny-internvl3", "--dataset", str(clips / "items.jsonl"),
        "--max-new-tokens", str(new_tokens), "--results-dir", str(pytester.path / f"out{new_tokens}"),
    )
    pairs = json.loads((pytester.path / "pairs.json").read_text())
    records = [json.loads(line) for line in (pytester.path / f"out{new_tokens}" / "items.jsonl").read_text().splitlines()]
    assert len(pairs) == ITEMS and all(r["error"] is None for r in records)
    assert [p["tokens"] for p in pairs] == [r["tokens"] for r in records]  # the same work on both sides
    return pairs[1:]  # the first item loads the engine


@pytest.mark.parametrize("new_tokens, bound", [(64, 1.10), (256, 1.05)])
def test_harness_item_against_bare_generate(pytester, clips, new_tokens, bound):
    pairs = pairs_through_pytest(pytester, clips, new_tokens)
    harness = statistics.median(p["harness"] for p in pairs)
    bare = statistics.median(p["bare"] for p in pairs)
    report(
        f"native tiny, {new_tokens} new tokens: harness item / bare generate", harness / bare, bound,
        detail=f"(medians of {len(pairs)} interleaved pairs: {harness * 1000:.1f} ms vs {bare * 1000:.1f} ms, "
               f"{statistics.median(p['tokens'] for p in pairs):.0f} tokens)",
    )
