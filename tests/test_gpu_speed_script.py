"""The GPU speed script (tests/benchmarks/gpu_speed.py) runs, here in its small CPU-only
form: its rows carry the item time, items per second and the stage medians the records
timed. Its GPU rows run only on a GPU machine (docs/performance.md has their figures)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
SCRIPT = Path(__file__).resolve().parent / "benchmarks" / "gpu_speed.py"


def test_the_script_prints_a_row_per_configuration_with_its_stages(tmp_path):
    out = tmp_path / "speed.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True, text=True,
                          timeout=300, cwd=SCRIPT.parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["config"] == "tiny cpu, 1 thread" and row["items"] == 3 and row["items_per_s"] > 0
    assert {"frames_decode_ms", "processor_ms", "prefill_ms", "decode_ms", "generate_ms"} <= set(row["stages_ms"])
    assert row["item_over_bare"] > 0 and row["engine"]["device"] == "cpu"
    assert "measured on: no GPU" in done.stdout or "measured on: 1x" in done.stdout
    assert "tiny cpu, 1 thread" in done.stdout.splitlines()[-1]
