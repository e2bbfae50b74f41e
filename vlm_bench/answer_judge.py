"""A judge model for the answers the rules cannot read (``--judge-model``), as VLMEvalKit
does when its matching fails: the question, the options and the response go to a text
model, and one option letter, yes/no or a number comes back.

The judge is an OpenAI-compatible endpoint (``--judge-base-url``, any model id it serves)
or a catalog model run here (its engine's text-only path). Each reply is cached on disk by
(judge, prompt hash), so a rescore repeats no call. A judge that fails, or whose reply says
nothing readable, is an outcome of its own in the record (``judge.status``), never a pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from vlm_bench.answers import LETTERS, extract_number, extract_yesno
from vlm_bench.config.judge import JudgeConfig
from vlm_bench.types import DecodeConfig

JUDGED_SCORERS = ("mc", "yesno", "numeric")
JUDGE_TOKENS = 16


@dataclass(frozen=True)
class Verdict:
    """What the judge read: ``extracted`` as the rules would give it (a letter, 'yes'/'no',
    a number's repr) or None; ``status`` 'ok', 'none' (the response commits to nothing),
    'unreadable' (the reply is none of those) or 'failed' (no reply)."""

    extracted: str | None
    status: str
    record: Mapping[str, Any]


def score_with_judge(name: str, prediction: str | None, answer: str, options: Sequence[str],
                     args: Mapping[str, Any] | None, question: str, judge: "AnswerJudge | None"):
    """(Score, the judge's part of the record or None): the rules first; where they read no
    answer from a non-empty response, the judge reads it."""
    from vlm_bench.scoring import score_extracted, score_prediction

    score = score_prediction(name, prediction or "", answer, options, args)
    if judge is None or name not in JUDGED_SCORERS or score.extracted is not None or not (prediction or "").strip():
        return score, None
    verdict = judge.judge(name, question, prediction or "", options)
    if verdict.extracted is None:
        return score, verdict.record
    return score_extracted(name, verdict.extracted, answer, options, args), verdict.record


def judge_prompt(scorer: str, question: str, response: str, options: Sequence[str] = ()) -> str:
    """The text the judge reads: the question (and its options), the model's response, and
    the one form its reply must take."""
    head = "You check which answer a model's response to a question commits to. Do not answer the question yourself."
    body = f"Question: {question.strip()}\n"
    if scorer == "mc":
        letters = LETTERS[: len(options)]
        body += "Options:\n" + "\n".join(f"{LETTERS[i]}. {_strip_label(o)}" for i, o in enumerate(options)) + "\n"
        ask = (f"Reply with the single letter of the option the response chose ({', '.join(letters)}), "
               "or Z if it chose none of them or more than one. Reply with the letter only.")
    elif scorer == "yesno":
        ask = "Reply with yes or no, as the response answers, or unknown if it commits to neither. One word only."
    else:
        ask = "Reply with the number the response gives as its answer, in digits, or unknown if it commits to no single number."
    return f"{head}\n\n{body}Response: {response.strip()}\n\n{ask}"


def _strip_label(option: str) -> str:
    return re.sub(r"^\s*\(?[A-Z][\.\):]\s*|^\s*\([A-Z]\)\s*", "", option).strip()


def read_reply(scorer: str, reply: str, options: Sequence[str] = ()) -> tuple[str | None, str]:
    """(extracted, status) from the judge's reply."""
    text = reply.strip()
    if re.fullmatch(r"\W*(?:unknown|none|z)\W*", text, re.I):
        return None, "none"
    if scorer == "mc":
        m = re.match(r"\W*([A-Z])\b", text)
        if m and m.group(1) in LETTERS[: len(options)]:
            return m.group(1), "ok"
        return None, "unreadable"
    if scorer == "yesno":
        got = extract_yesno(text)
        return (got, "ok") if got else (None, "unreadable")
    got = extract_number(text)
    return (repr(got), "ok") if got is not None else (None, "unreadable")


class AnswerJudge:
    """The judge of a run or a rescore: prompts, the disk cache, the calls, the counts."""

    def __init__(self, cfg: JudgeConfig, seed: int = 0):
        from vlm_bench.config import cache_root

        self.cfg = cfg
        self.seed = seed
        self.cache = Path(cfg.cache_dir) if cfg.cache_dir else cache_root() / "judge"
        self.calls = self.cache_hits = self.failures = 0
        self._client: Any = None
        self._engine: Any = None
        self._lock = threading.Lock()

    def judge(self, scorer: str, question: str, response: str, options: Sequence[str] = ()) -> Verdict:
        prompt = judge_prompt(scorer, question, response, options)
        digest = hashlib.sha256(f"{self.cfg.name}\n{prompt}".encode()).hexdigest()
        record: dict[str, Any] = {"model": self.cfg.name, "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest()}
        reply = self._cached(digest)
        if reply is None:
            try:
                reply = self._ask(prompt)
            except Exception as exc:  # noqa: BLE001 - any failure is the judge's outcome, never a pass
                with self._lock:
                    self.failures += 1
                from vlm_bench.utils.http import redact_text

                return Verdict(None, "failed", {**record, "status": "failed", "error": redact_text(f"{type(exc).__name__}: {exc}")[:300]})
            self._store(digest, prompt, reply)
        extracted, status = read_reply(scorer, reply, options)
        return Verdict(extracted, status, {**record, "reply": reply[:2000], "status": status, "verdict": extracted})

    # ------------------------------------------------------------ the cache

    def _path(self, digest: str) -> Path:
        return self.cache / digest[:2] / f"{digest}.json"

    def _cached(self, digest: str) -> str | None:
        try:
            data = json.loads(self._path(digest).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        with self._lock:
            self.cache_hits += 1
        return data.get("reply")

    def _store(self, digest: str, prompt: str, reply: str) -> None:
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"judge": self.cfg.name, "prompt": prompt, "reply": reply}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # an unwritable cache costs a repeated call, never a result

    # ------------------------------------------------------------ the call

    def _ask(self, prompt: str) -> str:
        with self._lock:
            self.calls += 1
        if self.cfg.base_url:
            return self._ask_server(prompt)
        return self._ask_engine(prompt)

    def _ask_server(self, prompt: str) -> str:
        import openai

        if self._client is None:
            key = os.environ.get(self.cfg.api_key_env) if self.cfg.api_key_env else None
            self._client = openai.OpenAI(base_url=self.cfg.base_url, api_key=key or "EMPTY", max_retries=2, timeout=120.0)
        response = self._client.chat.completions.create(
            model=self.cfg.model, messages=[{"role": "user", "content": prompt}], max_tokens=JUDGE_TOKENS,
            temperature=0.0, seed=self.seed,
        )
        return response.choices[0].message.content or ""

    def _ask_engine(self, prompt: str) -> str:
        with self._lock:
            if self._engine is None:
                from vlm_bench.config import resolve_model
                from vlm_bench.runners import create_engine

                model = resolve_model(self.cfg.model)
                engine = create_engine(model.engine, model, seed=self.seed)
                engine.load()
                self._engine = engine
        if not hasattr(self._engine, "generate_text"):
            raise RuntimeError(f"judge {self.cfg.model!r}: its engine has no text-only path; serve it and give --judge-base-url")
        return self._engine.generate_text(prompt, DecodeConfig(max_new_tokens=JUDGE_TOKENS))

    def counts(self) -> dict[str, Any]:
        return {"judge": self.cfg.name, "calls": self.calls, "cache_hits": self.cache_hits, "failures": self.failures}
