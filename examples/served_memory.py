"""Memory per GPU for serving InternVL3-38B / 78B with tensor parallelism: the table in
docs/served.md, computed (not measured) from the catalog's model YAMLs and the language
models' configs.

    python examples/served_memory.py

Per card: bf16 weights / TP (both engines shard the language model; the vision tower's
share is small and counted in the weights), plus the KV cache of each item in flight,
also divided by TP (8 KV heads split over at most 8 ranks). One item of 32 frames is
32 x 256 visual tokens + ~300 prompt tokens + 1024 new tokens. Items that fit: what is
left of 90% of the card after the weights and a few GB of activations and CUDA context,
divided by one item's KV share. Estimates; measure on the cluster before trusting them.
"""

from __future__ import annotations

import sys

from vlm_bench.config import resolve_model

# Language-model shapes from the checkpoints' config.json (llm_config): InternVL3-38B is
# built on Qwen2.5-32B, InternVL3-78B on Qwen2.5-72B; both use 8 KV heads of 128.
LLM = {"internvl3_38b": {"label": "InternVL3-38B", "layers": 64, "kv_heads": 8, "head_dim": 128},
       "internvl3_78b": {"label": "InternVL3-78B", "layers": 80, "kv_heads": 8, "head_dim": 128}}
FRAMES, TOKENS_PER_FRAME, PROMPT_TOKENS, NEW_TOKENS = 32, 256, 300, 1024
USABLE, OVERHEAD_GB = 0.90, 4.0  # share of a card the engine may take; activations + CUDA context per card
CARDS_GB = (80, 141)  # H100/A100 80 GB, H200 141 GB


def kv_gb_per_item(name: str) -> float:
    shape = LLM[name]
    per_token = 2 * shape["layers"] * shape["kv_heads"] * shape["head_dim"] * 2  # K and V, bf16
    return per_token * (FRAMES * TOKENS_PER_FRAME + PROMPT_TOKENS + NEW_TOKENS) / 1e9


def rows() -> list[str]:
    out = [
        "| model | GPUs (TP) | weights per card | KV cache per item per card | items in flight, 80 GB cards | items in flight, 141 GB cards |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in LLM:
        weights, kv = float(resolve_model(name).info["bf16_weights_gb"]), kv_gb_per_item(name)
        for tp in (1, 2, 4, 8):
            fits = []
            for card in CARDS_GB:
                free = card * USABLE - OVERHEAD_GB - weights / tp
                fits.append(str(int(free // (kv / tp))) if free > 0 else "does not fit")
            out.append(f"| {LLM[name]['label']} | {tp} | {weights / tp:.1f} GB | {kv / tp:.2f} GB | {fits[0]} | {fits[1]} |")
    return out


if __name__ == "__main__":
    sys.stdout.write("\n".join(rows()) + "\n")
