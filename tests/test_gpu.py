"""Checks that need a CUDA GPU (skipped with the reason on CPU machines). Their CPU twins
are in test_native_backend.py and test_long_runs.py."""

import pytest

from conftest import SMOKE_JSONL
from vlm_bench.config import build_run_config, resolve_model
from vlm_bench.datasets import load_samples
from vlm_bench.frames import load_media
from vlm_bench.runners.native_backend import NativeEngine
from vlm_bench.runners.quantization import quantized_linear_names
from vlm_bench.types import DecodeConfig, VideoConfig

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("quant", ["none", "int8", "int4"])
def test_tiny_native_on_cuda(quant):
    import torch

    engine = NativeEngine(resolve_model("tiny-internvl3"), quant=quant)
    engine.load()
    assert engine.model.device.type == "cuda"
    if quant == "none":
        assert engine.model.dtype == torch.bfloat16  # the GPU default
    else:
        assert quantized_linear_names(engine.model)[0]
    sample = load_samples(build_run_config(model="mock", datasets=[str(SMOKE_JSONL)]).datasets[0])[0]
    gen = engine.generate_video(load_media(sample, VideoConfig(max_frames=4)), "Where does it go?", DecodeConfig(max_new_tokens=4))
    assert gen.tokens == 4 or not gen.truncated
    assert {"processor_ms", "prefill_ms", "decode_ms"} <= set(gen.timing)  # synchronised stage times on the GPU
    assert engine.describe()["device"].startswith("cuda")


def test_each_xdist_worker_sees_only_its_gpu(pytester):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    pytester.makepyfile(test_probe="import os, torch\ndef test_probe():\n    assert torch.cuda.device_count() == 1, os.environ['CUDA_VISIBLE_DEVICES']\n"
                        "def test_probe2():\n    assert torch.cuda.device_count() == 1\n")
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", "--dataset", str(SMOKE_JSONL))
    result.assert_outcomes(passed=2)
