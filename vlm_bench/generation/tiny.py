"""Tiny image-to-video pipelines with random weights, built locally (no hub, no download)
and saved with ``save_pretrained``, so the diffusers engine loads them through the same
``from_pretrained`` path as a real checkpoint:

- ``tiny-svd``: Stable Video Diffusion (spatio-temporal UNet, temporal-decoder VAE, CLIP
  image encoder); no text.
- ``tiny-ltx-video``: LTX-Video (transformer, causal video VAE, T5 encoder) with a T5-style
  unigram tokenizer trained here; text-conditioned. The same folder also loads as
  ``LTXConditionPipeline`` (the 0.9.8 13B distilled entry's pipeline).
- ``tiny-wan``: Wan 2.1 I2V (transformer, Wan VAE, T5 encoder, CLIP image encoder);
  text-conditioned.

Their videos are noise; they prove the code path, never quality. Sizes follow diffusers'
own fast tests. ``python -m vlm_bench.generation.tiny NAME OUT_DIR`` writes one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from vlm_bench.registry.tiny_internvl import ensure_local_build

BUILD_VERSION = "1"
_CORPUS = [
    "Move each colored shape card from the left staging area into its matching outline on the right.",
    "Keep the camera fixed in the top-down view, move only one card at a time.",
    "Solve this challenging Sudoku puzzle. Complete this sliding puzzle with the empty space at the bottom-right.",
    "Rotate the camera around the sculpture on the table; a chess position, find checkmate in one move.",
    "Navigate the green dot through the maze to the red flag without crossing walls.",
    "Create a smooth video showing the rotation, the agent's back, head and posture.",
]


def build_t5_tokenizer():
    """A T5-style tokenizer (unigram, metaspace, ``</s>`` appended) trained on a few
    VMEvalKit-like sentences."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=256, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))])
    cls = getattr(transformers, "T5TokenizerFast", None) or transformers.T5Tokenizer
    return cls(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0)


def _t5_encoder(vocab: int, umt5: bool = False):
    """T5 (LTX-Video) or UMT5 (Wan) text encoder, 32 wide, one layer."""
    import transformers

    prefix = "UMT5" if umt5 else "T5"
    config = getattr(transformers, f"{prefix}Config")(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=1,
                                                      num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return getattr(transformers, f"{prefix}EncoderModel")(config)


def _clip_vision(hidden: int, image_size: int, patch: int, projection: bool):
    """SVD takes CLIP with its projection; Wan 2.1 the bare vision tower."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=hidden, projection_dim=hidden, num_hidden_layers=2, num_attention_heads=2,
                              image_size=image_size, intermediate_size=2 * hidden, patch_size=patch)
    return (CLIPVisionModelWithProjection if projection else CLIPVisionModel)(config)


def build_tiny_svd(out: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=8, projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32, transformer_layers_per_block=1,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
        timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )
    vae = AutoencoderKLTemporalDecoder(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                                       down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], latent_channels=4)
    # SVD resizes the first frame to 224 for its image encoder; 32 px patches keep it to 49 tokens.
    image_encoder = _clip_vision(32, 224, 32, projection=True)
    pipe = StableVideoDiffusionPipeline(unet=unet, image_encoder=image_encoder, scheduler=scheduler, vae=vae,
                                        feature_extractor=CLIPImageProcessor(crop_size=224, size=224))
    pipe.save_pretrained(out)
    return out


def build_tiny_ltx(out: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXImageToVideoPipeline,
        LTXVideoTransformer3DModel,
    )

    tokenizer = build_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=1,
        patch_size_t=1, encoder_causal=True, decoder_causal=False,
    )
    pipe = LTXImageToVideoPipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
                                   text_encoder=_t5_encoder(len(tokenizer)), tokenizer=tokenizer)
    pipe.save_pretrained(out)
    return out


def build_tiny_wan(out: Path, seed: int = 0) -> Path:
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor

    tokenizer = build_t5_tokenizer()
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                        in_channels=36, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
                                        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                        rope_max_seq_len=32, image_dim=4)
    pipe = WanImageToVideoPipeline(
        transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=_t5_encoder(len(tokenizer), umt5=True), tokenizer=tokenizer,
        image_encoder=_clip_vision(4, 32, 1, projection=False), image_processor=CLIPImageProcessor(crop_size=32, size=32),
    )
    pipe.save_pretrained(out)
    return out


BUILDERS = {"tiny-svd": build_tiny_svd, "tiny-ltx-video": build_tiny_ltx, "tiny-wan": build_tiny_wan}


def _ensure(name: str):
    def ensure(cache_dir: str | os.PathLike | None = None, seed: int = 0) -> Path:
        def build(out: Path, s: int) -> None:
            BUILDERS[name](out, s)
            (out / "vlm_bench_build.json").write_text(json.dumps({"builder": name, "version": BUILD_VERSION, "seed": s}))

        return ensure_local_build(name, BUILD_VERSION, build, cache_dir, seed)

    return ensure


LOCAL_BUILDS = {name: _ensure(name) for name in BUILDERS}


if __name__ == "__main__":
    print(BUILDERS[sys.argv[1]](Path(sys.argv[2]), 0))
