"""--preset for generators: the diffusers call each preset makes, on a fixture first frame,
against the call its reference makes, written out here by hand from the reference's code
(VMEvalKit's wrappers at ae2e8dc as its runner calls them; diffusers 0.42.1's documented
examples for model-card). Both calls are bound to the pipeline's signature, so an argument
left to its default and the same default passed explicitly compare equal. No weights are
loaded: the pipeline classes give the signatures."""

from __future__ import annotations

import glob
import inspect
import json

import numpy as np
import pytest

from conftest import FIXTURES, read_jsonl

diffusers = pytest.importorskip("diffusers")
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from vlm_bench.config import ConfigError  # noqa: E402
from vlm_bench.generation.catalog import resolve_generator, with_preset  # noqa: E402
from vlm_bench.generation.engines.diffusers_engine import DiffusersGenerator  # noqa: E402

FIRST_FRAME = sorted(glob.glob(str(FIXTURES / "benchmarks" / "vmevalkit_questions" / "*" / "*" / "first_frame.png")))[0]
PROMPT = "Move the piece to the goal."
LTX_NEGATIVE = "worst quality, inconsistent motion, blurry, jittery, distorted"


def loaded():
    """diffusers.utils.load_image(...).convert("RGB"), as every VMEvalKit wrapper starts."""
    with Image.open(FIRST_FRAME) as img:
        return img.convert("RGB")


def lanczos(w, h):
    return loaded().resize((w, h), Image.Resampling.LANCZOS)


def wan_max_area(max_area, mod):
    """WanService._aspect_ratio_resize: height = round(np.sqrt(max_area * aspect_ratio)) // mod * mod."""
    image = loaded()
    aspect_ratio = image.height / image.width
    height = round(np.sqrt(max_area * aspect_ratio)) // mod * mod
    width = round(np.sqrt(max_area / aspect_ratio)) // mod * mod
    return image.resize((width, height), Image.Resampling.LANCZOS), height, width


def vmevalkit_calls():
    """(generator, pipeline, the call VMEvalKit makes, seed and device of its generator or None)."""
    wan_480, h, w = wan_max_area(720 * 1280, 16)
    wan_5b, h5, w5 = wan_max_area(720 * 1280, 32)
    cog = dict(prompt=PROMPT, image=lanczos(720, 480), num_frames=49, num_inference_steps=50, guidance_scale=6.0)
    sana = dict(image=loaded(), prompt=PROMPT + " motion score: 30.", height=480, width=832, frames=80,
                guidance_scale=6.0, num_inference_steps=50)
    ltx = dict(image=loaded(), prompt=PROMPT, negative_prompt=LTX_NEGATIVE, width=704, height=480, num_frames=120,
               num_inference_steps=50)
    return [
        # svd_inference.py: self.pipe(image, num_frames=num_frames, decode_chunk_size=8, num_inference_steps=25, motion_bucket_id=127)
        ("svd", "StableVideoDiffusionPipeline",
         dict(image=lanczos(1024, 576), num_frames=35, decode_chunk_size=8, num_inference_steps=25, motion_bucket_id=127), None),
        # ltx_inference.py: self.pipe(image=image, prompt=text_prompt, negative_prompt=..., width, height, num_frames, num_inference_steps)
        ("ltx-video", "LTXImageToVideoPipeline", ltx, None),
        ("ltx-video-13b-distilled", "LTXImageToVideoPipeline", ltx, None),
        # wan_inference.py: self.pipe(image=image, prompt=text_prompt, height=height, width=width, guidance_scale=5.5)
        ("wan-2.1-i2v-480p", "WanImageToVideoPipeline", dict(image=wan_480, prompt=PROMPT, height=h, width=w, guidance_scale=5.5), None),
        ("wan-2.1-i2v-720p", "WanImageToVideoPipeline", dict(image=wan_480, prompt=PROMPT, height=h, width=w, guidance_scale=5.5), None),
        ("wan-2.2-i2v-a14b", "WanImageToVideoPipeline", dict(image=wan_480, prompt=PROMPT, height=h, width=w, guidance_scale=5.5), None),
        ("wan-2.2-ti2v-5b", "WanImageToVideoPipeline", dict(image=wan_5b, prompt=PROMPT, height=h5, width=w5, guidance_scale=5.5), None),
        # cogvideox_inference.py: self.pipe(prompt, image, num_frames=49, num_inference_steps=50, guidance_scale=6.0,
        # generator=torch.Generator(device=self.device).manual_seed(42)) -- CogVideoXConfig's defaults
        ("cogvideox-5b-i2v", "CogVideoXImageToVideoPipeline", cog, (42, "cuda")),
        ("cogvideox1.5-5b-i2v", "CogVideoXImageToVideoPipeline", cog, (42, "cuda")),
        # sana_inference.py: pipeline_kwargs = {image, prompt + " motion score: 30.", height 480, width 832,
        # frames int(5.0 * 16), guidance_scale 6.0, num_inference_steps 50, generator cuda seed 42}
        ("sana-video-2b-480p", "SanaImageToVideoPipeline", sana, (42, "cuda")),
        ("sana", "SanaImageToVideoPipeline", sana, (42, "cuda")),
        # hunyuan_inference.py runs Tencent's CLI; the preset's nearest diffusers call
        ("hunyuan-video-i2v", "HunyuanVideoImageToVideoPipeline",
         dict(image=lanczos(1280, 720), prompt=PROMPT, height=720, width=1280, num_frames=129, num_inference_steps=50,
              guidance_scale=6.0), None),
    ]


