"""Video-generation options, defined once for the pytest plugin and ``vlm-bench generate``.
The data, sharding, results and GPU options are the suite's own (``vlm_bench.options``)."""

from __future__ import annotations

from typing import Any, Mapping

from vlm_bench.generation.config import CPU_OFFLOAD, DTYPES
from vlm_bench.options import OPTIONS, Option, non_negative_float, non_negative_int, positive_float, positive_int

GENERATION_OPTIONS: tuple[Option, ...] = (
    Option("--generator", "gen_generator", "video-generation model: a catalog name (see `vlm-bench generators`) or a generator YAML; turns the session into a generation run over VMEvalKit task pairs"),
    Option("--outputs-dir", "gen_outputs_dir", "the experiment folder the videos go to, in VMEvalKit's tree: <outputs-dir>/<generator>/<domain>_task/<task_id>/<run_id>/"),
    Option("--override", "gen_override", "generate again tasks that already have a finished video (a new run folder; old runs stay)", {"action": "store_true"}),
    Option("--num-frames", "gen_num_frames", "frames per generated video (default: the generator's)", {"type": positive_int}),
    Option("--video-fps", "gen_fps", "frame rate of the generated video (default: the generator's)", {"type": positive_float}),
    Option("--height", "gen_height", "video height in pixels (default: the generator's)", {"type": positive_int}),
    Option("--width", "gen_width", "video width in pixels (default: the generator's)", {"type": positive_int}),
    Option("--steps", "gen_steps", "denoising steps (default: the generator's)", {"type": positive_int}),
    Option("--guidance-scale", "gen_guidance_scale", "classifier-free guidance scale (default: the generator's)", {"type": non_negative_float}),
    Option("--dtype", "gen_dtype", "weights dtype (default: the generator's on a GPU, float32 on a CPU)", {"choices": DTYPES}),
    Option("--cpu-offload", "gen_cpu_offload", "diffusers CPU offload on a GPU: model (whole models) or sequential (layer by layer, least memory)", {"choices": CPU_OFFLOAD}),
    Option("--vae-tiling", "gen_vae_tiling", "decode the video in tiles (less GPU memory)", {"action": "store_true", "default": None}),
    Option("--vae-slicing", "gen_vae_slicing", "decode the video a slice at a time (less GPU memory)", {"action": "store_true", "default": None}),
    Option("--negative-prompt", "gen_negative_prompt", "negative prompt for pipelines that take one"),
    Option("--dry-run", "gen_dry_run", "list what each task would send (provider, model, request, cost estimate where the catalog has a price) and stop: nothing is sent, uploaded or written", {"action": "store_true"}),
    Option("--max-generations", "gen_max_generations", "at most N new generations (submissions) in this run; the tasks after them are left for a later run (resumed submissions and finished videos do not count)", {"type": non_negative_int}),
    Option("--upload-to", "gen_upload_to", "API generators that fetch the first frame by URL (Luma): upload it to this S3-compatible bucket, s3://bucket/prefix (credentials and endpoint: boto3's usual settings)"),
)

# The suite's options that a generation run uses too (see vlm_bench.options).
SHARED_DESTS = (
    "vlm_datasets", "vlm_dataset_roots", "vlm_limit", "vlm_categories", "vlm_shard", "vlm_seed", "vlm_results_dir",
    "vlm_overwrite", "vlm_resume", "vlm_gpus_per_worker", "vlm_progress", "vlm_progress_interval",
    "vlm_concurrency",  # for a generator: tasks in flight at once (API generators; default: the generator's)
    "vlm_base_url", "vlm_api_key_env",  # for an API generator: its provider's base URL, its key's variable
    "vlm_preset",  # for a generator: the reference whose call arguments it sends (vmevalkit, model-card)
    "vlm_score",  # for a generator: rule scores for each video made (rules, the default), or none
    "vlm_judge_protocol",  # for generate --judge: how the judge grades
)
SHARED_OPTIONS = tuple(o for o in OPTIONS if o.dest in SHARED_DESTS)

# option dest -> GenerationSettings field
SETTING_DESTS = {
    "gen_num_frames": "num_frames",
    "gen_fps": "fps",
    "gen_height": "height",
    "gen_width": "width",
    "gen_steps": "steps",
    "gen_guidance_scale": "guidance_scale",
    "gen_dtype": "dtype",
    "gen_cpu_offload": "cpu_offload",
    "gen_vae_tiling": "vae_tiling",
    "gen_vae_slicing": "vae_slicing",
    "gen_negative_prompt": "negative_prompt",
    "vlm_seed": "seed",
}


def setting_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """GenerationSettings overrides from parsed option values (``None`` = not given)."""
    return {field: values.get(dest) for dest, field in SETTING_DESTS.items() if values.get(dest) is not None}


def is_generation_session(config: Any) -> bool:
    """A pytest session given ``--generator``: it generates videos instead of answering questions."""
    return bool(config.getoption("gen_generator", None))
