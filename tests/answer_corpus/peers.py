"""The field's multiple-choice checks, re-implemented from their public source for the
comparison in tests/test_answer_corpus.py and docs/scoring.md only (vlm-bench never uses
them). Each returns the set of option letters it would score as correct for a response
(an extractor: the letter it extracts; a correctness check: every reference letter it
accepts). Sources, read 2026-11:

- VLMEvalKit ``vlmeval/utils/matching_util.py`` ``can_infer`` (``can_infer_option`` then
  ``can_infer_text``), commit e8e78f05.
- VLMEvalKit Video-MME (``vlmeval/dataset/videomme.py`` ``evaluate`` with the default
  ``exact_matching`` judge): ``extract_characters_regex`` from
  ``vlmeval/dataset/utils/videomme.py``; when it finds nothing, ``extract_option`` runs
  ``can_infer`` on choices parsed from the question column, which in VLMEvalKit's
  Video-MME table holds no option lines, so the fallback gives 'Z' (no answer).
- VLMEvalKit MVBench (``vlmeval/dataset/mvbench.py`` ``evaluate``, exact matching):
  ``check_ans_with_model(pred, "(L) text", None, item)`` from
  ``vlmeval/dataset/utils/mvbench.py``: the first word of the prediction against "(l)",
  then ``can_infer`` on the candidates.
- lmms-eval Video-MME (``lmms_eval/tasks/videomme/utils.py``): ``extract_mcq_answer(pred,
  choices=["A", "B", "C", "D"])`` from ``lmms_eval/tasks/_task_utils/mcq_extract.py``,
  commit 75571cfe.
- lmms-eval MVBench (``lmms_eval/tasks/mvbench/utils.py`` ``mcq_acc``).
- InternVL's own MVBench evaluation (``internvl_chat/eval/mvbench/evaluate_mvbench.py``
  ``check_ans(pred, "(L) text")``).
"""

from __future__ import annotations

import re
import string
from typing import Callable, Mapping, Sequence

from vlm_bench.answers import strip_option_label

LETTERS = string.ascii_uppercase


def _choices(options: Sequence[str]) -> dict[str, str]:
    return {LETTERS[i]: strip_option_label(o) for i, o in enumerate(options)}


# ---------------------------------------------------------------- VLMEvalKit can_infer


