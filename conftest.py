"""Repository-level pytest setup. The vlm-bench plugin itself is registered through the
``pytest11`` entry point (see pyproject.toml), so ``pytest evals`` works from anywhere."""
