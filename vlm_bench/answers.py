"""What counts as an answer: the option letter, yes/no or number a free-form response
commits to (docs/scoring.md states the rules; tests/answer_corpus/ holds the labelled
responses they are checked on).

Common to all three: an explicit answer statement ("the answer is", "Answer:", "so ...")
wins, the first one when there are several; otherwise the response's opening commits;
negated mentions ("not A", "not 8") never count; a response that commits to two answers,
refuses, or says none of the options fit has no answer (``None``).
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Sequence

LETTERS = string.ascii_uppercase

# ---------------------------------------------------------------- text preparation

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
_END = r"(?![A-Za-z0-9'])"
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


# ---------------------------------------------------------------- multiple choice

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


_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower case, punctuation dropped, whitespace folded."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


# ---------------------------------------------------------------- yes / no

_YES = ("absolutely", "affirmative", "certainly", "correct", "definitely", "indeed", "of course", "sure", "true",
        "yeah", "yep", "yup", "yes", "是的", "对的", "正确", "是", "对")
_NO = ("definitely not", "certainly not", "absolutely not", "not really", "not at all", "negative", "incorrect",
       "false", "nope", "nah", "no", "不是", "不对", "没有", "否", "不")
_YESNO_WORDS = sorted(((w, "yes") for w in _YES), key=lambda p: -len(p[0])) + sorted(
    ((w, "no") for w in _NO), key=lambda p: -len(p[0])
)
_YESNO_ALT = "|".join(re.escape(w) for w, _ in sorted(_YESNO_WORDS, key=lambda p: -len(p[0])))
_YESNO_VALUE = dict(_YESNO_WORDS)
# Words that keep a leading "no" an answer ("No, it does not", "No it doesn't");
# any other word makes it a determiner ("No change is visible").
_AFTER_NO = {"it", "the", "this", "that", "there", "they", "he", "she", "we", "i", "not", "nothing", "none", "way",
             "video", "because", "as", "since", "but", "and", "in", "at", "no", "yes", "or"}
# Answer words other than yes/no ("Correct.", "True") count only on their own.
_STANDALONE_ONLY = {"correct", "incorrect", "true", "false", "sure", "indeed", "certainly", "definitely",
                    "absolutely", "affirmative", "negative", "of course", "正确"}
_YESNO_CUE = re.compile(
    r"(?:\b(?:the\s+|my\s+|final\s+){0,3}answer\s*(?:is|would\s+be|:|=)|\bso|\btherefore|\bthus|\bhence|\bi\s+would\s+say|"
    r"\bi'd\s+say|\bin\s+short|\bin\s+conclusion|\boverall|答案是|答案:|所以)\s*[,:]?\s*(?P<word>" + _YESNO_ALT + r")"
    + r"(?![a-z])",
    re.I,
)
_YESNO_FINAL = re.compile(r"(?:^|[:;,\-–—]\s*)(?P<word>yes|no|yeah|nope)[.!]?\s*$", re.I)
_SENTENCE_START = re.compile(r"(?:^|[.!?;\n]\s*)(?:(?:well|hmm|ok|okay|so|oh)\s*[,!]?\s*)?(?P<word>" + _YESNO_ALT + r")(?![a-z])", re.I)


_NEXT_ANSWER = re.compile(r"\s*(?:and|or|/|,|;)?\s*(?:and|or)?\s*(?P<word>" + _YESNO_ALT + r")(?![a-z])", re.I)


def _answer_word(text: str, match: re.Match) -> str | None:
    """'yes' / 'no' for the answer word at ``match``, None where it is not used as one: a
    "no" before a noun is a determiner ("No visible change"), "Correct"/"True" count
    only on their own ("Correct answer ...")."""
    word = match.group("word")
    rest = text[match.end("word") : match.end("word") + 80]
    if word.lower() in _STANDALONE_ONLY and re.match(r"\s*[a-z]", rest, re.I):
        return None
    if word.lower() == "no":
        follow = re.match(r"\s+([a-z]+)", rest, re.I)
        if follow and follow.group(1).lower() not in _AFTER_NO:
            return None
    return _YESNO_VALUE.get(word.lower()) or _YESNO_VALUE.get(word)


def _leading_answer(text: str, match: re.Match) -> str | None:
    """The answer word at ``match``, or "both" when the opposite one follows it ("yes and
    no", "yes or no", "yes, no")."""
    value = _answer_word(text, match)
    following = _NEXT_ANSWER.match(text, match.end("word"))
    if value and following and _answer_word(text, following) not in (None, value):
        return "both"
    return value


def extract_yesno(prediction: str | None) -> str | None:
    """'yes', 'no' or None. In order: the first conclusion ("the answer is no", "so yes",
    "..., therefore no", a final ": yes"); the answers that open the response or its
    sentences ("Yes.", "No, it does not", "Nope.", "Correct.", "是", "否") when they agree.
    "yes and no", "yes or no" and a response that opens with both are no answer."""
    text = prepare(prediction)
    if not text:
        return None
    cue = _YESNO_CUE.search(text)
    if cue:
        answer = _leading_answer(text, cue)
        if answer in ("yes", "no"):
            return answer
        if answer == "both":
            return None
    final = _YESNO_FINAL.search(text)
    openings = [_leading_answer(text, m) for m in _SENTENCE_START.finditer(text)]
    found = {a for a in openings if a}
    if final:
        found.add(_YESNO_VALUE[final.group("word").lower()])
    return found.pop() if len(found) == 1 and found != {"both"} else None


# ---------------------------------------------------------------- numbers

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_VALUES = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_WORD_VALUES |= {"once": 1, "twice": 2, "thrice": 3, "dozen": 12, "hundred": 100}
_NUMBER_WORD = (
    r"(?:(?:" + "|".join(_TENS) + r")(?:[-\s](?:one|two|three|four|five|six|seven|eight|nine)(?![a-z]))?|"
    + "|".join(sorted(set(_WORD_VALUES) - set(_TENS), key=len, reverse=True)) + r")(?![a-z])"
)
_DIGITS = r"[-+−]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d,.]\d)|\d+)(?:\.\d+)?"
_NUMBER = re.compile(
    r"(?<![A-Za-z0-9_.])(?:(?P<digits>" + _DIGITS + r")(?![A-Za-z0-9_])|(?P<word>" + _NUMBER_WORD + r"))", re.I
)
# "one" as a pronoun: "the one on the left", "one of them", "no one".
_ONE_PRONOUN = re.compile(r"(?:\b(?:the|this|that|which|every|each|any|some|no|a|another)\s+one\b|\bone\s+(?:of|another|by)\b)", re.I)
_QUALIFIER = r"(?:about|approximately|around|roughly|exactly|only|just|precisely|nearly|almost|over|under)?\s*"
_STRONG_CUE = re.compile(
    r"(?:\b(?:the\s+|my\s+|final\s+){0,3}answer\s*(?:is|would\s+be|:|=)|\btotal(?:\s+of|\s+is|\s+count\s+is)?|\bin\s+total\b|"
    r"\baltogether\b|\bin\s+all\b|\btherefore\b|\bthus\b|\bhence\b|\bso\b|\bequals?\b|=|\bmakes?\b|\bgives?\b|"
    r"\bcount\s+is\b|\bthere\s+(?:are|is|were|was)\b|\bi\s+count(?:ed)?\b|\bresult\s+is\b|\bcomes\s+to\b|答案是|共)"
    r"\s*,?:?\s*" + _QUALIFIER + r"$",
    re.I,
)
_WEAK_CUE = re.compile(
    r"(?:\b(?:is|are|was|were|of|by|be|shows?|showed|reads|displays|needs|takes)\b)\s*" + _QUALIFIER + r"$", re.I
)
_RANGE_AFTER = re.compile(r"^\s*(?:-|–|to|or|and|~)\s*(?:" + _DIGITS + r"|" + _NUMBER_WORD + r")", re.I)
_RANGE_BEFORE = re.compile(r"(?:\bbetween|\bfrom|(?:" + _DIGITS + r"|" + _NUMBER_WORD + r")\s*(?:-|–|to|or|~))\s*$", re.I)
_NUMBER_NEGATED = re.compile(r"(?:\bnot|n't|\bnever|\brather\s+than|\binstead\s+of|\bother\s+than|不是)\s*" + _QUALIFIER + r"$", re.I)


def _number_value(match: re.Match) -> float | None:
    if match.group("digits"):
        raw = re.sub(r"[,\s\u00a0\u202f]", "", match.group("digits")).replace("−", "-")
        try:
            return float(raw)
        except ValueError:
            return None
    words = re.split(r"[-\s]+", match.group("word").lower())
    return float(sum(_WORD_VALUES[w] for w in words))


def _numbers(text: str) -> list[tuple[re.Match, float]]:
    pronouns = {m.end() - 3 for m in _ONE_PRONOUN.finditer(text)} | {m.start() for m in _ONE_PRONOUN.finditer(text)}
    out = []
    for m in _NUMBER.finditer(text):
        if m.group("word") and m.group("word").lower() == "one" and m.start() in pronouns:
            continue
        if m.group("word") and m.group("word").lower() in ("hundred", "dozen"):
            before = text[max(0, m.start() - 3) : m.start()].lower()
            if not before.endswith("a "):
                continue  # "three hundred" is beyond the words read; "a hundred" / "a dozen" is one value
        value = _number_value(m)
        if value is not None and not _NUMBER_NEGATED.search(text[max(0, m.start() - 25) : m.start()]):
            out.append((m, value))
    return out


# "3 red and 2 blue": a count of one kind next to a count of another commits to neither
_LISTED_AFTER = re.compile(r"^(?:\s+[a-z]+){1,2}\s*(?:,|\band\b|\bplus\b|&)\s*(?:" + _DIGITS + r"|" + _NUMBER_WORD + r")", re.I)


def _in_range(text: str, match: re.Match) -> bool:
    """Part of a range ("between 3 and 4", "3 or 4", "5-6") or of a list of counts."""
    before = text[max(0, match.start() - 25) : match.start()]
    after = text[match.end() : match.end() + 80]
    return bool(_RANGE_AFTER.match(after) or _RANGE_BEFORE.search(before) or _LISTED_AFTER.match(after))


def extract_number(prediction: str | None) -> float | None:
    """The number a response commits to, or None. In order: the first number after a
    conclusion cue ("the answer is 7, not 8", "there are 5", "so 12", "makes 5", "in
    total 9"); a number the response opens with ("5 cars: 2 red and 3 blue"); the only
    value it states; the last number after "is/are/of/by" ("a rotation of 180 degrees").
    Digits ("1,024", "12 000", "3.5") and number words ("three", "twenty-one", "twice")
    count; negated numbers ("not 8") never; a range ("between 3 and 4", "3 or 4") is no
    answer."""
    text = prepare(prediction)
    if not text:
        return None
    found = _numbers(text)
    if not found:
        return None

    def pick(match: re.Match, value: float) -> float | None:
        return None if _in_range(text, match) else value

    for match, value in found:
        if _STRONG_CUE.search(text[max(0, match.start() - 40) : match.start()]):
            return pick(match, value)
    first, value = found[0]
    if not text[: first.start()].strip(" \t\n:-(\"'"):
        return pick(first, value)
    if len({v for _, v in found}) == 1:
        return pick(first, value)
    weak = [(m, v) for m, v in found if _WEAK_CUE.search(text[max(0, m.start() - 30) : m.start()])]
    if weak:
        return pick(*weak[-1])
    return None
