"""Video generation: one test per VMEvalKit task pair, run with ``--generator NAME``
(``pytest evals --help``, "vlm-bench generation"); the videos go to --outputs-dir in
VMEvalKit's tree and one record per task to items.jsonl."""

import pytest


def test_generation(gen_task, vlm_generate):
    record, reused = vlm_generate(gen_task)
    if reused:
        pytest.skip(f"already generated: {record.prediction} (--override to generate it again)")
    if not record.passed:
        pytest.fail(f"{gen_task.id}: {record.error}", pytrace=False)
