"""Multiple choice: the option letter a response commits to."""

from __future__ import annotations

import re
from typing import Sequence

from vlm_bench.answers.text import END as _END
from vlm_bench.answers.text import LETTERS, normalize_text, prepare

# Words after "A"/"a"/"I" that keep it an option letter ("A is correct", "A because ...");
# any other lower-case word makes it an article or a pronoun ("A dog runs", "I think").
_LETTER_FOLLOWERS = {
    "is", "was", "seems", "looks", "fits", "matches", "would", "should", "could", "might", "or", "and",
    "but", "because", "since", "as", "which", "best", "fully", "only", "here", "then", "so", "too", "rather",
    "not", "instead",
}
_NEGATION_BEFORE = re.compile(
    r"(?:\bnot|n't|\bnever|\bexcept|\brather\s+than|\binstead\s+of|\bother\s+than|\bexcluding|\beliminate|"
    r"\brule\s+out|\bnor|\bneither|\bno|不是|不选|排除)"
    r"[\s,:]*(?:(?:the\s+)?(?:option|choice|answer|letter)\s+)?[\(\[]?\s*$",
    re.I,
)
_NEGATION_AFTER = re.compile(
    r"^\s*[\)\]]?\s*(?:option\s+|choice\s+)?(?:is|are|was|seems|looks|would\s+be|can\s+be|could\s+be|must\s+be)?\s*"
    r"(?:\bnot\b|n't|wrong|incorrect|false|unlikely|impossible|ruled\s+out|eliminated|excluded|a\s+distractor|"
    r"can\s+be\s+ruled|不对|错误|不正确)",
    re.I,
)


def _negated(text: str, start: int, end: int) -> bool:
    return bool(_NEGATION_BEFORE.search(text[max(0, start - 30) : start]) or _NEGATION_AFTER.match(text[end : end + 40]))


# Cues that introduce the committed answer. Each is followed by the letter pattern below.
_MC_CUES = (
    # the answer is / Answer: / best option: / the correct choice would be / my final answer =
    r"\b(?:(?:the|my|final|correct|right|best|most\s+likely|most\s+appropriate|only|true)\s+){0,3}"
    r"(?:answer|option|choice)s?\s*(?:(?:is|would\s+be|should\s+be|will\s+be|must\s+be|seems\s+to\s+be|"
    r"appears\s+to\s+be|=)\s*:?|:|-|–|—)",
    r"\bI(?:\s+would|'d|\s+will|'ll)?\s+(?:choose|select|pick|go\s+with|say)\b[\s:]*",
    r"\b(?:therefore|thus|hence|so|overall|in\s+conclusion|in\s+summary)\b\s*,?",
    r"(?:正确答案|最终答案|答案|选项)\s*(?:应该是|应为|是|为)?\s*:?",
    r"(?:我)?(?:选择|应选|选)",
)
_MC_WEAK_CUES = r"\b(?:it'?s|it\s+is|it\s+was|looks\s+like|seems\s+like|likely|probably|应该是|是)\s*"
_MC_LETTER = (
    r"\s*(?P<neg>(?:not|never)\s+)?(?:(?:the\s+)?(?:option|choice|letter|answer)\s+)?"
    r"[\(\[\{<]?\s*(?P<letter>[A-Za-z])" + _END
)
_MC_STATEMENTS = [re.compile(f"(?:{cue}){_MC_LETTER}", re.I) for cue in _MC_CUES]
_MC_WEAK = re.compile(f"(?:{_MC_WEAK_CUES})(?P<neg>not\\s+)?(?:option\\s+|choice\\s+)?[\\(\\[]?\\s*(?P<letter>[A-Za-z]){_END}", re.I)
# "B is correct", "(C) is the best answer", "Option D is right", "B是正确的"
_MC_CLAIM = re.compile(
    r"(?:\b(?:option|choice)\s+)?[\(\[]?(?P<letter>[A-Z])" + _END + r"[\)\]]?\s*"
    r"(?:(?:is|would\s+be|seems\s+to\s+be|appears\s+to\s+be)\s+(?:the\s+)?(?:most\s+)?"
    r"(?:correct|right|best|closest|likely|accurate|appropriate|answer|true)\b|(?:选项)?\s*(?:是)?(?:正确|对))"
)
_MC_MORE = re.compile(
    r"\s*[\)\]\}>.]?\s*(?:,|;|/|&|\+|\band\b|\bor\b|\bplus\b|和|或)\s*(?:(?:option|choice)\s+)?[\(\[]?\s*"
    r"(?P<letter>[A-Za-z])" + _END,
    re.I,
)
_MC_LEADING = re.compile(r"^\s*(?:(?:option|choice)\s+)?[\(\[\{<]?\s*(?P<letter>[A-Za-z])" + _END, re.I)
_MC_LINE_LABEL = re.compile(r"(?m)^\s*(?:(?:option|choice)\s+)?[\(\[]?([A-Z])(?:[\)\]\.:](?=\s|$)|\s*$)")
_MC_MENTION = re.compile(r"(?:\b(?:option|choice)\s+|\()?(?<![A-Za-z0-9'])(?P<letter>[A-Z])" + _END + r"\)?")
_NONE_OF_THEM = re.compile(
    r"\bnone\s+of\s+(?:the\s+)?(?:above|options|choices|answers|these|them|those)\b|"
    r"\bno\s+(?:correct|right|valid|matching|suitable)\s+(?:answer|option|choice)|\bneither\b.{0,80}?\bnor\b|"
    r"\ball\s+(?:of\s+the\s+)?options\s+are\s+(?:wrong|incorrect)|以上都不|都不(?:是|对|正确)",
    re.I | re.S,
)
_REFUSAL = re.compile(
    r"\b(?:cannot|can't|can\s+not|unable\s+to|not\s+able\s+to|impossible\s+to)\s+(?:be\s+)?"
    r"(?:determine|determined|tell|answer|say|identify|see|view|access|watch|know|decide|infer|choose)\b|"
    r"\bnot\s+(?:enough|sufficient)\s+(?:information|context|detail)|\bI'?m\s+sorry\b|\bsorry\b|"
    r"\bI\s+don'?t\s+know\b|\bnot\s+sure\b|\bunsure\b|\bno\s+video\b|\bnot\s+(?:possible|clear)\b|无法|不能确定|不确定|看不到",
    re.I,
)