def model_card_calls():
    wan, h, w = wan_max_area(480 * 832, 16)
    wan_negative = resolve_generator("wan-2.1-i2v-480p").presets["model-card"]["defaults"]["negative_prompt"]
    sana_negative = resolve_generator("sana-video-2b-480p").presets["model-card"]["defaults"]["negative_prompt"]
    sana = dict(image=loaded(), prompt=PROMPT + " motion score: 30.", negative_prompt=sana_negative, height=480,
                width=832, frames=81, guidance_scale=6, num_inference_steps=50)
    return [
        # frames = pipe(image, num_frames=25, decode_chunk_size=8) after image.resize((1024, 576))
        ("svd", "StableVideoDiffusionPipeline", dict(image=lanczos(1024, 576), num_frames=25, decode_chunk_size=8), None),
        ("ltx-video", "LTXImageToVideoPipeline",
         dict(image=loaded(), prompt=PROMPT, negative_prompt=LTX_NEGATIVE, width=704, height=480, num_frames=161,
              num_inference_steps=50), None),
        ("wan-2.1-i2v-480p", "WanImageToVideoPipeline",
         dict(image=wan, prompt=PROMPT, negative_prompt=wan_negative, height=h, width=w, num_frames=81, guidance_scale=5.0), None),
        ("cogvideox-5b-i2v", "CogVideoXImageToVideoPipeline", dict(image=loaded(), prompt=PROMPT, use_dynamic_cfg=True), None),
        ("sana-video-2b-480p", "SanaImageToVideoPipeline", sana, (42, "cuda")),
        ("sana", "SanaImageToVideoPipeline", sana, (42, "cuda")),
        ("hunyuan-video-i2v", "HunyuanVideoImageToVideoPipeline", dict(image=loaded(), prompt=PROMPT, guidance_scale=6.0), None),
    ]


def our_call(name: str, preset: str):
    cfg = with_preset(resolve_generator(name), preset)
    generator = DiffusersGenerator(cfg, cfg.settings(cuda=True))
    generator._params = dict(inspect.signature(getattr(diffusers, cfg.pipeline).__call__).parameters)
    image, height, width = generator.prepare_image(FIRST_FRAME)
    return cfg, generator.call_kwargs(PROMPT, image, height, width)


def bound(pipeline: str, kwargs: dict) -> dict:
    """Every argument of the call as the pipeline sees it: given, or its default; images as pixels."""
    signature = inspect.signature(getattr(diffusers, pipeline).__call__)
    args = signature.bind_partial(None, **{k: v for k, v in kwargs.items() if k not in ("generator", "output_type")})
    args.apply_defaults()
    out = dict(args.arguments)
    out.pop("self")
    out["image"] = np.asarray(out["image"]).tobytes() if out.get("image") is not None else None
    return out


