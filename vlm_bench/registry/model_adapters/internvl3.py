"""InternVL3 (1B..78B): family defaults for video QA."""

from __future__ import annotations

from typing import Any

from vlm_bench.config import ModelConfig
from vlm_bench.registry.model_adapters.base import ModelAdapter

# The system message InternVL3's own chat() always sends (model card recipe); the native
# and openai engines send it unless the model YAML sets system_prompt ("" for none).
INTERNVL3_SYSTEM_PROMPT = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
)


def system_prompt(model_cfg: ModelConfig) -> str | None:
    """The system message an engine sends: the model YAML's ``system_prompt`` ("" for
    none), else InternVL3's own for that family."""
    if model_cfg.system_prompt is not None:
        return model_cfg.system_prompt or None
    return INTERNVL3_SYSTEM_PROMPT if model_cfg.family == "internvl3" else None


class InternVL3Adapter(ModelAdapter):
    family = "internvl3"

    def default_decode(self) -> dict[str, Any]:
        # Long-form answers must not be cut: 1024 new tokens, greedy, no stop strings.
        return {"temperature": 0.0, "max_new_tokens": 1024, "stop": ()}