def option_letters(options: Sequence[str]) -> str:
    return LETTERS[: len(options)] if options else LETTERS[:8]


def strip_option_label(option: str) -> str:
    """'A. dog' / '(A) dog' / 'A) dog' -> 'dog'."""
    return re.sub(r"^\s*\(?[A-Z][\.\):]\s*|^\s*\([A-Z]\)\s*", "", option).strip()


def _is_letter(text: str, pos: int, valid: str) -> bool:
    """Is the character at ``pos`` an option letter (not the article "a", the pronoun "I")?"""
    ch = text[pos]
    if ch.upper() not in valid:
        return False
    if ch in "AaI" or ch.islower():
        follow = re.match(r"\s+([A-Za-z]+)", text[pos + 1 : pos + 40])
        if follow and follow.group(1)[0].islower() and follow.group(1).lower() not in _LETTER_FOLLOWERS:
            return False
    return True


def _group(text: str, match: re.Match, valid: str) -> tuple[list[str], bool, int]:
    """The letter at ``match`` and the letters joined to it ("A and C", "(A) or (C)"),
    whether the group is negated ("not (B) or (C)", "A and C can be ruled out"), and
    where it ends."""
    pos, end = match.start("letter"), match.end("letter")
    letters = [text[pos].upper()]
    while (more := _MC_MORE.match(text, end)) is not None and _is_letter(text, more.start("letter"), valid):
        letters.append(text[more.start("letter")].upper())
        end = more.end("letter")
    negated = bool(match.groupdict().get("neg")) or _negated(text, pos, end)
    return letters, negated, end


def _letters_from(text: str, match: re.Match, valid: str) -> list[str] | None:
    """The letters a statement commits to, or None when it is negated or names no option
    letter."""
    if not _is_letter(text, match.start("letter"), valid):
        return None
    letters, negated, _ = _group(text, match, valid)
    return None if negated else letters


def _committed(letters: list[str]) -> str | None:
    return letters[0] if len(set(letters)) == 1 else None