@pytest.mark.parametrize("case", vmevalkit_calls(), ids=lambda c: c[0])
def test_vmevalkit_preset_makes_vmevalkits_call(case):
    name, pipeline, reference, seed = case
    cfg, ours = our_call(name, "vmevalkit")
    assert cfg.pipeline == pipeline
    assert bound(pipeline, ours) == bound(pipeline, reference)
    if seed is not None:  # a reference that seeds its generator: the same seed, on its device where there is one
        assert ours["generator"].initial_seed() == seed[0]
        assert cfg.generator_device == seed[1]


@pytest.mark.parametrize("case", model_card_calls(), ids=lambda c: c[0])
def test_model_card_preset_makes_the_documented_call(case):
    name, pipeline, reference, seed = case
    cfg, ours = our_call(name, "model-card")
    assert bound(pipeline, ours) == bound(pipeline, reference)
    if seed is not None:
        assert ours["generator"].initial_seed() == seed[0] and cfg.generator_device == seed[1]


def test_hunyuan_gets_guidance_6_with_and_without_a_preset():
    for preset in (None, "vmevalkit", "model-card"):
        cfg = with_preset(resolve_generator("hunyuan-video-i2v"), preset)
        assert cfg.settings().guidance_scale == 6.0, preset
    assert with_preset(resolve_generator("hunyuan-video-i2v"), "vmevalkit").scheduler_args == {"shift": 7.0}


def test_a_preset_with_a_setting_that_cannot_run_is_refused_at_load(tmp_path):
    from vlm_bench.generation.catalog import load_generator_config

    text = (FIXTURES.parent / "configs" / "generators" / "tiny-wan.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "presets:\n  vmevalkit:\n    source: {url: https://example.org}\n    defaults: {num_frames: 6}\n")
    with pytest.raises(ConfigError, match=r"presets.vmevalkit: .*num_frames must be k\*4\+1"):
        load_generator_config(bad)
    bad.write_text(text + "presets:\n  vmevalkit:\n    defaults: {num_frames: 5}\n")
    with pytest.raises(ConfigError, match="source needs"):
        load_generator_config(bad)


def test_unknown_preset_names_the_generators_presets():
    with pytest.raises(ConfigError, match=r"generator 'svd' has no preset 'vmeval' \(its presets: vmevalkit, model-card\)"):
        with_preset(resolve_generator("svd"), "vmeval")


def test_tiny_preset_runs_end_to_end_and_records_say_so(tmp_path):
    """The machinery for real: a tiny LTX pipeline under a preset (first frame as loaded, 10
    frames asked, frame_rate left out, the scheduler rebuilt with a shift)."""
    import subprocess
    import sys

    from conftest import REPO

    done = subprocess.run(
        [sys.executable, "-m", "vlm_bench.cli", "generate", "--generator", "tiny-ltx-video", "--preset", "vmevalkit",
         "--dataset", "vmevalkit_fixtures", "--outputs-dir", str(tmp_path / "out"), "--results-dir", str(tmp_path / "r"),
         "--limit", "1", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    record = read_jsonl(tmp_path / "r" / "items.jsonl")[0]
    assert record["error"] is None
    assert record["preset"] == {"name": "vmevalkit", "source": "Video-Reason/VMEvalKit@ae2e8dc"}
    metadata = json.loads(next((tmp_path / "out").rglob("metadata.json")).read_text())
    text = json.dumps(metadata)
    assert '"name": "vmevalkit"' in text and "ae2e8dc101140893777b4adff9bce938d9c96376" in text
    assert '"negative_prompt": "worst quality' in text
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["manifest"]["config"]["generator"]["preset"]["name"] == "vmevalkit"


def test_tiny_preset_call_leaves_frame_rate_to_the_pipeline_and_rebuilds_the_scheduler():
    cfg = with_preset(resolve_generator("tiny-ltx-video"), "vmevalkit")
    generator = DiffusersGenerator(cfg, cfg.settings(cuda=False))
    generator.load()
    try:
        image, height, width = generator.prepare_image(FIRST_FRAME)
        kwargs = generator.call_kwargs(PROMPT, image, height, width)
        assert "frame_rate" not in kwargs and kwargs["num_frames"] == 10
        assert image.size == loaded().size  # as loaded: the pipeline resizes
        assert generator.pipe.scheduler.config.shift == 2.0
        assert kwargs["generator"].device == torch.device("cpu")
    finally:
        generator.close()
