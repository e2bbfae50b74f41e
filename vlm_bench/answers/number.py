"""Numbers: the count or value a response concludes with.

A reader takes the count a response states last as its answer ("4 in frame 2 and 5 in
frame 8, so 5 in total"; "Step 1 ... Result: 6"), over the numbers met along the way; a
response that opens with a bare answer and goes on to explain keeps it ("6 people.\\nIn
frame 3 there are 5."); a total after a list of counts is the answer ("two dogs and one
cat, 3 animals"). Two values offered as alternatives ("about 45, maybe 50", "3 or 4") are
no answer.
"""

from __future__ import annotations

import re

from vlm_bench.answers.text import prepare, strip_echo

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_VALUES = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_WORD_VALUES |= {"once": 1, "twice": 2, "thrice": 3, "dozen": 12, "hundred": 100}
_NUMBER_WORD = (
    r"(?:(?:" + "|".join(_TENS) + r")(?:[-\s](?:one|two|three|four|five|six|seven|eight|nine)(?![a-z]))?|"
    + "|".join(sorted(set(_WORD_VALUES) - set(_TENS), key=len, reverse=True)) + r")(?![a-z])"
)
_DIGITS = (
    r"[-+−]?(?:\d+(?:\.\d+)?[eE][-+−]?\d+|"  # scientific notation: 1e3, 2.5e-2
    r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d,.]\d)|\d+)(?:\.\d+)?)"
)
_NUMBER = re.compile(
    r"(?<![A-Za-z0-9_.])(?:(?P<digits>" + _DIGITS + r")(?![A-Za-z0-9_])|(?P<word>" + _NUMBER_WORD + r"))", re.I
)
# "one" as a pronoun: "the one on the left", "one of them", "no one".
_ONE_PRONOUN = re.compile(r"(?:\b(?:the|this|that|which|every|each|any|some|no|a|another)\s+one\b|\bone\s+(?:of|another|by)\b)", re.I)
_QUALIFIER = r"(?:about|approximately|around|roughly|exactly|only|just|precisely|nearly|almost|over|under)?\s*"
# An answer statement before the number: "the answer is", "Result:", "total =", "final count:", "=".
_STATED_BEFORE = re.compile(
    r"(?:\b(?:the\s+|my\s+|final\s+|correct\s+){0,3}answer\s*(?:is|would\s+be|will\s+be|:|=|-)|"
    r"\b(?:final\s+)?(?:count|total|result|number|sum|tally)\s*(?:is|was|would\s+be|of|:|=|-)|\bin\s+total\b|"
    r"\baltogether\b|\bin\s+all\b|\bequals?\b|=|\bmakes?\b|\bgives?\b|\bcomes\s+to\b|\badds\s+up\s+to\b|"
    r"\bconclusion\s*:|答案\s*(?:是|为|:)|共(?:有)?)\s*,?:?\s*" + _QUALIFIER + r"$",
    re.I,
)
# ... or after it: "5 in total", "10 fruits altogether", "3 is the final count".
_STATED_AFTER = re.compile(
    r"^(?:\s+[a-z]+){0,2}\s*(?:in\s+total|altogether|in\s+all|total\b)|"
    r"^\s*(?:is|was)\s+(?:the\s+)?(?:final\s+)?(?:answer|count|total|result)\b",
    re.I,
)
# A conclusion drawn along the way, before the number: "so", "there are", "I count".
_CONCLUDED = re.compile(
    r"(?:\btherefore\b|\bthus\b|\bhence\b|\bso\b|\bcount\s+is\b|\bthere\s+(?:are|is|were|was)\b|\bi\s+count(?:ed)?\b|"
    r"\bresult\s+is\b)\s*,?:?\s*" + _QUALIFIER + r"$",
    re.I,
)
_WEAK = re.compile(
    r"(?:\b(?:is|are|was|were|of|by|be|shows?|showed|reads|displays|needs|takes)\b)\s*" + _QUALIFIER + r"$", re.I
)
_ALTERNATIVE_AFTER = re.compile(
    r"^\s*(?:-|–|to|or|and|~|,?\s*(?:or\s+)?(?:maybe|perhaps|possibly))\s*(?:about\s+|around\s+)?(?:"
    + _DIGITS + r"|" + _NUMBER_WORD + r")",
    re.I,
)
_ALTERNATIVE_BEFORE = re.compile(
    r"(?:\bbetween|\bfrom|(?:" + _DIGITS + r"|" + _NUMBER_WORD + r")\s*(?:-|–|to|or|~|,?\s*(?:or\s+)?(?:maybe|perhaps|possibly)))"
    r"\s*(?:about\s+|around\s+)?$",
    re.I,
)
_NEGATED = re.compile(r"(?:\bnot|n't|\bnever|\brather\s+than|\binstead\s+of|\bother\s+than|不是)\s*" + _QUALIFIER + r"$", re.I)
# "3 red and 2 blue": a count of one kind next to a count of another commits to neither
_LISTED_AFTER = re.compile(r"^(?:\s+[a-z]+){1,2}\s*(?:,|\band\b|\bplus\b|&)\s*(?:" + _DIGITS + r"|" + _NUMBER_WORD + r")", re.I)
_LISTED_BEFORE = re.compile(r"(?:" + _DIGITS + r"|" + _NUMBER_WORD + r")(?:\s+[a-z]+){1,2}\s*(?:\band\b|\bplus\b|&)\s*$", re.I)
# A bare answer the response opens with: the number, at most three words, the sentence's end.
_BARE_OPENING = re.compile(r"^(?:\s+[^\s.!?\n]+){0,3}?\s*(?:[.!:\n]|$)")
_CLOCK = re.compile(r"\d:\d\d")


