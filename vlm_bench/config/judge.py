"""The judge model's config (--judge-model and friends): which model reads the answers the
extraction rules cannot, where it runs, and where its replies are cached."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JudgeConfig:
    model: str  # a model id on --judge-base-url, or a catalog name / model YAML run here
    base_url: str | None = None
    api_key_env: str | None = None
    cache_dir: str | None = None  # default: $VLM_BENCH_CACHE/judge

    @property
    def name(self) -> str:
        """Who judged, as records say it (the URL without credentials, where there is one)."""
        from vlm_bench.utils.http import redact_url

        return f"{self.model} @ {redact_url(self.base_url)}" if self.base_url else self.model
