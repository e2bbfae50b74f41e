"""``vlm-bench report``: a run's results as Markdown and as one self-contained HTML page
(plots and frame thumbnails embedded as PNG data URIs)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from vlm_bench.results import ITEMS_FILE, SUMMARY_FILE, fmt_interval, fmt_rate, read_records
from vlm_bench.results.summary import interval_or_why
from vlm_bench.results.manifest import hardware_line
from vlm_bench.utils.readers import READERS, MediaError, open_reader
from vlm_bench.utils.video import IMAGE_SUFFIXES

THUMB_HEIGHT = 96
MAX_FAILED_SHOWN = 50


def _ci(ci: Sequence[float] | None) -> str:
    return fmt_interval(ci) + "%" if ci else "-"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("plots need matplotlib: pip install 'vlm-bench[report]'") from exc
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def latency_figure(records: Sequence[Mapping[str, Any]], stats: Mapping[str, Any] | None):
    """A histogram of per-item latency; its median and p90 lines and title are
    ``summary.json``'s own (``stats``), so the plot and the summary never disagree."""
    values = [r["latency_ms"] for r in records if r.get("latency_ms") is not None]
    if not values or not stats:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(values, bins=min(30, max(5, len(values) // 2)), color="#4c72b0", edgecolor="white")
    for name, style in (("p50", "-"), ("p90", "--")):
        ax.axvline(stats[name], color="#c44e52", linestyle=style, linewidth=1.2, label=f"{name} {stats[name]:.1f} ms")
    ax.margins(x=0.06)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.set_xlabel("latency per item (ms)")
    ax.set_ylabel("items")
    ax.set_title(f"Latency of {len(values)} items: median {stats['p50']:.1f} ms, p90 {stats['p90']:.1f} ms")
    return fig


def latency_histogram(records: Sequence[Mapping[str, Any]], stats: Mapping[str, Any] | None) -> bytes | None:
    fig = latency_figure(records, stats)
    return _png(fig) if fig is not None else None


LABEL_X = 103  # value labels sit right of the 100% line, inside the axes (xlim runs to LABEL_END)
LABEL_END = 145


def interval_text(bucket: Mapping[str, Any]) -> str:
    """The 95% interval as text with its unit, or why there is none worth showing."""
    text = interval_or_why(bucket)
    return text + "%" if bucket.get("ci95") and text[0].isdigit() else text


def category_figure(summary: Mapping[str, Any]):
    """Pass rate per category as horizontal bars, the overall rate first, each with its
    95% interval as a whisker (none where too few items give no interval); every label
    inside the axes."""
    cats = {k: v for k, v in summary.get("per_category", {}).items() if v.get("pass_rate") is not None}
    if not cats or summary.get("pass_rate") is None:
        return None
    plt = _pyplot()
    rows = [("overall", summary)] + [(name, cats[name]) for name in cats]
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(rows) + 1.3))
    for y, (name, bucket) in enumerate(rows):
        rate = 100 * bucket["pass_rate"]
        ax.barh(y, rate, color="#4c72b0" if y == 0 else "#55a868", height=0.65)
        shown = interval_text(bucket)
        has_interval = shown not in ("too few items", "one video only", "-")
        if has_interval:
            lo, hi = (100 * v for v in bucket["ci95"])
            ax.errorbar(rate, y, xerr=[[rate - lo], [hi - rate]], fmt="none", ecolor="#222222", capsize=3, linewidth=1)
        label = f"{rate:.0f}%  n={bucket['scored']}" + ("" if has_interval else f"  ({shown})")
        ax.text(LABEL_X, y, label, va="center", fontsize=8)
    ax.axhline(0.5, color="#999999", linewidth=0.8)
    ax.axvline(100, color="#999999", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, LABEL_END)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("pass rate (%), whiskers: 95% interval clustered by video")
    ax.set_title("Pass rate per category")
    return fig


def category_bars(summary: Mapping[str, Any]) -> bytes | None:
    fig = category_figure(summary)
    return _png(fig) if fig is not None else None


def thumbnails(record: Mapping[str, Any], max_frames: int = 8) -> bytes | None:
    """The item's sampled frames side by side (re-read from its media), or None."""
    media, video = record.get("media"), record.get("video") or {}
    indices = list(video.get("selected_indices") or [])
    if not media or not indices:
        return None
    try:
        frames = _read(media, video.get("reader"), indices)
    except (MediaError, OSError, ValueError, IndexError):
        return None
    step = max(1, len(frames) // max_frames)
    row = [cv2.resize(f, (max(1, round(f.shape[1] * THUMB_HEIGHT / f.shape[0])), THUMB_HEIGHT)) for f in frames[::step]]
    strip = np.concatenate(row, axis=1)
    ok, png = cv2.imencode(".png", cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    return png.tobytes() if ok else None


def _read(media: str, reader: str | None, indices: list[int]) -> list[np.ndarray]:
    if reader == "image":  # image files, or a video's last frame ("<video>#last-frame")
        from vlm_bench.utils.video import read_image_frames

        paths = [p.strip() for p in media.split(", ")]
        return read_image_frames([paths[i] for i in indices], len(indices))[0]
    if reader == "image-folder":
        files = sorted(f for f in os.listdir(media) if f.lower().endswith(IMAGE_SUFFIXES))
        return [cv2.cvtColor(cv2.imread(os.path.join(media, files[i])), cv2.COLOR_BGR2RGB) for i in indices]
    try:
        video = open_reader(media, reader if reader in READERS else "auto")
    except RuntimeError:  # the run's reader is not installed here; every reader gives the same frames
        video = open_reader(media, "auto")
    return video.read(indices)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def build_report(results_dir: str | os.PathLike) -> tuple[str, str]:
    """(Markdown, HTML) for the run in ``results_dir``; also writes report.md,
    report.html and the plots as PNG files there."""
    root = Path(results_dir)
    summary = json.loads((root / SUMMARY_FILE).read_text(encoding="utf-8"))
    records = read_records(root / ITEMS_FILE)
    manifest = summary.get("manifest", {})
    config = manifest.get("config", {})
    title = report_title(summary, config)
    plots = {"latency": latency_histogram(records, summary.get("latency_ms")), "categories": category_bars(summary)}
    for name, png in plots.items():
        if png:
            (root / f"{name}.png").write_bytes(png)
    failed = [r for r in records if r.get("passed") is False]

    rows = [("overall", summary)] + [(f"dataset {k}", v) for k, v in summary.get("per_dataset", {}).items()]
    rows += [(f"category {k}", v) for k, v in summary.get("per_category", {}).items()]
    for name, values in summary.get("breakdowns", {}).items():
        rows += [(f"{name}: {k}", v) for k, v in values.items()]

    md = [f"# {title}", ""]
    md += [f"- results: `{root}`", f"- started {manifest.get('started_at', '?')}, finished {manifest.get('finished_at', '?')}"]
    md += [f"- {run_context(summary, config, manifest)}, git {json.dumps(manifest.get('git'))}"]
    md += [f"- datasets: {', '.join(d['name'] for d in config.get('datasets', []))}"] if config.get("datasets") else []
    incomplete = incomplete_note(summary)
    md += [f"- **INCOMPLETE**: {_md(incomplete)}"] if incomplete else []
    md += [""]
    columns = rate_columns(summary)
    md += ["| scope | " + " | ".join(name for name, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    md += ["| " + " | ".join([_md(n), *(value(b) for _, value in columns)]) + " |" for n, b in rows]
    if summary.get("vmevalkit"):
        from vlm_bench.grading import format_grading

        md += ["", "## Video-generation models, judged", "", "```text", *format_grading(summary["vmevalkit"]), "```"]
    md += ["", "## Where the time goes", "", f"Measured on: {_md(hardware_line(manifest))}", ""]
    md += ["| stage | median |", "|---|---|"] + [f"| {_md(name)} | {value} |" for name, value in stage_rows(summary)]
    md += ["", "![latency](latency.png)" if plots["latency"] else "", "![categories](categories.png)" if plots["categories"] else ""]
    md += ["", f"## Failed items ({len(failed)})", ""]
    md += ["| id | dataset | prediction | answer | error |", "|---|---|---|---|---|"]
    md += [
        f"| {_md(r['id'])} | {_md(r['dataset'])} | {_md(r.get('prediction'))} | {_md(r.get('answer'))} | {_md(r.get('error'))} |"
        for r in failed[:MAX_FAILED_SHOWN]
    ]
    markdown = "\n".join(md) + "\n"

    page = _html_page(title, summary, manifest, config, rows, plots, failed, incomplete)
    (root / "report.md").write_text(markdown, encoding="utf-8")
    (root / "report.html").write_text(page, encoding="utf-8")
    return markdown, page


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.35}
h1{font-size:1.5em;margin-bottom:.2em}.context{color:#555;margin-top:0}
.headline{font-size:1.3em;margin:.8em 0}.headline b{font-size:1.5em}
table{border-collapse:collapse;margin:.6em 0;max-width:100%}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;overflow-wrap:anywhere}th{overflow-wrap:normal}
th{background:#f2f2f2}.num{text-align:right;white-space:nowrap}tr.overall td{font-weight:bold}
img{max-width:100%;height:auto;display:block;margin:.4em 0}
.fail{margin:1em 0;padding:.6em;border-left:4px solid #c44e52;background:#fafafa}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:.2em 0}
.incomplete{color:#c44e52}details{margin:1em 0}summary{cursor:pointer;font-weight:bold}
"""


def rate_columns(summary: dict) -> list[tuple[str, Callable[[dict], str]]]:
    """The pass-rate table's columns after the scope, for report.md and report.html; a
    ``missing media`` column where some items' media were missing (left out of the rate)."""
    columns: list[tuple[str, Callable[[dict], str]]] = [
        ("passed", lambda b: str(b["passed"])),
        ("scored", lambda b: str(b["scored"])),
        ("pass rate", lambda b: fmt_rate(b["pass_rate"])),
        ("95% interval", interval_text),
        ("errors", lambda b: str(b["errors"])),
        ("truncated", lambda b: str(b["truncated"])),
        ("unscored", lambda b: str(b["unscored"])),
    ]
    if summary.get("missing_media"):
        columns.append(("missing media", lambda b: str(b.get("missing_media", 0))))
    return columns


def _html_page(title, summary, manifest, config, rows, plots, failed, incomplete) -> str:
    """Pass rates and their intervals first, then the plots, then the failed items; the
    manifest folded at the end."""
    esc = html.escape
    columns = rate_columns(summary)
    datasets = ", ".join(d["name"] for d in config.get("datasets", []))
    context = (
        f"{summary.get('total', '?')} items of {esc(datasets or '?')}; {esc(run_context(summary, config, manifest))}; "
        f"finished {esc(str(manifest.get('finished_at', '?')))}"
    )
    overall = (
        f"<p class=headline>pass rate <b>{fmt_rate(summary.get('pass_rate'))}</b> "
        f"(95% interval {esc(interval_text(summary))}, {summary.get('passed', 0)} of {summary.get('scored', 0)} scored items)</p>"
    )
    parts = [
        "<!doctype html><html lang=en><head><meta charset='utf-8'>",
        "<meta name=viewport content='width=device-width, initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1><p class=context>{context}</p>",
        *([f"<p class=incomplete><b>INCOMPLETE</b>: {esc(incomplete)}</p>"] if incomplete else []),
        overall,
        "<h2>Pass rates</h2><table><tr><th>scope</th>" + "".join(f"<th>{esc(name)}</th>" for name, _ in columns) + "</tr>",
    ]
    parts += [
        f"<tr{' class=overall' if n == 'overall' else ''}><td>{esc(n)}</td>"
        + "".join(f"<td class=num>{esc(value(b))}</td>" for _, value in columns)
        + "</tr>"
        for n, b in rows
    ]
    parts.append("</table>")
    if summary.get("vmevalkit"):
        from vlm_bench.grading import format_grading

        parts.append("<h2>Video-generation models, judged</h2><pre>" + esc("\n".join(format_grading(summary["vmevalkit"])))
                     + "</pre>")
    if plots["categories"]:
        parts.append(f"<h2>Pass rate per category</h2><img alt='categories' src='{_data_uri(plots['categories'])}'>")
    parts.append(f"<h2>Where the time goes</h2><p>Measured on: {esc(hardware_line(manifest))}</p><table>"
                 "<tr><th>stage</th><th>median</th></tr>"
                 + "".join(f"<tr><td>{esc(n)}</td><td class=num>{esc(v)}</td></tr>" for n, v in stage_rows(summary))
                 + "</table>")
    if plots["latency"]:
        parts.append(f"<img alt='latency' src='{_data_uri(plots['latency'])}'>")
    parts.append(f"<h2>Failed items ({len(failed)})</h2>")
    for r in failed[:MAX_FAILED_SHOWN]:
        thumb = thumbnails(r)
        parts.append(
            f"<div class=fail><b>{esc(r['dataset'])}/{esc(r['id'])}</b> ({esc(r.get('scorer') or '')})"
            f"<pre>Q: {esc(r.get('question') or '')}</pre>"
            + (f"<pre>options:\n{esc(chr(10).join(r['options']))}</pre>" if r.get("options") else "")
            + f"<pre>prediction: {esc(str(r.get('prediction')))}</pre>"
            f"<pre>answer: {esc(str(r.get('answer')))}</pre>"
            + (f"<pre>error: {esc(r['error'])}</pre>" if r.get("error") else "")
            + (f"<img alt='frames of {esc(r['id'])}' src='{_data_uri(thumb)}'>" if thumb else "")
            + "</div>"
        )
    if len(failed) > MAX_FAILED_SHOWN:
        parts.append(f"<p>... and {len(failed) - MAX_FAILED_SHOWN} more in items.jsonl</p>")
    run_facts = {k: manifest.get(k) for k in ("started_at", "finished_at", "seed", "git", "hardware", "engine", "cpu_threads",
                                              "versions", "argv") if k in manifest}
    parts.append(
        "<details><summary>Manifest: versions, command line, resolved configuration</summary>"
        "<pre>" + esc(json.dumps(run_facts, indent=1)) + "</pre>"
        "<pre>" + esc(json.dumps(config, indent=1)) + "</pre></details>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def report_title(summary: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """What ran: a model on its engine, or a video generator."""
    if "generation" in summary:
        generator = (config.get("generator") or {}).get("name") or summary["generation"].get("generator", "?")
        return f"vlm-bench report: video generation by {generator}"
    return f"vlm-bench report: {config.get('model', {}).get('name', '?')} on {config.get('backend', '?')}"


def run_context(summary: Mapping[str, Any], config: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    if "generation" in summary:
        g = summary["generation"]
        return (f"{g.get('tasks')} tasks: {g.get('generated')} generated, {g.get('reused')} already there, "
                f"{g.get('failed')} failed; outputs {g.get('outputs_dir')}; seed {manifest.get('seed')}")
    return f"quant {config.get('quant')}, seed {manifest.get('seed')}"


STAGE_LABELS = {
    "frames_wait_ms": "waiting for frames",
    "frames_decode_ms": "decoding frames",
    "prompt_ms": "building the prompt",
    "processor_ms": "processor (resize, tiles, tokens) / request",
    "prefill_ms": "prefill (to the first new token)",
    "decode_ms": "decoding new tokens",
    "generate_ms": "the whole engine call",
    "score_ms": "scoring",
}


def stage_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(stage, median) rows: the item latency, then each stage the records timed."""
    latency = summary.get("latency_ms") or {}
    rows = [("item latency (p50 / p90)", f"{latency['p50']:.1f} / {latency['p90']:.1f} ms")] if latency else []
    stages = summary.get("stages_ms") or {}
    rows += [(label, f"{stages[name]:.1f} ms") for name, label in STAGE_LABELS.items() if name in stages]
    if "tokens_per_s" in stages:
        rows.append(("new tokens per second (one sequence)", f"{stages['tokens_per_s']:.1f}"))
    return rows or [("no stage timed", "-")]


def incomplete_note(summary: Mapping[str, Any]) -> str | None:
    """Why the run's summary does not cover all its items (a run stopped early, or a merge
    of a partial set of shards), or None."""
    if summary.get("complete") is not False:
        return None
    if summary.get("incomplete"):
        return "; ".join(summary["incomplete"])
    return f"{summary['total']} items ran, {summary.get('items_not_run', '?')} did not ({summary.get('stopped') or 'stopped early'})"


def _md(value: Any) -> str:
    """Text for one Markdown table cell: cut at 200, HTML escaped (a viewer that renders
    inline HTML must not run a ``<script>`` from an id or a prediction), ``|`` escaped,
    line breaks as spaces."""
    text = ("" if value is None else str(value))[:200]
    text = html.escape(text, quote=False)
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").splitlines())
