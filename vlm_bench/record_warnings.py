"""What a reader of an item's record must know about it (the record's ``warnings``): a
response cut to the stored size, an answer longer than its token limit allows, a video that
decoded short of its claimed length."""

from __future__ import annotations

from vlm_bench.config import RunConfig
from vlm_bench.types import DecodeConfig, Generation, VideoInput

CHARS_PER_TOKEN = 64  # no tokenizer's token is longer: an answer past max_new_tokens x this ignored max_tokens


def record_warnings(run: RunConfig, media: VideoInput | None, gen: Generation | None, decode: DecodeConfig) -> dict[str, str]:
    """What a reader of the record must know: the response was cut to the stored size, the
    answer is longer than its token limit allows, the video decoded short of its length."""
    out = {}
    if gen is not None:
        raw = gen.raw_text if gen.raw_text is not None else gen.text
        size = max(len(raw), len(gen.text))
        if size > run.max_response_chars:
            out["response_cut"] = (f"the response had {size:,} characters; the record keeps the first "
                                   f"{run.max_response_chars:,} (--max-response-kb)")
        if len(raw) > decode.max_new_tokens * CHARS_PER_TOKEN:
            out["response_overlong"] = (f"{len(raw):,} characters for max_new_tokens {decode.max_new_tokens}: more than "
                                        "any tokenizer gives; the engine or server did not honour the token limit")
    claimed = media.selection.num_frames_claimed if media is not None else None
    if claimed:
        out["video_short"] = (f"the container claims {claimed} frames and {media.selection.num_frames_total} decode "
                              f"({100 * media.selection.num_frames_total / claimed:.0f}%): a cut or damaged file; the "
                              "frames were sampled from the part that decodes")
    return out