def _value(match: re.Match) -> float | None:
    if match.group("digits"):
        raw = re.sub(r"[,\s\u00a0\u202f]", "", match.group("digits")).replace("−", "-")
        try:
            return float(raw)
        except ValueError:
            return None
    words = re.split(r"[-\s]+", match.group("word").lower())
    return float(sum(_WORD_VALUES[w] for w in words))


def _numbers(text: str) -> list[tuple[re.Match, float]]:
    """The values a response states: not a pronoun "one", not a clock time ("0:02"), not
    negated ("not 8")."""
    pronouns = {m.end() - 3 for m in _ONE_PRONOUN.finditer(text)} | {m.start() for m in _ONE_PRONOUN.finditer(text)}
    out = []
    for m in _NUMBER.finditer(text):
        if m.group("word") and m.group("word").lower() == "one" and m.start() in pronouns:
            continue
        if m.group("word") and m.group("word").lower() in ("hundred", "dozen"):
            before = text[max(0, m.start() - 3) : m.start()].lower()
            if not before.endswith("a "):
                continue  # "three hundred" is beyond the words read; "a hundred" / "a dozen" is one value
        if _CLOCK.match(text, max(0, m.start() - 2)) or _CLOCK.match(text, m.end() - 1):
            continue
        value = _value(m)
        if value is not None and not _NEGATED.search(text[max(0, m.start() - 25) : m.start()]):
            out.append((m, value))
    return out


def _alternative(text: str, match: re.Match) -> bool:
    """One of two values offered ("between 3 and 4", "3 or 4", "5-6", "45, maybe 50")."""
    before = text[max(0, match.start() - 30) : match.start()]
    after = text[match.end() : match.end() + 40]
    return bool(_ALTERNATIVE_AFTER.match(after) or _ALTERNATIVE_BEFORE.search(before))


def _listed(text: str, match: re.Match) -> bool:
    """One count of a list ("3 red and 2 blue", "4 apples, 3 pears")."""
    return bool(_LISTED_AFTER.match(text[match.end() : match.end() + 80])
                or _LISTED_BEFORE.search(text[max(0, match.start() - 60) : match.start()]))


def _before(text: str, match: re.Match, pattern: re.Pattern, width: int = 40) -> bool:
    return bool(pattern.search(text[max(0, match.start() - width) : match.start()]))


def extract_number(prediction: str | None) -> float | None:
    """The number a response commits to, or None. In order: the last answer statement
    ("the answer is 7, not 8", "Result: 6", "total = 12", "5 in total", "3 is the final
    count"); a bare answer the response opens with ("6 people.", "3."); the last conclusion
    drawn along the way ("so 12", "there are 5"); the one value it states; a total after a
    list of counts ("two dogs and one cat, 3 animals"); the last number after
    "is/are/of/by". Digits ("1,024", "12 000", "3.5", "1e3") and number words ("three",
    "twenty-one", "twice") count; negated numbers ("not 8") and clock times never; two
    values offered as alternatives ("3 or 4", "about 45, maybe 50") are no answer."""
    text = strip_echo(prepare(prediction))
    found = _numbers(text) if text else []
    if not found:
        return None

    def pick(match: re.Match, value: float) -> float | None:
        return None if _alternative(text, match) or _listed(text, match) else value

    stated = [(m, v) for m, v in found
              if _before(text, m, _STATED_BEFORE) or _STATED_AFTER.match(text[m.end() : m.end() + 40])]
    if stated:
        return pick(*stated[-1])
    first, value = found[0]
    if not text[: first.start()].strip(" \t\n:-(\"'") and _BARE_OPENING.match(text[first.end():]):
        return pick(first, value)
    concluded = [(m, v) for m, v in found if _before(text, m, _CONCLUDED)]
    if concluded:
        return pick(*concluded[-1])
    if len({v for _, v in found}) == 1:
        return pick(first, value)
    listed = [i for i, (m, _) in enumerate(found) if _listed(text, m)]
    if listed and len({v for _, v in found[listed[-1] + 1:]}) == 1:
        return pick(*found[-1])
    weak = [(m, v) for m, v in found if _before(text, m, _WEAK, 30)]
    if weak:
        return pick(*weak[-1])
    return None
