"""int8 / int4 through bitsandbytes for the native engine: the config, the check that the
language model really was quantized, and bitsandbytes' noise on a CPU said once."""

from __future__ import annotations

import importlib.util
import logging

# Kept in full precision under int8/int4: quantizing InternViT and the projector hurts, and
# transformers matches these by full module name (a bare "vision_tower" is not enough).
QUANT_SKIP_MODULES = ["model.vision_tower", "model.multi_modal_projector", "lm_head"]


def bnb_config(quant: str):
    """int8: LLM.int8(); int4: NF4 with bf16 compute and double quantization. The vision
    tower, projector and lm_head stay unquantized."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError(
            f"--quant={quant} needs bitsandbytes: pip install 'vlm-bench[quant]' (or run with --quant=none)"
        )
    explain_bitsandbytes_kernels()
    try:
        importlib.import_module("bitsandbytes")
    except Exception as exc:  # a build without a backend for this machine
        raise RuntimeError(
            f"bitsandbytes cannot run here ({exc}); use a CUDA GPU for --quant={quant} or run with --quant=none"
        ) from exc
    import torch
    from transformers import BitsAndBytesConfig

    if quant == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=QUANT_SKIP_MODULES)
    if quant == "int4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
            llm_int8_skip_modules=QUANT_SKIP_MODULES,
        )
    raise RuntimeError(f"unknown quantization {quant!r}")


class _KernelNote(logging.Filter):
    """bitsandbytes' CPU backend warns that it cannot fetch its faster int4 kernel from the
    hub (kernels-community), in a long line that reads like an error: said once, plainly."""

    said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "gemm_4bit_forward" not in str(record.msg):
            return True
        if type(self).said:
            return False
        type(self).said = True
        record.msg, record.args = ("bitsandbytes: its faster CPU int4 kernel comes from the Hugging Face hub, which "
                                   "is not reachable here; it uses its own CPU code instead (correct, slower)"), ()
        return True


def explain_bitsandbytes_kernels() -> None:
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _KernelNote) for f in logger.filters):
        logger.addFilter(_KernelNote())


def quantized_linear_names(model) -> tuple[list[str], list[str]]:
    """(bitsandbytes layers, plain nn.Linear layers) by module name."""
    import bitsandbytes as bnb
    import torch

    quantized, plain = [], []
    for name, module in model.named_modules():
        if isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
            quantized.append(name)
        elif isinstance(module, torch.nn.Linear):
            plain.append(name)
    return quantized, plain


def check_quantized(model, quant: str) -> None:
    """Never fall back to full precision silently."""
    quantized, _ = quantized_linear_names(model)
    if not any(".language_model." in n for n in quantized):
        raise RuntimeError(f"--quant={quant} was requested but no language-model layer was quantized")
