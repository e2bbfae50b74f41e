"""A rating on a 1-to-N scale, as a judge protocol asks for one (VMEvalKit's
``{"solution_correctness_score": <1-5>, "explanation": ...}``): the number under a
``*score`` or ``rating`` key of the JSON object in the response, else one stated as
"score: 4", "4/5" or "rated 4", else a bare number that opens the response. Two different
ratings, or none within the scale, give no answer."""

from __future__ import annotations

import json
import re

_KEYED = re.compile(r'"?\b(?:[a-z_]*score|rating)"?\s*[:=]\s*"?(\d+(?:\.\d+)?)', re.IGNORECASE)
_OUT_OF = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+)\b", re.IGNORECASE)
_RATED = re.compile(r"\b(?:rate|rated|rating|score|scored|give|gives)\s+(?:it\s+|this\s+)?(?:a\s+|an\s+)?(\d+(?:\.\d+)?)\b", re.IGNORECASE)
_OPENING = re.compile(r"^\W*(\d+(?:\.\d+)?)\s*(?:$|[.\n,:)])")


def _json_rating(text: str) -> list[float]:
    found = []
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            obj = json.loads(match.group())
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key, value in obj.items():
                if (key.lower().endswith("score") or key.lower() == "rating") and isinstance(value, (int, float, str)):
                    try:
                        found.append(float(value))
                    except ValueError:
                        pass
    return found


def extract_rating(text: str | None, scale: int = 5) -> int | None:
    if not text or not text.strip():
        return None
    for candidates in (
        _json_rating(text),
        [float(m.group(1)) for m in _KEYED.finditer(text)],
        [float(m.group(1)) for m in _OUT_OF.finditer(text) if int(m.group(2)) == scale],
        [float(m.group(1)) for m in _RATED.finditer(text)],
        [float(m.group(1)) for m in _OPENING.finditer(text.strip())],
    ):
        values = {v for v in candidates if 1 <= v <= scale and v == int(v)}
        if len(values) == 1:
            return int(values.pop())
        if len(values) > 1:
            return None  # two ratings: no answer
    return None
