import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SMOKE_JSONL, read_jsonl
from vlm_bench.cli import main
from vlm_bench.options import OPTIONS, option_args

VLM_BENCH = str(Path(sys.executable).with_name("vlm-bench"))


def test_models_lists_the_catalog(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for size in ("1B", "2B", "8B", "9B", "14B", "38B", "78B"):
        assert f"OpenGVLab/InternVL3-{size} " in out
    line_38b = next(line for line in out.splitlines() if line.startswith("internvl3_38b"))
    assert line_38b.split()[4:] == ["38.4", "76.8", "2", "int8"]


def test_datasets_lists_configs(capsys):
    assert main(["datasets"]) == 0
    assert any(line.startswith("smoke ") and "smoke.jsonl" in line for line in capsys.readouterr().out.splitlines())


def test_option_args_round_trip():
    values = {"vlm_model": "m", "vlm_datasets": ["a", "b"], "vlm_overwrite": True, "vlm_seed": None, "vlm_max_frames": 4}
    assert option_args(values) == ["--model", "m", "--dataset", "a", "--dataset", "b", "--max-frames", "4", "--overwrite"]
    # --seed has no default of its own (a generator's preset may carry one): a seed given is passed on, 0 included
    assert option_args(dict(values, vlm_seed=0))[-3:] == ["--seed", "0", "--overwrite"]
    assert len({o.flag for o in OPTIONS}) == len(OPTIONS)


@pytest.mark.smoke
def test_run_is_a_pytest_session_with_the_same_options(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [VLM_BENCH, "run", "--dataset", str(SMOKE_JSONL), "--max-frames", "4", "--results-dir", str(out),
         "--", "-q", "-p", "no:cacheprovider", "-k", "square"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    records = read_jsonl(out / "items.jsonl")
    assert [r["id"] for r in records] == ["square_direction", "square_colour_mc"]
    assert all(len(r["video"]["selected_indices"]) == 4 for r in records)
    assert json.loads((out / "summary.json").read_text())["pass_rate"] == 1.0


def test_run_exit_code_is_pytests(tmp_path):
    proc = subprocess.run([VLM_BENCH, "run", "--model", "nope"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 4 and "unknown model 'nope'" in proc.stderr


def test_from_another_directory_pytest_finds_the_plugin(tmp_path):
    """``pytest evals`` from outside the checkout: the plugin arrives by its entry point."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "evals"), "--dataset", str(SMOKE_JSONL), "-q",
         "-p", "no:cacheprovider", "--results-dir", str(tmp_path / "o")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "9 passed" in proc.stdout


def test_run_forwards_pytest_and_plugin_options_without_dashes(tmp_path):
    """-n 2 (pytest-xdist), -k and -p go to pytest as they are, with no `--` needed."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [VLM_BENCH, "run", "--dataset", str(SMOKE_JSONL), "-n", "2", "-p", "no:cacheprovider",
         "-k", "square", "--results-dir", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 workers" in proc.stdout and "2 passed" in proc.stdout
    assert sorted(r["id"] for r in read_jsonl(out / "items.jsonl")) == ["square_colour_mc", "square_direction"]


def test_run_arguments_after_dashes_still_go_to_pytest():
    from vlm_bench.cli import parse_args

    args = parse_args(["run", "--dataset", "smoke", "-x", "--", "-k", "square and mc"])
    assert args.vlm_datasets == ["smoke"] and args.pytest_args == ["-x", "-k", "square and mc"]


def test_other_commands_refuse_unknown_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["models", "-n", "2"])
    assert exc.value.code == 2 and "unrecognized arguments: -n 2" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["2/2", "-1/2", "5/4"])
def test_shard_out_of_range_states_the_valid_range(spec, capsys):
    with pytest.raises(SystemExit):
        main(["run", f"--shard={spec}"])
    err = capsys.readouterr().err
    n = int(spec.split("/")[1])
    assert "counted from 0" in err and f"0 to {n - 1}" in err, err
