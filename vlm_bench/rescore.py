"""``vlm-bench rescore RUN``: today's scoring rules (and, where they read nothing, a judge
model) applied to a finished run's recorded answers, with no engine loaded. The result is
a run folder of its own beside the original (``RUN-rescored``; never over it) that
``vlm-bench report`` and ``compare`` read like any run, and the items whose verdict flipped.

Each record is scored from the text its run scored (``prediction``: the model's
``raw_response`` with stop strings cut and whitespace stripped), its reference answer, and
its options and scorer arguments (kept in records since ``scorer_version`` 2026.12; for an
older run, read again from its dataset when that file is unchanged). A run recorded before
records kept the raw answer cannot be rescored: it says so.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from vlm_bench.answer_judge import AnswerJudge, score_with_judge
from vlm_bench.results import (
    ITEMS_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    ResultsDirError,
    RunLock,
    RunSummary,
    read_records,
    read_run_info,
    record_uid,
    rewrite_records,
    utc_now,
    write_json_atomic,
)
from vlm_bench.scoring import SCORER_VERSION
from vlm_bench.types import DecodeConfig

# Fields of a summary that describe the run, not its scores: carried over as they were.
RUN_FIELDS = ("complete", "items_expected", "items_not_run", "stopped", "note", "engine_error", "reused", "workers",
              "incomplete")


class RescoreError(ValueError):
    """The run cannot be rescored as asked."""


@dataclass(frozen=True)
class Flip:
    uid: str
    before: bool | None
    after: bool | None
    extracted_before: str | None
    extracted_after: str | None

    def line(self) -> str:
        word = {True: "passed", False: "failed", None: "unscored"}
        return (f"{self.uid}: {word[self.before]} -> {word[self.after]} "
                f"(read {self.extracted_before!r} -> {self.extracted_after!r})")


def rescore(run: str | Path, out: str | Path | None = None, *, judge: AnswerJudge | None = None,
            overwrite: bool = False) -> tuple[Path, list[Flip], dict[str, Any]]:
    """Rescore ``run`` into ``out`` (default ``RUN-rescored`` beside it); returns (out, the
    flipped items, the new summary)."""
    run = Path(run)
    out = Path(out) if out is not None else run.with_name(f"{run.name}-rescored")
    for needed in (ITEMS_FILE, RUN_FILE):
        if not (run / needed).is_file():
            raise RescoreError(f"cannot rescore {run}: it holds no {needed} (is it a vlm-bench results folder?)")
    if out.resolve() == run.resolve():
        raise RescoreError(f"--out {out} is the run itself: a rescore writes a run of its own beside it, never over it")
    old_summary = _read_summary(run)
    records = read_records(run / ITEMS_FILE)
    without = [r for r in records if r.get("raw_response") is None and r.get("prediction") is not None
               and r.get("scorer") != "rules"]
    if without:
        raise RescoreError(
            f"cannot rescore {run}: {len(without)} of its {len(records)} records have no raw_response (recorded before "
            "vlm-bench kept each model's raw answer); run those items again to rescore them"
        )
    options = _dataset_options(records, old_summary)
    rescored = [_rescored(r, options, judge) for r in records]
    flips = [Flip(record_uid(a), a.get("passed"), b.get("passed"), a.get("extracted"), b.get("extracted"))
             for a, b in zip(records, rescored) if a.get("passed") != b.get("passed")]
    info = read_run_info(run)
    summary = RunSummary([tuple(b) for b in info.get("breakdowns", [])])
    for record in rescored:
        summary.add(record)
    new = summary.result(old_summary.get("min_pass_rate"))
    new.update({k: old_summary[k] for k in RUN_FIELDS if k in old_summary})
    graded = [r for r in rescored if _is_graded(r)]
    if graded:
        from vlm_bench.grading import grading_summary

        new["vmevalkit"] = grading_summary(graded)
    new["results_dir"] = str(out)
    new["manifest"] = {**old_summary.get("manifest", {}), "rescore": {
        "from": str(run), "scorer_version": SCORER_VERSION, "at": utc_now(), "flips": len(flips),
        "judge": judge.counts() if judge else None,
    }}
    _write(out, rescored, {**info, "rescored_from": str(run), "scorer_version": SCORER_VERSION}, new, overwrite)
    return out, flips, new


def _read_summary(run: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads((run / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a run that did not finish: its records are rescored all the same


def _rescored(record: Mapping[str, Any], options: Mapping[str, list[str]], judge: AnswerJudge | None) -> dict[str, Any]:
    """The record under today's rules (errored, unanswered and never-asked items as they were)."""
    if record.get("error") is not None or record.get("answer") is None or record.get("missing_media"):
        return dict(record)
    if record.get("scorer") == "rules":  # measured on the video, not read from an answer: as recorded
        return dict(record)
    prediction = record.get("prediction")
    if prediction is None:  # the scored text is the raw answer, cut at the stop strings and stripped
        cut, _ = DecodeConfig(stop=tuple((record.get("decode") or {}).get("stop") or ())).cut_at_stop(record["raw_response"])
        prediction = cut.strip()
    choices = record.get("options") if "options" in record else options.get(record_uid(record))
    try:
        score, judged = score_with_judge(record["scorer"], prediction, record["answer"], choices or (),
                                         record.get("scorer_args"), record.get("question") or "", judge)
    except Exception as exc:
        return {**record, "passed": False, "score": None, "extracted": None, "scorer_version": SCORER_VERSION,
                "error": f"scorer error on item {record['id']!r}: {type(exc).__name__}: {exc}"}
    return {**record, "score": score.value, "passed": bool(score.passed), "extracted": score.extracted,
            "scorer_version": SCORER_VERSION, "judge": judged}


