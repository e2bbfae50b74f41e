"""Yes or no: the verdict a response concludes with.

A reader takes the verdict a response states last as its answer ("I thought yes at first,
but the answer is no"), over the words met along the way; where it states none, the answer
it opens with stands ("No. Both frames ..."). The question's own "yes or no" and a
question repeated before the answer are not part of it.
"""

from __future__ import annotations

import re

from vlm_bench.answers.text import prepare, strip_echo

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
_WORD = r"[\"'(\[]?\s*(?P<word>" + _YESNO_ALT + r")(?![a-z])"
# An answer statement: "the answer is no", "Answer: yes", "my final answer = no", "verdict: no", "答案是".
_STATEMENT = re.compile(
    r"(?:\b(?:the\s+|my\s+|final\s+|correct\s+){0,3}answer\s*(?:is|would\s+be|will\s+be|:|=|-)|\bverdict\s*(?:is|:)|"
    r"\bconclusion\s*(?:is|:)|答案\s*(?:是|为|:))\s*[,:]?\s*" + _WORD,
    re.I,
)
# A conclusion drawn along the way: "so yes", "therefore, no", "I'd say yes", "所以".
_DISCOURSE = re.compile(
    r"(?:\bso|\btherefore|\bthus|\bhence|\bi\s+would\s+say|\bi'd\s+say|\bin\s+short|\bin\s+conclusion|\boverall|所以)"
    r"\s*[,:]?\s*" + _WORD,
    re.I,
)
_FINAL = re.compile(r"(?:^|[:;,\-–—]\s*)(?P<word>yes|no|yeah|nope)[.!]*\s*$", re.I)
_SENTENCE_START = re.compile(
    r"(?:^|[.!?;\n]\s*)(?:(?:well|hmm|ok|okay|so|oh)\s*[,!]?\s*)?" + _WORD, re.I
)
_NEXT_ANSWER = re.compile(r"\s*(?:and|or|/|,|;)?\s*(?:and|or)?\s*(?P<word>" + _YESNO_ALT + r")(?![a-z])", re.I)
_LETTER = re.compile(r"^[\(\[]?\s*(?P<letter>[YN])\s*[\)\]]?[.!]?$")
# Set phrases that answer on their own, at the start of a response.
_PHRASES = re.compile(
    r"^(?:(?P<yes>that'?s\s+(?:right|correct|true)|that\s+is\s+(?:right|correct|true)|it\s+(?:does|is|did))|"
    r"(?P<no>i'?m\s+afraid\s+not|unfortunately\s+not|that'?s\s+not\s+(?:the\s+case|right|true)|"
    r"that\s+is\s+not\s+(?:the\s+case|right|true)|it\s+(?:doesn'?t|does\s+not|isn'?t|is\s+not|didn'?t|did\s+not)))"
    r"\s*(?:[.!,;]|$)",  # the phrase ends its clause: "It is." answers, "It is hard to tell" does not
    re.I,
)


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


def _verdict(text: str, match: re.Match) -> str | None:
    """The answer word at ``match``: 'yes', 'no', 'both' when the opposite one follows it
    ("yes and no", "yes, no"), or None where the word is no answer."""
    value = _answer_word(text, match)
    following = _NEXT_ANSWER.match(text, match.end("word"))
    if value and following and _answer_word(text, following) not in (None, value):
        return "both"
    return value


def _last(text: str, pattern: re.Pattern) -> str | None:
    """The verdict of the last match of ``pattern`` that states one ('both' included)."""
    found = None
    for match in pattern.finditer(text):
        found = _verdict(text, match) or found
    return found


def extract_yesno(prediction: str | None) -> str | None:
    """'yes', 'no' or None. In order: the last answer statement ("the answer is no",
    "Answer: yes", "verdict: no"); the answer the response opens with ("Yes.", "No, it
    does not", "Nope.", "Y", "是"); the last conclusion drawn along the way ("so yes",
    "therefore, no"); a final ": yes"; the answers that open its sentences when they agree;
    set phrases ("That's right", "I'm afraid not"). "yes and no", and a response that
    states both, are no answer; the question's "yes or no" and a repeated question are
    left out."""
    text = strip_echo(prepare(prediction))
    if not text:
        return None
    letter = _LETTER.match(text)
    if letter:
        return "yes" if letter.group("letter") == "Y" else "no"
    stated = _last(text, _STATEMENT)
    if stated is not None:
        return None if stated == "both" else stated
    opening = _SENTENCE_START.match(text)
    if opening and (value := _verdict(text, opening)) is not None:
        return None if value == "both" else value
    concluded = _last(text, _DISCOURSE)
    if concluded is not None:
        return None if concluded == "both" else concluded
    found = {v for v in (_verdict(text, m) for m in _SENTENCE_START.finditer(text)) if v}
    final = _FINAL.search(text)
    if final:
        found.add(_YESNO_VALUE[final.group("word").lower()])
    if len(found) == 1 and found != {"both"}:
        return found.pop()
    if not found and (phrase := _PHRASES.match(text)):
        return "yes" if phrase.group("yes") else "no"
    return None
