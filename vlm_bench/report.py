"""``vlm-bench report``: a run's results as Markdown and as one self-contained HTML page
(plots and frame thumbnails embedded as PNG data URIs)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from vlm_bench.results import ITEMS_FILE, SUMMARY_FILE, fmt_interval, fmt_rate, read_records
from vlm_bench.utils.video import IMAGE_SUFFIXES, MediaError, open_reader

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


def latency_histogram(records: Sequence[Mapping[str, Any]]) -> bytes | None:
    values = [r["latency_ms"] for r in records if r.get("latency_ms") is not None]
    if not values:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(values, bins=min(30, max(5, len(values) // 2)), color="#4c72b0", edgecolor="white")
    ax.set_xlabel("latency per item (ms)")
    ax.set_ylabel("items")
    ax.set_title(f"Latency: median {np.median(values):.1f} ms, p90 {np.percentile(values, 90):.1f} ms")
    return _png(fig)


def category_bars(summary: Mapping[str, Any]) -> bytes | None:
    cats = {k: v for k, v in summary.get("per_category", {}).items() if v.get("pass_rate") is not None}
    if not cats:
        return None
    plt = _pyplot()
    names = list(cats)
    rates = [100 * cats[n]["pass_rate"] for n in names]
    lows = [100 * (cats[n]["pass_rate"] - cats[n]["ci95"][0]) for n in names]
    highs = [100 * (cats[n]["ci95"][1] - cats[n]["pass_rate"]) for n in names]
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 1.2))
    ax.barh(names, rates, xerr=[lows, highs], color="#55a868", ecolor="#333333", capsize=3)
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.set_xlabel("pass rate (%), with 95% interval clustered by video")
    for y, (rate, name) in enumerate(zip(rates, names)):
        ax.text(min(rate + 1, 92), y, f"{rate:.0f}% (n={cats[name]['scored']})", va="center", fontsize=8)
    return _png(fig)


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
    if reader == "image":
        paths = [p.strip() for p in media.split(", ")]
        return [cv2.cvtColor(cv2.imread(paths[i]), cv2.COLOR_BGR2RGB) for i in indices]
    if reader == "image-folder":
        files = sorted(f for f in os.listdir(media) if f.lower().endswith(IMAGE_SUFFIXES))
        return [cv2.cvtColor(cv2.imread(os.path.join(media, files[i])), cv2.COLOR_BGR2RGB) for i in indices]
    return open_reader(media, reader if reader in ("decord", "opencv") else "auto").read(indices)


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
    title = f"vlm-bench report: {config.get('model', {}).get('name', '?')} on {config.get('backend', '?')}"
    plots = {"latency": latency_histogram(records), "categories": category_bars(summary)}
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
    md += [f"- quant {config.get('quant')}, seed {manifest.get('seed')}, git {json.dumps(manifest.get('git'))}"]
    md += [f"- datasets: {', '.join(d['name'] for d in config.get('datasets', []))}"]
    incomplete = incomplete_note(summary)
    md += [f"- **INCOMPLETE**: {_md(incomplete)}"] if incomplete else []
    md += [""]
    md += ["| scope | passed | scored | pass rate | 95% CI | errors | truncated | unscored |", "|---|---|---|---|---|---|---|---|"]
    md += [
        f"| {_md(n)} | {b['passed']} | {b['scored']} | {fmt_rate(b['pass_rate'])} | {_ci(b['ci95'])} | {b['errors']} | {b['truncated']} | {b['unscored']} |"
        for n, b in rows
    ]
    md += ["", "![latency](latency.png)" if plots["latency"] else "", "![categories](categories.png)" if plots["categories"] else ""]
    md += ["", f"## Failed items ({len(failed)})", ""]
    md += ["| id | dataset | prediction | answer | error |", "|---|---|---|---|---|"]
    md += [
        f"| {_md(r['id'])} | {_md(r['dataset'])} | {_md(r.get('prediction'))} | {_md(r.get('answer'))} | {_md(r.get('error'))} |"
        for r in failed[:MAX_FAILED_SHOWN]
    ]
    markdown = "\n".join(md) + "\n"

    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        ".num{text-align:right}.fail{margin:1.2em 0;padding:.6em;border-left:4px solid #c44e52;background:#fafafa}"
        "pre{white-space:pre-wrap;margin:.2em 0}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        *([f"<p style='color:#c44e52'><b>INCOMPLETE</b>: {esc(incomplete)}</p>"] if incomplete else []),
        "<h2>Manifest</h2><pre>" + esc(json.dumps({k: manifest.get(k) for k in ("started_at", "finished_at", "seed", "git", "versions", "argv")}, indent=1)) + "</pre>",
        "<details><summary>resolved configuration</summary><pre>" + esc(json.dumps(config, indent=1)) + "</pre></details>",
        "<h2>Pass rates</h2><table><tr><th>scope</th><th>passed</th><th>scored</th><th>pass rate</th><th>95% CI</th>"
        "<th>errors</th><th>truncated</th><th>unscored</th></tr>",
    ]
    parts += [
        f"<tr><td>{esc(n)}</td><td class=num>{b['passed']}</td><td class=num>{b['scored']}</td><td class=num>{fmt_rate(b['pass_rate'])}</td>"
        f"<td class=num>{_ci(b['ci95'])}</td><td class=num>{b['errors']}</td><td class=num>{b['truncated']}</td><td class=num>{b['unscored']}</td></tr>"
        for n, b in rows
    ]
    parts.append("</table>")
    for name, caption in (("categories", "Pass rate per category"), ("latency", "Latency")):
        if plots[name]:
            parts.append(f"<h2>{caption}</h2><img alt='{name}' src='{_data_uri(plots[name])}'>")
    parts.append(f"<h2>Failed items ({len(failed)})</h2>")
    for r in failed[:MAX_FAILED_SHOWN]:
        thumb = thumbnails(r)
        parts.append(
            f"<div class=fail><b>{esc(r['dataset'])}/{esc(r['id'])}</b> ({esc(r.get('scorer') or '')})"
            f"<pre>Q: {esc(r.get('question') or '')}</pre><pre>prediction: {esc(str(r.get('prediction')))}</pre>"
            f"<pre>answer: {esc(str(r.get('answer')))}</pre>"
            + (f"<pre>error: {esc(r['error'])}</pre>" if r.get("error") else "")
            + (f"<img alt='frames of {esc(r['id'])}' src='{_data_uri(thumb)}'>" if thumb else "")
            + "</div>"
        )
    if len(failed) > MAX_FAILED_SHOWN:
        parts.append(f"<p>... and {len(failed) - MAX_FAILED_SHOWN} more in items.jsonl</p>")
    parts.append("</body></html>")
    page = "\n".join(parts)
    (root / "report.md").write_text(markdown, encoding="utf-8")
    (root / "report.html").write_text(page, encoding="utf-8")
    return markdown, page


def incomplete_note(summary: Mapping[str, Any]) -> str | None:
    """Why the run's summary does not cover all its items (a run stopped early, or a merge
    of a partial set of shards), or None."""
    if summary.get("complete") is not False:
        return None
    if summary.get("incomplete"):
        return "; ".join(summary["incomplete"])
    return f"{summary['total']} items ran, {summary.get('items_not_run', '?')} did not ({summary.get('stopped') or 'stopped early'})"


def _md(value: Any) -> str:
    """Text for one Markdown table cell: ``|`` escaped, line breaks as spaces, cut at 200."""
    text = "" if value is None else str(value)
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").splitlines())[:200]