def _dataset_options(records: list[dict[str, Any]], summary: Mapping[str, Any]) -> dict[str, list[str]]:
    """Options of the multiple-choice records that do not carry them (runs from before
    records kept them), read again from the run's datasets when those are unchanged."""
    needed = {r["dataset"] for r in records if "options" not in r and r.get("scorer") == "mc"}
    if not needed:
        return {}
    from vlm_bench.config import DatasetConfig
    from vlm_bench.datasets import load_samples

    known = {f.name for f in fields(DatasetConfig)}
    out: dict[str, list[str]] = {}
    for data in summary.get("manifest", {}).get("config", {}).get("datasets", []):
        if data.get("name") not in needed:
            continue
        cfg = DatasetConfig(**{k: (tuple(tuple(b) for b in v) if k == "breakdowns" else v)
                               for k, v in data.items() if k in known})
        if cfg.content_hash() != data.get("sha256"):
            raise RescoreError(f"dataset {cfg.name!r} changed since the run (its records predate kept options); "
                               "rescore needs the dataset as it was")
        out.update({s.uid: list(s.options) for s in load_samples(cfg)})
        needed.discard(cfg.name)
    if needed:
        raise RescoreError(f"the records of {', '.join(sorted(needed))} carry no options and their dataset is not in "
                           "the run's summary; rescore needs a run whose records keep their options")
    return out


def _is_graded(record: Mapping[str, Any]) -> bool:
    from vlm_bench.grading import is_graded

    return is_graded(record)


def _write(out: Path, records: list[dict[str, Any]], info: Mapping[str, Any], summary: Mapping[str, Any],
           overwrite: bool) -> None:
    if (out / ITEMS_FILE).exists() and not overwrite:
        raise ResultsDirError(f"{out} already holds results; give another --out, or --overwrite to replace them")
    lock = RunLock.acquire(out)
    try:
        rewrite_records(out / ITEMS_FILE, records)
        write_json_atomic(out / RUN_FILE, info)
        write_json_atomic(out / SUMMARY_FILE, summary)
    finally:
        lock.release()
