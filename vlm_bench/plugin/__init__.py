"""The video-QA pytest plugin's hook classes, registered by ``vlm_bench.pytest_plugin``
when a session uses vlm-bench: ``session`` (the items: collection, parametrization,
evaluation), ``xdist`` (work units and GPU slices for pytest-xdist workers) and
``reports`` (records from test reports, progress, the summary). The work itself lives in
``vlm_bench.session`` and below."""

# What a test's report carries to the controller (under xdist another process).
RECORD_KEY = "vlm_bench_record"
UID_KEY = "vlm_bench_uid"  # on every report of a test that evaluates an item
REUSED_KEY = "vlm_bench_reused"
LOAD_ERROR_KEY = "vlm_bench_load_error"
WORKER_KEY = "vlm_bench_worker"
TRANSPORT_KEYS = (RECORD_KEY, UID_KEY, REUSED_KEY, LOAD_ERROR_KEY, WORKER_KEY)
UNIT_INPUT = "vlm_bench_unit_size"  # the xdist worker input with the work units' size
