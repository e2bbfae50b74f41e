"""``vlm-bench``: run evaluations (a pytest session underneath) and list the catalogs.

    vlm-bench run --model internvl3_38b --backend native --quant int4 --dataset data.jsonl
    vlm-bench run --dataset smoke -- -x -q        # arguments after -- go to pytest
    vlm-bench models
    vlm-bench datasets
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from vlm_bench.config import ConfigError, dataset_catalog, load_dataset_config, load_model_config, model_catalog
from vlm_bench.options import add_options, option_args

CHECKOUT_EVALS = Path(__file__).resolve().parent.parent / "evals"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlm-bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an evaluation (a pytest session over evals/)")
    add_options(run.add_argument)
    run.add_argument("--evals", default=None, help="the evaluation tests to run (default: the checkout's evals/)")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: extra pytest arguments")
    sub.add_parser("models", help="list the model catalog")
    sub.add_parser("datasets", help="list the dataset configs")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    evals = Path(args.evals) if args.evals else CHECKOUT_EVALS
    if not evals.exists():
        print(f"vlm-bench: evaluation tests not found at {evals}; pass --evals PATH", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    extra = [a for a in args.pytest_args if a != "--"]
    return int(pytest.main([str(evals), *option_args(vars(args)), *extra]))


def cmd_models() -> int:
    rows = [("name", "family", "engine", "hub id", "params (B)", "bf16 GB", "80GB GPUs bf16", "1-GPU quant")]
    for name, path in model_catalog().items():
        cfg = load_model_config(path, name)
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
    _print_table(rows)
    return 0


def cmd_datasets() -> int:
    rows = [("name", "format", "annotations", "about")]
    for name, path in dataset_catalog().items():
        cfg = load_dataset_config(path)
        where = cfg.path or cfg.root or f"<--dataset-root>/{cfg.annotations or ''}"
        rows.append((name, cfg.format, where, cfg.description or (f"data: {cfg.docs}" if cfg.docs else "")))
    _print_table(rows)
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "models":
            return cmd_models()
        return cmd_datasets()
    except ConfigError as exc:
        print(f"vlm-bench: {exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
