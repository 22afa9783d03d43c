"""The report page: one self-contained HTML file (figures embedded as base64 PNG; WAV files linked beside it)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "model", "{}"),
    ("module", "module", "{}"),
    ("dim", "dim", "{}"),
    ("kl_total", "KL to prior (nats/frame)", "{:.2f}"),
    ("n_active", "active units", "{}"),
    ("gaussian_tc", "Gaussian TC (nats, bias-corrected)", "{:.2f}"),
    ("gaussian_tc_per_dim", "Gaussian TC / dim", "{:.4f}"),
    ("kde_tc", "KDE TC (nats, small subsets)", "{:.3f}"),
    ("probe_accuracy", "bias-free probe accuracy", "{:.3f}"),
    ("top4_share", "top-4 share of |w|", "{:.3f}"),
    ("row_pr_fraction", "participation ratio / dim (rows)", "{:.3f}"),
    ("dim_pr_fraction", "participation ratio / dim (dims)", "{:.3f}"),
    ("knn_accuracy", "5-NN accuracy (pooled)", "{:.3f}"),
    ("ics_mean_relative", "ICS mean relative error", "{:.3f}"),
    ("reconstruction_error", "reconstruction MSE / signal power", "{:.3f}"),
)
"""Table columns: key in a result row, header, format."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.8em; margin: 1em 0; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.3em; text-align: right; overflow-wrap: anywhere; }
th { font-weight: 600; font-size: 0.9em; hyphens: auto; }
th { background: #f3f3f3; } td:first-child, td:nth-child(2) { text-align: left; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.8em; color: #555; max-width: 60em; }
.audio { font-size: 0.8em; } .audio span { display: inline-block; margin: 0.2em 0.6em 0.2em 0; }
.scroll { overflow-x: auto; }
pre { background: #f7f7f7; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
"""


@dataclass
class ReportFigure:
    """One image of the report: a title, a caption and its PNG bytes."""

    title: str
    caption: str
    png: bytes


@dataclass
class ReportSection:
    """A heading with an explanation, figures and links to WAV files (``(label, path relative to the page)``)."""

    title: str
    text: str = ""
    figures: list[ReportFigure] = field(default_factory=list)
    audio: list[tuple[str, str]] = field(default_factory=list)


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "&ndash;"
    try:
        return html.escape(fmt.format(value))
    except (ValueError, TypeError):
        return html.escape(str(value))


def render_table(rows: list[dict], columns=COLUMNS) -> str:
    """An HTML table with one row per result row, keeping only columns that have a value somewhere."""
    used = [c for c in columns if any(r.get(c[0]) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in used)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r, k, f)}</td>" for k, _, f in used) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _figure(item: ReportFigure) -> str:
    data = base64.b64encode(item.png).decode("ascii")
    return (f'<figure><img alt="{html.escape(item.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{html.escape(item.title)}.</b> {html.escape(item.caption)}</figcaption></figure>")


def _section(section: ReportSection) -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    if section.text:
        parts.append(f"<p>{html.escape(section.text)}</p>")
    parts.extend(_figure(f) for f in section.figures)
    if section.audio:
        links = "".join(f'<span><a href="{html.escape(path)}">{html.escape(label)}</a></span>'
                        for label, path in section.audio)
        parts.append(f'<div class="audio">WAV: {links}</div>')
    return "\n".join(parts)


def render_report(title: str, intro: str, rows: list[dict], sections: list[ReportSection], settings: dict,
                  timings: dict, notes: Sequence[str] = ()) -> str:
    """The whole page: title, introduction, the table of measures, sections, notes, settings and timings."""
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>",
        "<h2>Measures</h2>", render_table(rows),
        f"<ul>{note_items}</ul>" if note_items else "",
        *(_section(s) for s in sections),
        "<h2>Settings and timings</h2>",
        f"<pre>{html.escape(json.dumps({'settings': settings, 'seconds': timings}, indent=1, default=str))}</pre>",
        "</body></html>",
    ])
