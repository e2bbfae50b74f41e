"""Scorers: pure functions ``(prediction, answer, options, **args) -> Score``.

An empty prediction never scores as correct, whatever the scorer.
"""

from __future__ import annotations

import math
import re
import string
from typing import Any, Callable, Mapping, Sequence

from vlm_bench.types import Score

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower case, punctuation dropped, whitespace folded."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def _empty(prediction: str | None) -> bool:
    return prediction is None or not prediction.strip()


def score_exact(prediction: str, answer: str, options: Sequence[str] = (), alternatives: Sequence[str] = ()) -> Score:
    ok = not _empty(prediction) and prediction.strip() in {a.strip() for a in (answer, *alternatives)}
    return Score("exact", float(ok), ok, prediction.strip() if prediction else None)


def score_normalized(
    prediction: str, answer: str, options: Sequence[str] = (), alternatives: Sequence[str] = ()
) -> Score:
    got = normalize_text(prediction or "")
    ok = bool(got) and got in {normalize_text(a) for a in (answer, *alternatives)}
    return Score("normalized", float(ok), ok, got or None)


def score_contains(
    prediction: str, answer: str, options: Sequence[str] = (), alternatives: Sequence[str] = ()
) -> Score:
    """The normalized answer (or an alternative) appears in the normalized prediction as whole words."""
    got = normalize_text(prediction or "")
    wants = [w for w in (normalize_text(a) for a in (answer, *alternatives)) if w]
    ok = bool(got) and any(f" {w} " in f" {got} " for w in wants)
    return Score("contains", float(ok), ok, got or None)


# ---------------------------------------------------------------- numbers

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def extract_number(text: str) -> float | None:
    """The last number in ``text`` (answers usually end with the result)."""
    found = _NUMBER.findall(text or "")
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def score_numeric(
    prediction: str,
    answer: str,
    options: Sequence[str] = (),
    abs_tol: float = 1e-6,
    rel_tol: float = 0.0,
) -> Score:
    want = extract_number(answer)
    if want is None:
        raise ValueError(f"numeric scorer: answer {answer!r} holds no number")
    got = None if _empty(prediction) else extract_number(prediction)
    ok = got is not None and math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)
    return Score("numeric", float(ok), ok, None if got is None else repr(got))


# ---------------------------------------------------------------- multiple choice

_LETTERS = string.ascii_uppercase
# "answer is B", "Answer: (C)", "best option: A", "the correct choice would be D"
_CUE = re.compile(
    r"(?:answer|option|choice)s?\s*(?:is|would be|should be|will be|=)?\s*[:\-]?\s*"
    r"(?:option\s+|choice\s+|letter\s+)?\(?\s*([A-Z])\s*\)?(?![A-Za-z])",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^\s*[\(\[]?\s*([A-Z])\s*(?:[\)\]\.:,]|$)(?!\w)")
_PAREN = re.compile(r"\(([A-Z])\)")
_BARE = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])")


def option_letters(options: Sequence[str]) -> str:
    return _LETTERS[: len(options)] if options else _LETTERS[:8]


def strip_option_label(option: str) -> str:
    """'A. dog' / '(A) dog' / 'A) dog' -> 'dog'."""
    return re.sub(r"^\s*\(?[A-Z][\.\):]\s*|^\s*\([A-Z]\)\s*", "", option).strip()


def extract_choice(prediction: str, options: Sequence[str] = ()) -> str | None:
    """The option letter a free-form answer commits to, or None when it commits to none
    or to several. Handles "B", "(B)", "B. dog", "The answer is B.", "Best option: (C) dog",
    "According to the video, the answer is B." and an answer that repeats one option's text."""
    if _empty(prediction):
        return None
    valid = option_letters(options)
    text = prediction.strip()

    alone = re.fullmatch(r"[\(\[]?([A-Za-z])[\)\]]?\.?", text)
    if alone:
        return alone.group(1).upper() if alone.group(1).upper() in valid else None

    m = _LEADING.match(text)
    if m and m.group(1) in valid and not _is_article(text, m.start(1)):
        return m.group(1)

    cued = [g for g in _CUE.findall(text) if g.upper() in valid and g.isupper()]
    if cued:
        return cued[-1]

    paren = {g for g in _PAREN.findall(text) if g in valid}
    if len(paren) == 1:
        return paren.pop()

    bare = {m.group(1) for m in _BARE.finditer(text) if m.group(1) in valid and not _is_article(text, m.start(1))}
    if len(bare) == 1:
        return bare.pop()

    if options:
        said = f" {normalize_text(text)} "
        hits = [
            valid[i]
            for i, opt in enumerate(options)
            if (body := normalize_text(strip_option_label(opt))) and f" {body} " in said
        ]
        if len(hits) == 1:
            return hits[0]
    return None


