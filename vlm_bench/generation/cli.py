"""``vlm-bench generate`` (a pytest session over evals/test_generation.py, then optionally a
judging session over the fresh videos) and ``vlm-bench generators`` (the catalog)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vlm_bench.generation.catalog import generator_catalog, load_generator_config, requirements
from vlm_bench.generation.options import GENERATION_OPTIONS, SHARED_OPTIONS
from vlm_bench.options import add_options, option_args
from vlm_bench.tables import print_table

TABLE_FILE = "generation_table.json"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser(
        "generate",
        help="generate videos for VMEvalKit task pairs (a pytest session), optionally judge them",
        epilog="Every other argument goes to pytest unchanged (-n 4 for xdist workers, -x, -q), in both sessions.",
        allow_abbrev=False,
    )
    add_options(gen.add_argument, GENERATION_OPTIONS + SHARED_OPTIONS)
    gen.add_argument("--judge", default=None, metavar="MODEL", help="then grade the videos with this video-QA model (catalog name or YAML) "
                                                    "and rule scores beside it, through the vmevalkit_outputs dataset; "
                                                    "'rules': rule scores only, no model (a served judge: pytest evals "
                                                    "--dataset vmevalkit_outputs --backend openai, docs/grading.md)")
    gen.add_argument("--judge-backend", default=None, choices=("native", "vlmeval", "mock"), help="the judge's engine (default: its YAML's)")
    gen.add_argument("--judge-quant", default=None, choices=("none", "int8", "int4"), help="the judge's quantization (native backend)")
    gen.add_argument("--evals", default=None, metavar="PATH", help="the evaluation tests (default: the checkout's evals/)")
    sub.add_parser("generators", help="list the video-generation catalog and what each entry needs")
    lab = sub.add_parser("labelled-set", help="write generated-looking videos that reach their task's final state or not "
                                              "(labels.json), to measure how far a grader agrees with the truth")
    lab.add_argument("questions", help="a VMEvalKit questions tree (<domain>_task/<task_id>/ with first and final frames)")
    lab.add_argument("out", help="the output tree to write (graded with --dataset vmevalkit_outputs --dataset-root OUT)")
    lab.add_argument("--domains", default=None, help="comma-separated domains (default: every domain with both frames)")
    lab.add_argument("--look", default="tuning", choices=("tuning", "held-out"),
                     help="how generated the videos look; the rule thresholds were set on 'tuning' only")
    lab.add_argument("--seed", type=int, default=0)


def cmd_generators() -> int:
    rows = [("name", "family", "kind", "model / pipeline", "presets", "needs")]
    for name, path in generator_catalog().items():
        cfg = load_generator_config(path, name)
        source = cfg.model or (f"local build {cfg.local_build}" if cfg.local_build else "-")
        rows.append((name, cfg.family, cfg.kind, f"{source}{' / ' + cfg.pipeline if cfg.pipeline else ''}",
                     ", ".join(cfg.presets) or "-", requirements(cfg)))
    print_table(rows)
    return 0


def cmd_labelled_set(args: argparse.Namespace) -> int:
    from vlm_bench.generation.labelled import make_labelled_set

    domains = [d.strip() for d in args.domains.split(",")] if args.domains else None
    labels = make_labelled_set(args.questions, args.out, domains=domains, seed=args.seed, look=args.look)
    count = len(json.loads(labels.read_text())["labels"])
    print(f"{count} videos and their labels: {labels}")
    return 0


def cmd_generate(args: argparse.Namespace, evals_default: Path) -> int:
    import pytest

    evals = Path(args.evals) if args.evals else evals_default
    if not evals.exists():
        print(f"vlm-bench: evaluation tests not found at {evals}; pass --evals PATH", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    if not args.gen_generator:
        print("vlm-bench generate: --generator is required (see `vlm-bench generators`)", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    values = vars(args)
    if args.judge and not args.vlm_results_dir:  # both sessions need to know where the first one writes
        from vlm_bench.results import default_results_dir

        values["vlm_results_dir"] = str(default_results_dir(f"generate-{args.gen_generator}"))
    extra = list(args.pytest_args)
    gen_file = evals / "test_generation.py" if evals.is_dir() else evals
    code = int(pytest.main([str(gen_file), *option_args(values, GENERATION_OPTIONS + SHARED_OPTIONS), *extra]))
    if not args.judge or args.gen_dry_run or code not in (0, 1):
        return code
    return judge_step(args, values, evals, extra, code)


def judge_step(args: argparse.Namespace, values: dict, evals: Path, extra: list[str], gen_code: int) -> int:
    import pytest

    from vlm_bench.config import build_run_config
    from vlm_bench.generation.judge import format_generator_table, generator_table, write_judge_dataset
    from vlm_bench.results import ITEMS_FILE, read_records, write_json_atomic

    results = Path(values["vlm_results_dir"])
    tasks = build_run_config(model="mock", backend="mock", datasets=args.vlm_datasets,
                             dataset_roots=args.vlm_dataset_roots or ()).datasets
    questions = tasks[0].media_root  # runs whose task is not there fall back to their own question/ copy
    dataset = write_judge_dataset(results / "judge_dataset.yaml", args.gen_outputs_dir, questions)
    judge_dir = results / "judge"
    judge_args = ["--dataset", str(dataset), "--results-dir", str(judge_dir)]
    if args.judge == "rules":  # rule scores only: no judge model loads
        judge_args += ["--model", "mock", "--backend", "mock", "--score", "rules"]
    else:
        judge_args += ["--model", args.judge]
        judge_args += ["--score", args.vlm_score] if args.vlm_score in ("rules", "judge", "both") else []
        judge_args += ["--judge-protocol", args.vlm_judge_protocol] if args.vlm_judge_protocol else []
    judge_args += ["--backend", args.judge_backend] if args.judge_backend and args.judge != "rules" else []
    judge_args += ["--quant", args.judge_quant] if args.judge_quant else []
    judge_args += ["--resume"] if args.vlm_resume else ["--overwrite"] if args.vlm_overwrite else []
    vqa = evals / "test_video_qa.py" if evals.is_dir() else evals.parent / "test_video_qa.py"
    # the evaluation tests are imported by now (the generation session): pytest cannot rewrite
    # their asserts a second time, and says so unless told not to
    quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    judge_code = int(pytest.main([str(vqa), *judge_args, "--seed", str(args.vlm_seed or 0), *quiet, *extra]))
    records = read_records(judge_dir / ITEMS_FILE) if (judge_dir / ITEMS_FILE).exists() else []
    table = generator_table(args.gen_outputs_dir, records)
    write_json_atomic(results / TABLE_FILE, table)
    print("\nvideo generation, judged by " + ("rule scores" if args.judge == "rules" else args.judge))
    print("\n".join(format_generator_table(table)))
    print(f"table: {results / TABLE_FILE}; judge records: {judge_dir / ITEMS_FILE}")
    # Items the judge fails are results, not errors; a judge session that could not run is.
    return gen_code if judge_code in (0, 1) else judge_code

