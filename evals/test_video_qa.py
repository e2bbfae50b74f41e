"""Video QA: one test per dataset item. Choose model, backend and data with the
vlm-bench options (``pytest evals --help``); results go to --results-dir."""


def test_video_qa(vlm_item, vlm_evaluate):
    record = vlm_evaluate(vlm_item)
    assert record.error is None, record.error
    assert record.passed, record.failure_summary()
