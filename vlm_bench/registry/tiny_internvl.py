"""Build InternVL3-architecture checkpoints locally: random weights, a byte-level BPE
tokenizer trained here, InternVL3's special tokens and chat template, image and video
processors; saved with ``save_pretrained`` so the native backend loads them exactly as it
loads ``OpenGVLab/InternVL3-<N>B-hf``. No hub, no download. Two shapes: ``tiny-internvl3``
(about 140,000 parameters, for tests on any CPU) and ``internvl3-1b-shape`` (InternVL3-1B's
dimensions: InternViT-300M at 448 px and Qwen2.5-0.5B, to measure speed at a real size).

    python -m vlm_bench.registry.tiny_internvl /tmp/tiny-internvl3 [tiny-internvl3|internvl3-1b-shape]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from vlm_bench.config import cache_root

# Bump when the build changes, so cached copies are rebuilt.
BUILD_VERSION = "2"
IMAGE_SIZE = 64
PATCH_SIZE = 8
DOWNSAMPLE = 0.5
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


@dataclass(frozen=True)
class InternVLShape:
    """The dimensions of a locally built InternVL3: vision tower, language model, tiles."""

    name: str
    version: str  # bump when the build changes, so cached copies are rebuilt
    image_size: int
    patch_size: int
    vision: Mapping[str, int]  # InternVLVisionConfig: hidden_size, intermediate_size, layers, heads
    text: Mapping[str, int]  # Qwen2Config: hidden_size, intermediate_size, layers, heads, kv heads
    vocab_size: int | None  # the language model's vocabulary (None: the tokenizer's); ids past the tokenizer decode to nothing
    weight_std: float | None  # None: transformers' own initialisation
    dtype: str = "float32"  # as saved

    @property
    def image_seq_length(self) -> int:
        return int((self.image_size // self.patch_size) ** 2 * DOWNSAMPLE**2)


TINY = InternVLShape(
    name="tiny-internvl3", version=BUILD_VERSION, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE,
    vision={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
    text={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "max_position_embeddings": 4096},
    vocab_size=None,
    # The default 0.02 init makes a tiny model repeat one token whatever it sees; wider
    # weights make its (meaningless) answers depend on the frames and the prompt.
    weight_std=WEIGHT_STD,
)
# InternVL3-1B: InternViT-300M-448px-V2.5 and Qwen2.5-0.5B (its config.json's dimensions).
INTERNVL3_1B_SHAPE = InternVLShape(
    name="internvl3-1b-shape", version="1", image_size=448, patch_size=14,
    vision={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16},
    text={"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
          "num_key_value_heads": 2, "max_position_embeddings": 32768},
    vocab_size=151674,
    weight_std=None,
    dtype="bfloat16",
)


def internvl_config(shape: InternVLShape, tokenizer: Any):
    from transformers import InternVLConfig

    return InternVLConfig(
        vision_config={**shape.vision, "image_size": shape.image_size, "patch_size": shape.patch_size},
        text_config={
            "model_type": "qwen2",
            "vocab_size": shape.vocab_size or len(tokenizer),
            **shape.text,
            "tie_word_embeddings": True,
            "bos_token_id": None,
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=shape.image_seq_length,
        downsample_ratio=DOWNSAMPLE,
    )


def build_internvl(output_dir: str | os.PathLike, shape: InternVLShape = TINY, seed: int = 0) -> Path:
    """Write a checkpoint of ``shape`` (model, tokenizer, processors) to ``output_dir``;
    its weights are made on a GPU where there is one (a 1B shape takes seconds there)."""
    import torch
    from transformers import GotOcr2ImageProcessor, InternVLForConditionalGeneration, InternVLProcessor, InternVLVideoProcessor

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = internvl_config(shape, tokenizer)
    torch.manual_seed(seed)
    with torch.device("cuda" if shape.weight_std is None and torch.cuda.is_available() else "cpu"):
        model = InternVLForConditionalGeneration(config).eval()
    if shape.weight_std is not None:
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() > 1:
                    param.normal_(0.0, shape.weight_std)
    model = model.to(getattr(torch, shape.dtype))
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)

    size = {"height": shape.image_size, "width": shape.image_size}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(
            size=size, crop_to_patches=True, max_patches=4, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
        ),
        video_processor=InternVLVideoProcessor(size=size, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD),
        tokenizer=tokenizer,
        image_seq_length=shape.image_seq_length,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    (out / "vlm_bench_build.json").write_text(json.dumps({"builder": shape.name, "version": shape.version, "seed": seed}))
    return out


def build_tiny_internvl(output_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny checkpoint (model, tokenizer, processors) to ``output_dir``."""
    return build_internvl(output_dir, TINY, seed)


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
    return ensure_shape(TINY, cache_dir, seed)


def ensure_shape(shape: InternVLShape, cache_dir: str | os.PathLike | None = None, seed: int = 0) -> Path:
    return ensure_local_build(shape.name, shape.version, lambda out, s: build_internvl(out, shape, seed=s), cache_dir, seed)


SHAPES = {shape.name: shape for shape in (TINY, INTERNVL3_1B_SHAPE)}
LOCAL_BUILDS = {name: (lambda shape: lambda cache_dir=None, seed=0: ensure_shape(shape, cache_dir, seed))(shape)
                for name, shape in SHAPES.items()}


if __name__ == "__main__":
    name = sys.argv[2] if len(sys.argv) > 2 else TINY.name
    print(build_internvl(sys.argv[1] if len(sys.argv) > 1 else cache_root() / f"{name}-manual", SHAPES[name]))
