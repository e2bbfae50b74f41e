"""The run's manifest: the resolved config, package versions, the git commit, argv,
times and the hardware, so a number can be traced to what made it."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from vlm_bench.utils.http import redact_all, redact_argv


TRACKED_PACKAGES = (
    "vlm-bench",
    "torch",
    "torchvision",
    "transformers",
    "bitsandbytes",
    "accelerate",
    "decord",
    "opencv-python-headless",
    "numpy",
    "PyYAML",
    "pytest",
    "ms-vlmeval",
    "diffusers",
    "av",
)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The commit of the vlm-bench checkout (None when not installed from a git checkout)."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def build_manifest(run_config: Mapping[str, Any], started_at: str) -> dict[str, Any]:
    """The manifest; credentials in URLs and secret-looking options never reach it."""
    return {
        "config": redact_all(dict(run_config)),
        "seed": run_config.get("seed"),
        "versions": package_versions(),
        "git": git_commit(),
        "argv": redact_argv(sys.argv),
        "started_at": started_at,
        "finished_at": utc_now(),
        "hardware": hardware(),
    }


GPU_QUERY = "index,name,memory.total,driver_version,compute_cap"


def hardware() -> dict[str, Any]:
    """The machine a latency was measured on: CPU model and count (and those this process
    may use), torch's thread count and CUDA version where torch is loaded, and each visible
    GPU (name, memory, driver, compute capability) as ``nvidia-smi`` reports it, which
    needs no CUDA context in this process."""
    out: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    torch = sys.modules.get("torch")  # loaded by the engine in this process (a mock run never loads it)
    if torch is not None:
        out["torch_threads"] = torch.get_num_threads()
        out["cuda"] = torch.version.cuda
    gpus = visible_gpus(nvidia_smi_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    out["gpu_count"] = len(gpus)
    out["gpus"] = gpus
    return out


def nvidia_smi_gpus() -> list[dict[str, Any]]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        text = subprocess.run([smi, f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_gpu_rows(text)


def parse_gpu_rows(text: str) -> list[dict[str, Any]]:
    """``nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap`` rows."""
    gpus = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 5 or not cells[0].isdigit():
            continue
        memory = cells[2]
        gpus.append({
            "index": int(cells[0]),
            "name": cells[1],
            "memory_gib": round(float(memory) / 1024, 1) if memory.replace(".", "", 1).isdigit() else None,
            "driver": cells[3],
            "compute_capability": cells[4],
        })
    return gpus


def visible_gpus(gpus: list[dict[str, Any]], visible: str | None) -> list[dict[str, Any]]:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` lets this process see (indices; UUIDs keep all)."""
    if visible is None:
        return gpus
    wanted = [v.strip() for v in visible.split(",") if v.strip()]
    if not all(v.lstrip("-").isdigit() for v in wanted):
        return gpus
    by_index = {g["index"]: g for g in gpus}
    return [by_index[int(v)] for v in wanted if int(v) in by_index]


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def hardware_line(manifest: Mapping[str, Any]) -> str:
    """One line for a report, beside its latencies: GPUs, CPU, threads, engine."""
    hw = manifest.get("hardware") or {}
    parts = []
    gpus = hw.get("gpus") or []
    if gpus:
        names = sorted({g["name"] for g in gpus})
        memory = gpus[0].get("memory_gib")
        parts.append(f"{len(gpus)}x {' / '.join(names)}" + (f" ({memory:g} GiB)" if memory else "")
                     + f", driver {gpus[0].get('driver')}, compute {gpus[0].get('compute_capability')}"
                     + (f", CUDA {hw['cuda']}" if hw.get("cuda") else ""))
    else:
        parts.append("no GPU")
    if hw:
        parts.append(f"{hw.get('cpus_available')} of {hw.get('cpus')} CPUs ({hw.get('cpu_model') or '?'})")
    threads = manifest.get("cpu_threads")
    if isinstance(threads, Mapping) and "threads" in threads:
        parts.append(f"torch threads {threads['threads']}")
    engine = manifest.get("engine") or {}
    if engine:
        parts.append(", ".join(f"{k} {engine[k]}" for k in ("device", "dtype", "attn_implementation", "cache", "quantization",
                                                            "batch_size", "processor_device") if engine.get(k) is not None))
    return "; ".join(parts) if hw else "hardware not recorded (a run from before vlm-bench recorded it)"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
