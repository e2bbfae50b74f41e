"""Build a tiny InternVL3-architecture checkpoint locally: random weights, a byte-level BPE
tokenizer trained here, InternVL3's special tokens and chat template, image and video
processors; saved with ``save_pretrained`` so the native backend loads it exactly as it
loads ``OpenGVLab/InternVL3-<N>B-hf``. No hub, no download.

    python -m vlm_bench.registry.tiny_internvl /tmp/tiny-internvl3
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from vlm_bench.config import cache_root

# Bump when the build changes, so cached copies are rebuilt.
BUILD_VERSION = "2"
IMAGE_SIZE = 64
PATCH_SIZE = 8
DOWNSAMPLE = 0.5
IMAGE_SEQ_LENGTH = int((IMAGE_SIZE // PATCH_SIZE) ** 2 * DOWNSAMPLE**2)  # 16 tokens per tile
VOCAB_SIZE = 384
WEIGHT_STD = 0.3
# InternVL3's normalization (the model card's build_transform), not the CLIP default.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# Qwen2.5-based InternVL3's special tokens, in its order, then the -hf video token.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<quad>",
    "</quad>",
    "<ref>",
    "</ref>",
    "<box>",
    "</box>",
    "<video>",
]

# Same rendering as the InternVL3 -hf checkpoints' chat template: ChatML turns, an image
# as <IMG_CONTEXT> and a video as <video> (the processor expands both), no default system turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_CORPUS = [
    "The white square moves from the left to the right of the frame.",
    "Which colour fills the screen at the end of the video? The answer is blue.",
    "Answer with the option's letter from the given choices directly.",
    "Only give the best option. Best option: (A) (B) (C) (D) (E)",
    "How many yellow dots are there? There are 1 2 3 4 5 6 7 8 9 10 dots.",
    "Frame1: Frame2: Frame3: Frame4: Frame5: Frame6: Frame7: Frame8:",
    "red green blue white black yellow left right up down yes no sudoku chess maze puzzle",
    "The camera rotates by 90 180 270 360 degrees around the sculpture on the table.",
    "user assistant system question answer video image frame",
]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,  # ids 0..12, in InternVL3's order
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = Qwen2Tokenizer(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        start_image_token="<img>",
        end_image_token="</img>",
        context_image_token="<IMG_CONTEXT>",
        video_token="<video>",
        extra_special_tokens=SPECIAL_TOKENS[3:],
    )
    fast.add_special_tokens({"extra_special_tokens": SPECIAL_TOKENS[3:]}, replace_extra_special_tokens=False)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_internvl(output_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny checkpoint (model, tokenizer, processors) to ``output_dir``."""
    import torch
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    vocab = len(tokenizer)
    config = InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH_SIZE,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": vocab,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": True,
            "bos_token_id": None,
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=IMAGE_SEQ_LENGTH,
        downsample_ratio=DOWNSAMPLE,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    # The default 0.02 init makes a tiny model repeat one token whatever it sees; wider
    # weights make its (meaningless) answers depend on the frames and the prompt.
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0.0, WEIGHT_STD)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)

    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(
            size=size, crop_to_patches=True, max_patches=4, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
        ),
        video_processor=InternVLVideoProcessor(size=size, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD),
        tokenizer=tokenizer,
        image_seq_length=IMAGE_SEQ_LENGTH,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    (out / "vlm_bench_build.json").write_text(json.dumps({"builder": "tiny-internvl3", "version": BUILD_VERSION, "seed": seed}))
    return out


def ensure_local_build(
    name: str, version: str, build: Callable[[Path, int], Any], cache_dir: str | os.PathLike | None = None, seed: int = 0
) -> Path:
    """A cached local build (``build(folder, seed)`` writes it and ``vlm_bench_build.json``),
    built on first use (atomically, safe with parallel workers)."""
    root = Path(cache_dir) if cache_dir else cache_root()
    target = root / f"{name}-v{version}-seed{seed}"
    if (target / "vlm_bench_build.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        build(staging, seed)
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "vlm_bench_build.json").is_file():  # another worker won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def ensure_tiny_internvl(cache_dir: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """The cached tiny checkpoint, built on first use."""
    return ensure_local_build("tiny-internvl3", BUILD_VERSION, lambda out, s: build_tiny_internvl(out, seed=s), cache_dir, seed)


LOCAL_BUILDS = {"tiny-internvl3": ensure_tiny_internvl}


if __name__ == "__main__":
    print(build_tiny_internvl(sys.argv[1] if len(sys.argv) > 1 else cache_root() / "tiny-internvl3-manual"))
