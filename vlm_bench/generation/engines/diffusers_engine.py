"""Open-source image-to-video models through diffusers' pipelines (Stable Video Diffusion,
LTX-Video, CogVideoX, Wan, HunyuanVideo-I2V, SANA-Video), loaded once with
``<Pipeline>.from_pretrained`` from a hub id, a local folder or a locally built tiny
pipeline.

The call is built from the pipeline's own signature: the first frame as ``image``, the
task prompt where the pipeline takes one, ``num_frames`` (``frames`` for SANA), size,
steps, guidance (``max_guidance_scale`` for SVD), the frame rate where the model is
conditioned on it, a ``torch.Generator`` seeded per task (same seed, same video; on the
CPU unless the entry names a reference's cuda), less the entry's ``omit_args``, then its
``call_args``. Frames come back as arrays and are encoded to
H.264 with PyAV.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vlm_bench.generation.base import GenerationResult, GeneratorUnavailable
from vlm_bench.generation.config import GenerationSettings, GeneratorConfig, frames_made

EXTRA_HINT = "pip install 'vlm-bench[generation]'"
# x264 output is deterministic for fixed input and options; "veryfast" encodes several times
# faster than "medium" on a CPU, and crf 18 keeps the quality a judge needs.
VIDEO_OPTIONS = {"crf": "18", "preset": "veryfast"}
OOM_ADVICE = "CUDA out of memory: try --cpu-offload model, --vae-tiling, fewer --num-frames or a smaller --height/--width"


def require_diffusers(name: str):
    if importlib.util.find_spec("diffusers") is None:
        raise GeneratorUnavailable(f"generator {name!r} needs diffusers: {EXTRA_HINT}")
    if importlib.util.find_spec("av") is None:
        raise GeneratorUnavailable(f"generator {name!r} needs PyAV to write its videos: {EXTRA_HINT}")
    import diffusers.utils.import_utils as diffusers_imports

    # The generators never quantize with bitsandbytes; diffusers imports it (and bitsandbytes
    # then warns about kernels it cannot fetch) only because it is installed. Not here.
    if "bitsandbytes" not in sys.modules and hasattr(diffusers_imports, "_bitsandbytes_available"):
        diffusers_imports._bitsandbytes_available = False
    import diffusers

    return diffusers


class DiffusersGenerator:
    backend = "diffusers"
    resumable = False
    concurrency = 1

    def __init__(self, cfg: GeneratorConfig, settings: GenerationSettings):
        self.cfg = cfg
        self.settings = settings
        self.name = cfg.name
        self.pipe = None
        self.load_count = 0
        self.source: str | None = None
        self.device = "cpu"
        self._params: dict[str, inspect.Parameter] = {}

    # ------------------------------------------------------------ loading

    def pipeline_class(self):
        diffusers = require_diffusers(self.name)
        if not self.cfg.pipeline:
            raise GeneratorUnavailable(f"generator {self.name!r} names no diffusers pipeline")
        cls = getattr(diffusers, self.cfg.pipeline, None)
        if cls is None:
            raise GeneratorUnavailable(
                f"generator {self.name!r} is not available in this version: needs diffusers' {self.cfg.pipeline} "
                f"(diffusers {diffusers.__version__} is installed; upgrade it)"
            )
        return cls

    def model_source(self) -> str:
        if self.cfg.local_build:
            from vlm_bench.generation.tiny import LOCAL_BUILDS

            if self.cfg.local_build not in LOCAL_BUILDS:
                raise GeneratorUnavailable(f"unknown local_build {self.cfg.local_build!r}; known: {', '.join(LOCAL_BUILDS)}")
            return str(LOCAL_BUILDS[self.cfg.local_build]())
        if not self.cfg.model:
            raise GeneratorUnavailable(f"generator {self.name!r} sets neither model nor local_build")
        return str(Path(self.cfg.model).expanduser()) if Path(self.cfg.model).expanduser().is_dir() else self.cfg.model

    def check(self) -> tuple[Any, str | None]:
        """Before any task: diffusers and the pipeline class are there, and the weights
        are a local folder, cached, or reachable (else ``model not available: <repo>``).
        Returns the pipeline class and the weights' source (None for a local build, which
        is built on load, not here)."""
        cls = self.pipeline_class()
        if self.cfg.local_build:
            return cls, None
        source = self.model_source()
        if not Path(source).is_dir():
            from vlm_bench.runners.native_backend import _check_hub_reachable

            try:
                _check_hub_reachable(source, self.cfg.revision, filename="model_index.json")
            except RuntimeError as exc:
                raise GeneratorUnavailable(str(exc)) from None
        return cls, source

    def load(self) -> None:
        import torch

        from vlm_bench.runners.native_backend import _torch_dtype

        cls, checked = self.check()
        source = self.source = checked or self.model_source()
        cuda = torch.cuda.is_available()
        self.device = "cuda" if cuda else "cpu"
        s = self.settings
        dtype = _torch_dtype(s.dtype) if s.dtype else (torch.bfloat16 if cuda else torch.float32)
        local = Path(source).is_dir()
        try:
            pipe = cls.from_pretrained(source, dtype=dtype, revision=None if local else self.cfg.revision)
        except OSError as exc:
            raise GeneratorUnavailable(f"Hugging Face model not available: {source} ({exc})") from exc
        for component, name in self.cfg.component_dtypes.items():
            module = getattr(pipe, component, None)
            if module is None:
                raise GeneratorUnavailable(f"generator {self.name!r}: component_dtypes names {component!r}, which {cls.__name__} lacks")
            module.to(_torch_dtype(name))
        if s.cpu_offload != "none":
            if not cuda:
                raise GeneratorUnavailable(f"--cpu-offload {s.cpu_offload} needs a CUDA GPU (none is visible)")
            (pipe.enable_model_cpu_offload if s.cpu_offload == "model" else pipe.enable_sequential_cpu_offload)()
        else:
            pipe.to(self.device)
        for wanted, method in ((s.vae_tiling, "enable_tiling"), (s.vae_slicing, "enable_slicing")):
            if wanted:
                vae = getattr(pipe, "vae", None)
                try:
                    getattr(vae, method)()
                except (AttributeError, NotImplementedError):
                    raise GeneratorUnavailable(
                        f"generator {self.name!r}: its VAE ({type(vae).__name__}) has no {method}; "
                        f"drop --vae-{method.removeprefix('enable_')}"
                    ) from None
        if self.cfg.scheduler_args:  # e.g. HunyuanVideo's flow shift
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **self.cfg.scheduler_args)
        pipe.set_progress_bar_config(disable=True)
        self._params = dict(inspect.signature(pipe.__call__).parameters)
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in self._params.values())
        unknown = [k for k in self.cfg.call_args if k not in self._params and not takes_kwargs]
        if unknown:
            raise GeneratorUnavailable(f"generator {self.name!r}: {cls.__name__} takes no argument {unknown[0]!r} (call_args)")
        self.pipe = pipe
        self.load_count += 1

    def close(self) -> None:
        """Give the GPU memory back (a judge may load next in this process)."""
        if self.pipe is None:
            return
        self.pipe = None
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------ generation

    def prepare_image(self, image_path: str | Path):
        """(image, height, width): the first frame as RGB at the size the video gets."""
        from PIL import Image

        with Image.open(image_path) as img:
            image = img.convert("RGB")
        s, m = self.settings, self.cfg.size_multiple
        height, width = s.height, s.width
        if self.cfg.resize == "max_area" and height and width:
            aspect = image.height / image.width
            area = height * width
            height = max(m, round(math.sqrt(area * aspect)) // m * m)
            width = max(m, round(math.sqrt(area / aspect)) // m * m)
        if self.cfg.resize != "none" and height and width and image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.LANCZOS)
        return image, height, width

    def call_kwargs(self, text_prompt: str, image, height: int | None, width: int | None) -> dict[str, Any]:
        import torch

        s, params = self.settings, self._params
        kwargs: dict[str, Any] = {"image": image, "output_type": "np"}
        if "prompt" in params:
            kwargs["prompt"] = text_prompt + self.cfg.prompt_suffix
        if s.negative_prompt is not None and "negative_prompt" in params:
            kwargs["negative_prompt"] = s.negative_prompt
        frames_arg = "num_frames" if "num_frames" in params else "frames" if "frames" in params else None
        if s.num_frames is not None and frames_arg:
            kwargs[frames_arg] = s.num_frames
        if height and width and "height" in params:
            kwargs.update(height=height, width=width)
        if s.steps is not None:
            kwargs["num_inference_steps"] = s.steps
        if s.guidance_scale is not None:
            kwargs["guidance_scale" if "guidance_scale" in params else "max_guidance_scale"] = s.guidance_scale
        if s.fps is not None:
            for name in ("fps", "frame_rate"):  # models conditioned on the frame rate
                if name in params:
                    kwargs[name] = int(s.fps) if name == "fps" else s.fps
        kwargs["generator"] = torch.Generator(device=self.generator_device()).manual_seed(s.seed)
        for name in self.cfg.omit_args:  # the reference leaves these to the pipeline's defaults
            kwargs.pop(name, None)
        kwargs.update(self.cfg.call_args)
        return kwargs

    def generator_device(self) -> str:
        """Where the seeded generator lives: the entry's device (a reference's ``cuda``:
        the same seed gives its noise only there), the CPU when there is no GPU."""
        import torch

        return "cuda" if self.cfg.generator_device == "cuda" and torch.cuda.is_available() else "cpu"

    def frames(self, kwargs: dict[str, Any]) -> np.ndarray:
        """The pipeline call alone, as uint8 frames (T, H, W, 3)."""
        import torch

        with torch.inference_mode():
            video = self.pipe(**kwargs).frames[0]
        if isinstance(video, list):  # PIL images or arrays
            video = np.stack([np.asarray(f) for f in video])
        video = np.asarray(video)
        if video.dtype != np.uint8:
            video = np.clip(np.rint(video.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
        return video

    def generate(
        self,
        image_path: str | Path,
        text_prompt: str,
        duration: float | None,
        output_filename: str | Path,
        *,
        resume_id: str | None = None,
        on_submitted: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        from vlm_bench.utils.synthetic import write_video

        started = time.perf_counter()
        asked: dict[str, Any] = {}
        try:
            image, height, width = self.prepare_image(image_path)
            kwargs = self.call_kwargs(text_prompt, image, height, width)
            asked = {"num_frames": frames_made(self.cfg, self.settings.num_frames), "height": height, "width": width}
            call_started = time.perf_counter()
            video = self.frames(kwargs)
            pipeline_seconds = time.perf_counter() - call_started
            if video.ndim != 4 or video.shape[-1] != 3:
                raise RuntimeError(f"the pipeline returned frames of shape {video.shape}, expected (frames, H, W, 3)")
            if video.shape[1] % 2 or video.shape[2] % 2:
                raise RuntimeError(f"H.264 needs an even frame size, the pipeline made {video.shape[2]}x{video.shape[1]}")
            write_video(output_filename, list(video), fps=self.settings.fps or 8, options=dict(VIDEO_OPTIONS))
        except Exception as exc:
            error = OOM_ADVICE if type(exc).__name__ == "OutOfMemoryError" else f"{type(exc).__name__}: {exc}"
            return GenerationResult(False, None, error, time.perf_counter() - started, "", self.name, "failed",
                                    metadata=asked)
        return GenerationResult(
            success=True,
            video_path=str(output_filename),
            error=None,
            duration_seconds=time.perf_counter() - started,
            generation_id="",  # a local pipeline has no provider id; the runner records the run id
            model=self.cfg.model or self.cfg.local_build or self.name,
            status="success",
            metadata=dict(asked, fps=self.settings.fps, pipeline_seconds=round(pipeline_seconds, 3),
                          device=self.device, source=self.source, duration=duration),
        )