def extract_choice(prediction: str | None, options: Sequence[str] = ()) -> str | None:
    """The option letter a free-form answer commits to, or None when it commits to none
    or to several. In order: the first explicit answer statement ("The answer is B",
    "Answer: (B)", "Best option: B", "B is correct", "I'd choose B", "so B", "答案是B");
    a response that opens with a letter ("B", "(B) dog", "b."); nothing when it says none
    of the options fit or refuses; a single letter it mentions and does not negate ("It
    is not A. It is C."); the one option whose text it repeats."""
    text = prepare(prediction)
    if not text:
        return None
    valid = option_letters(options)

    statements = []
    for pattern in (*_MC_STATEMENTS, _MC_WEAK, _MC_CLAIM):
        statements += [(m.start(), m) for m in pattern.finditer(text)]
    for _, match in sorted(statements, key=lambda s: s[0]):
        letters = _letters_from(text, match, valid)
        if letters:
            return _committed(letters)

    leading = _MC_LEADING.match(text)
    if leading and (letters := _letters_from(text, leading, valid)):
        labels = set(_MC_LINE_LABEL.findall(text)) & set(valid)
        return None if len(labels) > 1 else _committed(letters)

    if _said_none(text, options) or _REFUSAL.search(text):
        return None

    mentioned: set[str] = set()
    covered = 0
    for m in _MC_MENTION.finditer(text):
        if m.start("letter") < covered or not _is_letter(text, m.start("letter"), valid):
            continue
        letters, negated, covered = _group(text, m, valid)
        if not negated:
            mentioned.update(letters)
    if mentioned:
        return mentioned.pop() if len(mentioned) == 1 else None
    return _option_text(text, options, valid)


def _said_none(text: str, options: Sequence[str]) -> bool:
    """'None of the options fit' (unless that is itself one of the options)."""
    if any(_NONE_OF_THEM.search(strip_option_label(o)) for o in options):
        return False
    return bool(_NONE_OF_THEM.search(text))


_STOPWORDS = {"a", "an", "the", "is", "are", "was", "were", "be", "to", "of", "in", "on", "at", "it", "its", "and", "or",
              "with", "for", "from", "by", "this", "that", "he", "she", "they", "his", "her", "their", "s"}


def _option_text(text: str, options: Sequence[str], valid: str) -> str | None:
    """The one option whose text the response repeats, not negated (when one matched
    option's text contains another's, the longer one); failing that, the one option most
    of whose content words (at least two thirds) the response uses."""
    said = f" {normalize_text(text)} "
    bodies = {valid[i]: normalize_text(strip_option_label(o)) for i, o in enumerate(options) if i < len(valid)}
    hits: dict[str, str] = {}
    for letter, body in bodies.items():
        found = [m.start() for m in re.finditer(re.escape(f" {body} "), said)] if body else []
        if any(not re.search(r"\b(?:not|no|nt|isn t|never)\s*$", said[max(0, at - 12) : at]) for at in found):
            hits[letter] = body
    if hits:
        kept = [k for k, b in hits.items() if not any(b != o and f" {b} " in f" {o} " for o in hits.values())]
        return kept[0] if len(kept) == 1 else None
    words = set(said.split())
    coverage = {}
    for letter, body in bodies.items():
        content = set(body.split()) - _STOPWORDS
        if len(content) >= 2:
            coverage[letter] = len(content & words) / len(content)
    best = max(coverage.values(), default=0.0)
    leaders = [k for k, c in coverage.items() if c == best]
    return leaders[0] if best >= 2 / 3 and len(leaders) == 1 else None


def answer_letter(answer: str, options: Sequence[str] = ()) -> str:
    """The letter the reference answer names: a letter ("B", "(B)") or one option's text."""
    text = answer.strip()
    m = re.fullmatch(r"\(?([A-Z])\)?[\.\)]?", text)
    if m:
        return m.group(1)
    for i, opt in enumerate(options):
        if normalize_text(strip_option_label(opt)) == normalize_text(text) or opt.strip() == text:
            return LETTERS[i]
    raise ValueError(f"mc scorer: answer {answer!r} is neither a letter nor one of the options")


