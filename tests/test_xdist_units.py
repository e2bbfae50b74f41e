"""xdist work units: a video's questions stay together (one decode per unit), a video
with many questions is cut into units so a one-video dataset still spreads over the
workers, and a worker's prefetch stays inside the unit it runs."""

import json
import re

from conftest import EVAL_TEST, SQUARE_MP4, read_jsonl
from vlm_bench.scheduling import MIN_UNIT, unit_size, work_units
from vlm_bench.types import Sample


def sample(i, video):
    return Sample(id=f"q{i}", dataset="d", question="q", answer="a", video=video)


def test_units_keep_a_video_together_and_cut_a_big_one():
    samples = [sample(i, "a.mp4") for i in range(3)] + [sample(i, "b.mp4") for i in range(3, 40)]
    ids = [s.id for s in samples]
    size = unit_size(len(samples), workers=2)
    assert size == 5
    units = work_units(samples, ids, size)
    assert len({units[i] for i in ids[:3]}) == 1  # a.mp4: one unit
    b_units = [units[i] for i in ids[3:]]
    assert len(set(b_units)) == 8 and all(b_units.count(u) <= size for u in set(b_units))
    assert b_units == sorted(b_units, key=b_units.index)  # consecutive runs
    assert unit_size(9, workers=2) == MIN_UNIT


def test_a_one_video_dataset_spreads_over_two_workers(pytester, tmp_path):
    data = tmp_path / "one_video.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i:02d}", "video": str(SQUARE_MP4), "question": "q", "answer": "a"}) + "\n"
                            for i in range(40)))
    pytester.makepyfile(test_items=EVAL_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "-v", "--dataset", str(data),
                                           "--results-dir", str(tmp_path / "out"))
    result.assert_outcomes(passed=40)
    ran_on = {m.group(1) for line in result.stdout.lines if (m := re.search(r"\[(gw\d+)\].* PASSED", line))}
    assert ran_on == {"gw0", "gw1"}
    workers = json.loads((tmp_path / "out" / "summary.json").read_text())["workers"]
    decoded = sum(w["frames"]["decoded"] for w in workers.values())
    assert 2 <= decoded <= 40 // unit_size(40, 2)  # once per unit at most, not once per question
    assert len(read_jsonl(tmp_path / "out" / "items.jsonl")) == 40
