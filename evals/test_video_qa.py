"""Video QA: one test per dataset item. Choose model, backend and data with the
vlm-bench options (``pytest evals --help``); results go to --results-dir."""

import pytest


def test_video_qa(vlm_item, vlm_evaluate):
    record = vlm_evaluate(vlm_item)
    if record.missing_media:  # the benchmark lists it, the download lacks it: not a wrong answer
        pytest.skip(f"missing media: {record.missing_media} (left out of the pass rate, counted as missing)")
    if record.passed is None:  # answered, but the item holds nothing checkable
        pytest.skip(f"unscored: {vlm_item.id} has no checkable answer; its prediction is in items.jsonl")
    if not record.passed:
        pytest.fail(record.failure_summary(), pytrace=False)
