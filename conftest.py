"""Repository-level pytest setup. The vlm-bench plugin itself is registered through the
``pytest11`` entry point (see pyproject.toml), so ``pytest evals`` works from anywhere."""

import os

# Tiny models on a 2-core machine run faster and steadier on one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
