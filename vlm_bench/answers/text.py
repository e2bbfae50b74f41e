"""Text preparation shared by the extractors: what a response reads as once its markup,
reasoning blocks and full-width forms are set aside, and the echo of a question."""

from __future__ import annotations

import re
import string
import unicodedata

LETTERS = string.ascii_uppercase

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_HEADING = re.compile(r"(?m)^[ \t]*#{1,6}[ \t]*(.*?)[ \t:]*$")
_EMPHASIS = re.compile(r"\*\*|__|\*|`+|~~")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u3002": ".", "\u3001": ","})


def prepare(text: str | None) -> str:
    """The response as the extractors read it: full-width forms folded (NFKC: ``（Ｂ）`` ->
    ``(B)``), reasoning inside ``<think>`` dropped, markdown emphasis and heading marks
    removed (a heading "Answer" reads as "Answer:")."""
    text = unicodedata.normalize("NFKC", text or "").translate(_QUOTES)
    if "</think>" in text:
        text = _THINK.sub(" ", text)
    text = _HEADING.sub(lambda m: f"{m.group(1)}:" if m.group(1) else "", text)
    return _EMPHASIS.sub("", text).strip()


# A letter, a number or a word ends here: no letter, digit or apostrophe follows.
END = r"(?![A-Za-z0-9'])"
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower case, punctuation dropped, whitespace folded."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()




# A question repeated before the answer ("Is the ball red? Yes.", "Q: How many? 4"), and
# the question's own "yes or no" ("Yes or no: no"): never part of the answer.
_QUESTION_ECHO = re.compile(r"^\s*(?:(?:question|q)\s*[:.]\s*)?[^?\n]{2,240}\?\s*(?:(?:answer|a)\s*[:.]\s*)?", re.I)
_YES_OR_NO = re.compile(r"\b(?:yes\s*(?:or|/)\s*no|no\s*(?:or|/)\s*yes)\b\s*[?:.]?", re.I)


def strip_echo(text: str) -> str:
    """``text`` without a question it repeats before answering, and without the question's
    "yes or no"; unchanged where nothing would be left."""
    kept = _YES_OR_NO.sub(" ", text)
    echo = _QUESTION_ECHO.match(kept)
    if echo and kept[echo.end():].strip():
        kept = kept[echo.end():]
    kept = kept.strip(" \t\n:")
    return kept
