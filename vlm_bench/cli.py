"""``vlm-bench``: run evaluations (a pytest session underneath) and list the catalogs.

    vlm-bench run --model internvl3_38b --backend native --quant int4 --dataset data.jsonl
    vlm-bench run --dataset smoke -n 2 -x         # pytest's and its plugins' options pass through
    vlm-bench report RESULTS_DIR
    vlm-bench rescore RESULTS_DIR [--out DIR] [--judge-model M --judge-base-url URL]
    vlm-bench compare RUN_A RUN_B
    vlm-bench merge SHARD_DIR... --out DIR
    vlm-bench models
    vlm-bench datasets
    vlm-bench generate --generator svd --dataset vmevalkit --dataset-root questions --outputs-dir outputs/exp1 [--judge internvl3_38b]
    vlm-bench generators
    vlm-bench labelled-set QUESTIONS OUT [--look held-out]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Sequence

from vlm_bench.config import ConfigError, dataset_catalog, load_dataset_config, load_model_config, model_catalog
from vlm_bench.generation import cli as generation_cli
from vlm_bench.options import OPTIONS, add_options, option_args
from vlm_bench.results import (
    ITEMS_FILE,
    SUMMARY_FILE,
    ResultsDirError,
    format_table,
    merge_results,
    read_run_info,
    summarize,
    utc_now,
    write_json_atomic,
)
from vlm_bench.tables import print_table

CHECKOUT_EVALS = Path(__file__).resolve().parent.parent / "evals"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run an evaluation (a pytest session over evals/)",
        description="Run an evaluation: a pytest session over evals/ with these options.",
        epilog="Every other argument goes to pytest unchanged: its own options and its plugins' "
        "(-n 2 for pytest-xdist workers, -x, -q, -k EXPR, --benchmark-autosave). "
        "A -- ends vlm-bench's options; what follows goes to pytest as is.",
        allow_abbrev=False,  # an abbreviation of ours must not swallow one of pytest's options
    )
    add_options(run.add_argument)
    run.add_argument("--evals", default=None, metavar="PATH", help="the evaluation tests to run (default: the checkout's evals/)")
    merge = sub.add_parser("merge", help="merge shard result directories into one, with a fresh summary")
    merge.add_argument("dirs", nargs="+", help="result directories of the shards (same run settings)")
    merge.add_argument("--out", required=True, help="the merged results directory (must not hold results)")
    merge.add_argument("--partial", action="store_true", help="merge even when shards are missing or unfinished; the result is marked incomplete")
    report = sub.add_parser("report", help="write report.md and report.html (plots, failed items with their frames)")
    report.add_argument("results_dir")
    compare = sub.add_parser("compare", help="compare runs: item flips, McNemar test, latency; pass rate vs max_frames")
    compare.add_argument("runs", nargs="+", help="results directories (two for a paired comparison)")
    compare.add_argument("--plot", default=None, help="where to save the pass-rate-vs-frames plot (runs differing only in max_frames)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    rescore = sub.add_parser("rescore", help="score a finished run again with today's rules (and a judge model), no engine loaded",
                             description="Apply today's scoring rules to a finished run's recorded answers, with no engine "
                             "loaded; write the result as a run of its own (default RUN-rescored beside it, never over it) "
                             "and print the items whose verdict flipped.")
    rescore.add_argument("run", help="the results folder of a finished run")
    rescore.add_argument("--out", default=None, help="where the rescored run goes (default: RUN-rescored beside RUN)")
    rescore.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    add_options(rescore.add_argument, [o for o in OPTIONS if o.dest.startswith("vlm_judge_")])
    generation_cli.add_parsers(sub)
    sub.add_parser("models", help="list the model catalog")
    sub.add_parser("datasets", help="list the dataset configs")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    evals = Path(args.evals) if args.evals else CHECKOUT_EVALS
    if not evals.exists():
        print(f"vlm-bench: evaluation tests not found at {evals}; pass --evals PATH", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    return int(pytest.main([str(evals), *option_args(vars(args)), *args.pytest_args]))


def cmd_merge(args: argparse.Namespace) -> int:
    records, incomplete = merge_results(args.dirs, args.out, partial=args.partial)
    out = Path(args.out)
    run = read_run_info(out)
    summary = summarize(records, breakdowns=[tuple(b) for b in run.get("breakdowns", [])])
    summary["complete"] = not incomplete
    summary["incomplete"] = incomplete or None
    summary["results_dir"] = args.out
    summary["manifest"] = {"merged_from": list(args.dirs), "fingerprint": run["fingerprint"], "merged_at": utc_now()}
    write_json_atomic(out / SUMMARY_FILE, summary)
    print("\n".join(format_table(summary)))
    print(f"merged {len(records)} items from {len(args.dirs)} directories into {args.out}")
    if incomplete:
        print(f"INCOMPLETE: {'; '.join(incomplete)}", file=sys.stderr)
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from vlm_bench.answer_judge import AnswerJudge
    from vlm_bench.config.run import judge_config
    from vlm_bench.rescore import RescoreError, rescore

    judge_cfg = judge_config({"model": args.vlm_judge_model, "base_url": args.vlm_judge_base_url,
                              "api_key_env": args.vlm_judge_api_key_env, "cache_dir": args.vlm_judge_cache})
    judge = AnswerJudge(judge_cfg) if judge_cfg else None
    try:
        out, flips, summary = rescore(args.run, args.out, judge=judge, overwrite=args.overwrite)
    except RescoreError as exc:
        print(f"vlm-bench rescore: {exc}", file=sys.stderr)
        return 1
    print("\n".join(format_table(summary)))
    print(f"scored with the rules of {summary['manifest']['rescore']['scorer_version']}; {len(flips)} verdict(s) flipped")
    for flip in flips:
        print(f"  {flip.line()}")
    if judge is not None:
        counts = judge.counts()
        print(f"judge {counts['judge']}: {counts['calls']} call(s), {counts['cache_hits']} from its cache, "
              f"{counts['failures']} failed")
    print(f"rescored run: {out / ITEMS_FILE}, {out / SUMMARY_FILE}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vlm_bench.report import build_report

    root = Path(args.results_dir)
    for needed in (ITEMS_FILE, SUMMARY_FILE):
        if not (root / needed).is_file():
            what = "no such folder" if not root.is_dir() else f"it holds no {needed} (did the run finish? --resume finishes it)"
            raise ResultsDirError(f"cannot report on {root}: {what}")
    build_report(root)
    print(f"wrote {root / 'report.md'} and {root / 'report.html'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from vlm_bench.compare import compare_runs, format_comparison, frames_sweep, plot_frames_sweep

    for run_dir in args.runs:
        if not (Path(run_dir) / ITEMS_FILE).is_file():
            what = "no such folder" if not Path(run_dir).is_dir() else f"it holds no {ITEMS_FILE}"
            raise ResultsDirError(f"cannot compare {run_dir}: {what}")
    out: dict = {}
    if len(args.runs) == 2:
        out["comparison"] = compare_runs(*args.runs)
        if not args.json:
            print("\n".join(format_comparison(out["comparison"])))
    try:
        points = frames_sweep(args.runs)
    except ValueError as exc:
        points = None
        if args.plot:
            print(f"vlm-bench compare: no frames plot: {exc}", file=sys.stderr)
            return 1
    if points and len({p["max_frames"] for p in points}) > 1:
        path = plot_frames_sweep(points, args.plot or Path(args.runs[0]) / "frames_sweep.png")
        out["frames_sweep"] = points
        if not args.json:
            for p in points:
                print(f"max_frames {p['max_frames']:>3}: pass rate {100 * p['pass_rate']:.1f}%  ({p['dir']})")
            print(f"plot: {path}")
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


def cmd_models() -> int:
    """The catalog, smallest model first (the mock and the local builds by their size too)."""
    rows = [("name", "family", "engine", "hub id", "params (B)", "bf16 GB", "80GB GPUs bf16", "1-GPU quant")]
    configs = [load_model_config(path, name) for name, path in model_catalog().items()]
    for cfg in sorted(configs, key=lambda c: (float(c.info.get("parameters_b") or 0), c.name)):
        name = cfg.name
        info = cfg.info
        rows.append(
            (
                name,
                cfg.family,
                cfg.engine,
                cfg.hf_repo or "-",
                str(info.get("parameters_b", "-")),
                str(info.get("bf16_weights_gb", "-")),
                str(info.get("gpus_80gb_bf16", "-")),
                str(info.get("single_gpu_quant", "-")),
            )
        )
    print_table(rows)
    return 0


def cmd_datasets() -> int:
    rows = [("name", "format", "annotations", "about")]
    for name, path in dataset_catalog().items():
        cfg = load_dataset_config(path)
        where = cfg.path or cfg.root or f"<--dataset-root>/{cfg.annotations or ''}"
        rows.append((name, cfg.format, where, cfg.description or (f"data: {cfg.docs}" if cfg.docs else "")))
    print_table(rows)
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``run`` hands every argument it does not define to pytest (``-n 2``, ``-x``,
    ``--benchmark-autosave``); the other commands accept only their own."""
    argv = list(sys.argv[1:] if argv is None else argv)
    after_dashes: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, after_dashes = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command not in ("run", "generate") and (unknown or after_dashes):
        parser.error(f"unrecognized arguments: {' '.join(unknown + after_dashes)}")
    args.pytest_args = unknown + after_dashes
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with warnings.catch_warnings():
        # warnings (a cut-off last line of items.jsonl) as one plain line each
        warnings.showwarning = lambda message, *_, **__: print(f"vlm-bench: warning: {message}", file=sys.stderr)
        try:
            return COMMANDS[args.command](args)
        except ConfigError as exc:
            print(f"vlm-bench: {exc}", file=sys.stderr)
            return 4
        except (ResultsDirError, OSError) as exc:
            print(f"vlm-bench {args.command}: {exc}", file=sys.stderr)
            return 1


COMMANDS = {
    "run": cmd_run,
    "merge": cmd_merge,
    "report": cmd_report,
    "rescore": cmd_rescore,
    "compare": cmd_compare,
    "generate": lambda args: generation_cli.cmd_generate(args, CHECKOUT_EVALS),
    "generators": lambda args: generation_cli.cmd_generators(),
    "labelled-set": generation_cli.cmd_labelled_set,
    "models": lambda args: cmd_models(),
    "datasets": lambda args: cmd_datasets(),
}


if __name__ == "__main__":
    sys.exit(main())