_NOT_AFTER_ARTICLE = {"or", "and", "is", "was", "seems", "looks", "fits", "matches", "because", "would", "should"}


def _is_article(text: str, pos: int) -> bool:
    """'A dog runs' uses A (or I) as a word, not as an option letter; 'A or B' does not."""
    if text[pos] not in "AI":
        return False
    m = re.match(r"\s+([a-z]+)", text[pos + 1 :])
    return bool(m) and m.group(1) not in _NOT_AFTER_ARTICLE


def answer_letter(answer: str, options: Sequence[str] = ()) -> str:
    """The letter the reference answer names: a letter ("B", "(B)") or one option's text."""
    text = answer.strip()
    m = re.fullmatch(r"\(?([A-Z])\)?[\.\)]?", text)
    if m:
        return m.group(1)
    for i, opt in enumerate(options):
        if normalize_text(strip_option_label(opt)) == normalize_text(text) or opt.strip() == text:
            return _LETTERS[i]
    raise ValueError(f"mc scorer: answer {answer!r} is neither a letter nor one of the options")


def score_mc(prediction: str, answer: str, options: Sequence[str] = ()) -> Score:
    want = answer_letter(answer, options)
    got = extract_choice(prediction, options)
    ok = got is not None and got == want
    return Score("mc", float(ok), ok, got)


# ---------------------------------------------------------------- yes / no

_YESNO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def extract_yesno(prediction: str) -> str | None:
    """'Yes.', 'No, it does not.', 'The answer is yes': the first yes/no word; None when
    there is none, or when the answer says both before committing ('yes or no')."""
    words = [w.lower() for w in _YESNO.findall(prediction or "")]
    if not words or (len(words) > 1 and words[0] != words[1] and re.search(r"\byes\s+or\s+no\b", prediction, re.I)):
        return None
    return words[0]


def score_yesno(prediction: str, answer: str, options: Sequence[str] = ()) -> Score:
    want = normalize_text(answer)
    if want not in ("yes", "no"):
        raise ValueError(f"yesno scorer: answer {answer!r} is neither yes nor no")
    got = extract_yesno(prediction)
    ok = got is not None and got == want
    return Score("yesno", float(ok), ok, got)


# ---------------------------------------------------------------- registry

SCORERS: Mapping[str, Callable[..., Score]] = {
    "exact": score_exact,
    "normalized": score_normalized,
    "mc": score_mc,
    "contains": score_contains,
    "numeric": score_numeric,
    "yesno": score_yesno,
}
SCORER_ARGS: Mapping[str, tuple[str, ...]] = {
    "numeric": ("abs_tol", "rel_tol"),
    "exact": ("alternatives",),
    "normalized": ("alternatives",),
    "contains": ("alternatives",),
}


def check_scorer(name: str, args: Mapping[str, Any], answer: str | None, options: Sequence[str]) -> None:
    """Raise ValueError when an item's scorer cannot score it (checked at load time)."""
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; choose one of {', '.join(SCORERS)}")
    unknown = set(args) - set(SCORER_ARGS.get(name, ()))
    if unknown:
        raise ValueError(f"scorer {name!r} takes no argument {sorted(unknown)[0]!r}")
    if answer is None:
        return
    if name == "mc":
        answer_letter(answer, options)
    elif name == "numeric" and extract_number(answer) is None:
        raise ValueError(f"numeric scorer: answer {answer!r} holds no number")
    elif name == "yesno" and normalize_text(answer) not in ("yes", "no"):
        raise ValueError(f"yesno scorer: answer {answer!r} is neither yes nor no")


def score_prediction(
    name: str, prediction: str, answer: str, options: Sequence[str] = (), args: Mapping[str, Any] | None = None
) -> Score:
    return SCORERS[name](prediction or "", answer, options, **(args or {}))
