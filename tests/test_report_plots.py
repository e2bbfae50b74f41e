"""The report's plots say what summary.json says: the latency title's p90 is the summary's,
the category chart starts with the overall rate, draws each interval as a whisker, keeps
every label inside its axes and says "too few items" for a category of one."""

import pytest

from vlm_bench.report import category_figure, interval_text, latency_figure
from vlm_bench.results import summarize


def record(i, passed, category, latency, cluster=None):
    return {"id": f"q{i}", "dataset": "d", "category": category, "passed": passed, "error": None,
            "latency_ms": latency, "cluster": cluster or f"v{i}", "categories": {}}


@pytest.fixture
def records():
    out = [record(i, i % 3 != 0, "many", 100.0 + 37 * i) for i in range(30)]
    out.append(record(99, True, "single", 5000.0))
    out += [record(100 + i, i == 0, "one video", 50.0, cluster="same") for i in range(3)]
    return out


def test_latency_title_and_lines_are_the_summarys(records):
    summary = summarize(records)
    fig = latency_figure(records, summary["latency_ms"])
    title = fig.axes[0].get_title()
    assert f"p90 {summary['latency_ms']['p90']:.1f} ms" in title and f"median {summary['latency_ms']['p50']:.1f} ms" in title
    lines = [line.get_xdata()[0] for line in fig.axes[0].lines]
    assert lines == [summary["latency_ms"]["p50"], summary["latency_ms"]["p90"]]


def test_category_chart_overall_first_whiskers_and_labels_inside(records):
    summary = summarize(records)
    fig = category_figure(summary)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["overall", "many", "one video", "single"]
    whiskers = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(whiskers) == 2  # overall and "many"; none for one item or one video
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    for text in ax.texts:
        box = text.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, text.get_text()
    labels = {t.get_text() for t in ax.texts}
    assert "100%  n=1  (too few items)" in labels and any(l.endswith("(one video only)") for l in labels)


def test_interval_text_for_thin_evidence():
    assert interval_text({"pass_rate": 1.0, "scored": 1, "clusters": 1, "ci95": [0.0, 1.0]}) == "too few items"
    assert interval_text({"pass_rate": 0.5, "scored": 4, "clusters": 1, "ci95": [0.0, 1.0]}) == "one video only"
    assert interval_text({"pass_rate": 0.5, "scored": 4, "clusters": 4, "ci95": [0.2, 0.8]}) == "20.0-80.0%"
    assert interval_text({"pass_rate": None, "scored": 0}) == "-"