def vlmeval_can_infer_option(answer: str, choices: Mapping[str, str]) -> str | bool:
    if "Failed to obtain answer via API" in answer:
        return False
    refusals = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
                "I'm sorry, but without the image provided", "Cannot determine the answer")
    if any(r in answer for r in refusals):
        return "Z"
    spaced = answer
    for ch in ".()[],:;!*#{}":
        spaced = spaced.replace(ch, " ")
    words = [w.strip() for w in spaced.split()]
    count = sum(1 for c in choices if c in words)
    if count == 1:
        for c in choices:
            if c in words and words.index(c) > len(words) - 5:
                return c
    elif count == 0 and sum(1 for c in {"Z", ""} if c in words) == 1:
        return "Z"
    verbose = re.search(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**", answer or "")
    if verbose and verbose.group(1).upper() in choices:
        return verbose.group(1).upper()
    return False


def vlmeval_can_infer_text(answer: str, choices: Mapping[str, str]) -> str | bool:
    answer = answer.lower()
    if len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
        return False
    lowered = {k: str(v).lower() for k, v in choices.items()}
    found = [k for k, v in lowered.items() if v in answer]
    return found[0] if len(found) == 1 else False


def vlmeval_can_infer(answer: str, choices: Mapping[str, str]) -> str | bool:
    answer = str(answer)
    return vlmeval_can_infer_option(answer, choices) or vlmeval_can_infer_text(answer, choices)


def can_infer_accepts(response: str, options: Sequence[str]) -> set[str]:
    got = vlmeval_can_infer(response, _choices(options))
    return {got} if got and got != "Z" else set()


# ---------------------------------------------------------------- VLMEvalKit Video-MME

# The prefix list as written in VLMEvalKit: two missing commas join pairs of prefixes.
_VLMEVAL_VIDEOMME_PREFIXES = (
    "The best answer is", "The correct answer is", "The answer is", "The answer",
    "The best option is" "The correct option is", "Best answer:" "Best option:", "Answer:", "Option:",
)


def vlmeval_videomme_extract(s: str) -> str:
    s = s.strip()
    for prefix in _VLMEVAL_VIDEOMME_PREFIXES:
        s = s.replace(prefix, "")
    if len(s.split()) > 10 and not re.search("[ABCD]", s):
        return ""
    found = re.search(r"[ABCD]", s)
    return found[0] if found else ""


def vlmeval_videomme_accepts(response: str, options: Sequence[str]) -> set[str]:
    got = vlmeval_videomme_extract(response) or "Z"  # the can_infer fallback has no choices there
    return {got} if got != "Z" else set()


# ---------------------------------------------------------------- VLMEvalKit MVBench


def _first_word_check(pred: str, gt: str) -> bool:
    """check_ans's option test: the prediction's first word against the reference "(l)"."""
    pred_option = pred.lower().strip().split(" ")[0]
    gt_option = gt.lower().strip().split(" ")[0]
    return pred_option.replace(".", "") in gt_option or gt_option in pred_option


def vlmeval_mvbench_accepts(response: str, options: Sequence[str]) -> set[str]:
    choices = _choices(options)
    accepted = {k for k, text in choices.items() if _first_word_check(response, f"({k.lower()}) {text}")}
    inferred = vlmeval_can_infer(response, dict(choices))
    if inferred and inferred != "Z":
        accepted.add(inferred)
    return accepted


# ---------------------------------------------------------------- lmms-eval Video-MME

_LMMS_PHRASES = (
    "the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
    "best answer is", "the correct option is", "correct option is", "the best option is", "best option is",
    "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select", "i pick",
    "my answer is", "my choice is", "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは",
)
_LMMS_PRIORITY = {"start": 10, "end": 9, "phrase": 7, "parentheses": 6, "period": 5, "colon": 4,
                  "right_paren": 3, "space": 2, "fallback": 0}


def lmms_extract_mcq_answer(response: str, choices: Sequence[str] = ("A", "B", "C", "D")) -> str:
    if not response or not response.strip():
        return ""
    text = response.strip()
    for ch in [",", ".", "!", "?", ";", ":", "'", '"']:
        text = text.strip(ch)
    text = f" {text} "
    found: list[tuple[str, int, str]] = []
    for fmt, pattern in (("parentheses", "({})"), ("period", "{}."), ("colon", "{}:"), ("right_paren", "{})"),
                         ("space", "{} ")):
        for ch in choices:
            if pattern.format(ch) in text:
                found.append((ch, text.rfind(pattern.format(ch)), fmt))
    lowered = text.lower()
    for phrase in _LMMS_PHRASES:
        at = lowered.find(phrase)
        if at != -1:
            for ch in choices:
                pos = text.find(ch, at + len(phrase))
                if pos != -1:
                    found.append((ch, pos, "phrase"))
    stripped = text.strip()
    for ch in choices:
        if stripped.startswith(ch) and (len(stripped) == 1 or not stripped[1].isalpha()):
            found.append((ch, 0, "start"))
    for ch in choices:
        if stripped.endswith(ch) and (len(stripped) == 1 or not stripped[-2].isalpha()):
            found.append((ch, len(text) - 1, "end"))
    if not found:
        for ch in choices:
            if ch in text:
                found.append((ch, text.rfind(ch), "fallback"))
    if not found:
        return ""
    found.sort(key=lambda c: (_LMMS_PRIORITY.get(c[2], 0), c[1]), reverse=True)
    return found[0][0]


def lmms_videomme_accepts(response: str, options: Sequence[str]) -> set[str]:
    got = lmms_extract_mcq_answer(response, ["A", "B", "C", "D"])
    return {got.upper()} if got else set()


# ---------------------------------------------------------------- lmms-eval MVBench

_LMMS_PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]


def _lmms_mvbench_process(answer: str) -> str:
    option = re.match(r"^([A-E])\.\s*(.+)$", answer.strip(), re.IGNORECASE)
    if option:
        return option.group(1).upper()
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    out = answer
    for p in _LMMS_PUNCT:
        if (p + " " in answer or " " + p in answer) or re.search(r"(\d)(\,)(\d)", answer) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    # re.UNICODE lands in sub()'s count argument in the original: at most 32 periods go
    out = re.compile(r"(?!<=\d)(\.)(?!\d)").sub("", out, re.UNICODE)
    out = out.strip("'").strip('"').strip(")").strip("(").strip().lower()
    letter = re.search(r"\b([A-E])\b", out, re.IGNORECASE)
    return letter.group(1).upper() if letter else out


def lmms_mvbench_accepts(response: str, options: Sequence[str]) -> set[str]:
    got = _lmms_mvbench_process(response)
    return {LETTERS[i] for i in range(len(options)) if _lmms_mvbench_process(LETTERS[i]) == got}


# ---------------------------------------------------------------- InternVL MVBench


def internvl_check_ans(pred: str, gt: str) -> bool:
    pred = pred.replace("Answer: ", "")
    pred_option = pred.lower().split(" ")[0]
    gt_option = gt.lower().split(" ")[0]
    return pred_option.replace(".", "") in gt_option or gt_option in pred_option


def internvl_mvbench_accepts(response: str, options: Sequence[str]) -> set[str]:
    return {k for k, text in _choices(options).items() if internvl_check_ans(response, f"({k}) {text}")}


PEERS: dict[str, Callable[[str, Sequence[str]], set[str]]] = {
    "VLMEvalKit can_infer": can_infer_accepts,
    "VLMEvalKit Video-MME": vlmeval_videomme_accepts,
    "VLMEvalKit MVBench": vlmeval_mvbench_accepts,
    "lmms-eval Video-MME": lmms_videomme_accepts,
    "lmms-eval MVBench": lmms_mvbench_accepts,
    "InternVL MVBench check_ans": internvl_mvbench_accepts,
}
