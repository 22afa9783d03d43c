"""The report page: one self-contained HTML file (figures embedded as base64 PNG; WAV files linked beside it)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

Column = tuple[str, str, str]
"""A table column: key in a result row, header, format."""

MODEL_COLUMNS: tuple[Column, ...] = (("model", "model", "{}"), ("module", "module", "{}"))
TABLES: tuple[tuple[str, tuple[Column, ...]], ...] = (
    ("Posterior and dependence", MODEL_COLUMNS + (
        ("dim", "dim", "{}"),
        ("kl_total", "KL to prior (nats/frame)", "{:.2f}"),
        ("n_active", "active units", "{}"),
        ("gaussian_tc", "Gaussian TC (nats, bias-corrected)", "{:.2f}"),
        ("gaussian_tc_per_dim", "Gaussian TC / dim", "{:.4f}"),
        ("kde_tc", "KDE TC (nats, small subsets)", "{:.3f}"),
    )),
    ("Probes and decoders", MODEL_COLUMNS + (
        ("probe_accuracy", "label probe accuracy (bias-free, clip means)", "{:.3f}"),
        ("top4_share", "top-4 share of |w|", "{:.3f}"),
        ("row_pr_fraction", "participation ratio / dim (rows)", "{:.3f}"),
        ("dim_pr_fraction", "participation ratio / dim (dims)", "{:.3f}"),
        ("knn_accuracy", "5-NN accuracy (clip means)", "{:.3f}"),
        ("phone_accuracy", "phone probe accuracy (10 ms frames)", "{:.3f}"),
        ("ics_mean_relative", "ICS mean relative error", "{:.3f}"),
        ("logmel_error_ratio", "log-mel error / per-clip-mean error", "{:.3f}"),
        ("reconstruction_error", "waveform MSE / signal power", "{:.3f}"),
    )),
)
"""The report's tables: a title and columns each (the model and module columns repeat in both)."""
COLUMNS: tuple[Column, ...] = MODEL_COLUMNS + tuple(c for _, columns in TABLES for c in columns[2:])
"""Every table column once."""
NEGATIVE: dict[str, str] = {
    "gaussian_tc": ("Gaussian TC is bias-corrected: the value expected for independent dimensions is subtracted, so "
                    "nearly independent dimensions can come out slightly below 0 (no measurable dependence)."),
    "kde_tc": ("KDE TC is a difference of leave-one-out entropy estimates, each with its own error; a small "
               "negative value means no measurable dependence."),
}
"""Why a column can hold a negative number (cells below 0 link here); other columns cannot be negative."""
NEGATIVE["gaussian_tc_per_dim"] = NEGATIVE["gaussian_tc"]
MISSING = "missing"
"""Key of a result row's ``{column key: why it has no value}``; each dash in the table links to its reason."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.35em; text-align: right; overflow-wrap: anywhere; }
th { font-weight: 600; font-size: 0.9em; background: #f3f3f3; vertical-align: bottom; }
td:first-child, td:nth-child(2), th:first-child, th:nth-child(2) { text-align: left; }
sup a { text-decoration: none; } h3 { margin-bottom: 0.2em; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.8em; color: #555; max-width: 60em; }
.audio { font-size: 0.8em; } .audio span { display: inline-block; margin: 0.2em 0.6em 0.2em 0; }
.notes { font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.6em; font-size: 0.8em; white-space: pre-wrap; overflow-wrap: anywhere; }
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


class Footnotes:
    """Numbered explanations of the table's dashes and negative numbers, each text numbered once."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        """A superscript link to ``text``'s note, numbering it on first use."""
        if text not in self.texts:
            self.texts.append(text)
        number = self.texts.index(text) + 1
        return f'<sup><a href="#note-{number}" title="{html.escape(text)}">{number}</a></sup>'

    def render(self) -> str:
        items = "".join(f'<li id="note-{i}" value="{i}">{html.escape(t)}</li>' for i, t in enumerate(self.texts, 1))
        return f'<ol class="notes">{items}</ol>' if items else ""


def _cell(row: dict, key: str, fmt: str, notes: Footnotes) -> str:
    value = row.get(key)
    if value is None:
        why = row.get(MISSING, {}).get(key, "not computed for this row")
        return "&ndash;" + notes.mark(f"Dash: {why}")
    try:
        text = html.escape(fmt.format(value))
    except (ValueError, TypeError):
        return html.escape(str(value))
    if text.startswith("-"):  # also "-0.00" for a value just below 0
        text += notes.mark(f"Negative: {NEGATIVE.get(key, 'below 0 for this measure')}")
    return text


def render_table(rows: list[dict], columns: Sequence[Column] = COLUMNS, notes: Footnotes | None = None) -> str:
    """An HTML table with one row per result row, keeping only columns that have a value somewhere (and the model
    and module columns); dashes and negative numbers link to numbered notes in ``notes``."""
    notes = notes if notes is not None else Footnotes()
    used = [c for c in columns if c in MODEL_COLUMNS or any(r.get(c[0]) is not None for r in rows)]
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in used)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r, k, f, notes)}</td>" for k, _, f in used) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_tables(rows: list[dict]) -> str:
    """:data:`TABLES`, each under its title, then the notes their dashes and negative numbers link to."""
    notes = Footnotes()
    parts = [f"<h3>{html.escape(title)}</h3>" + render_table(rows, columns, notes) for title, columns in TABLES]
    return "\n".join(parts) + notes.render()


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


SETTINGS_NOTE = ("Negative numbers in the settings are latent shifts (traversal_sd: multiples of a dimension's "
                 "posterior standard deviation; below 0 lowers the dimension); every time is in seconds.")


def render_report(title: str, intro: str, rows: list[dict], sections: list[ReportSection], settings: dict,
                  timings: dict, notes: Sequence[str] = ()) -> str:
    """The whole page: title, introduction, the tables of measures (their dashes and negative numbers explained),
    notes, the sections, then settings and timings."""
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>",
        "<h2>Measures</h2>", render_tables(rows),
        f"<ul>{note_items}</ul>" if note_items else "",
        *(_section(s) for s in sections),
        "<h2>Settings and timings</h2>", f"<p>{html.escape(SETTINGS_NOTE)}</p>",
        f"<pre>{html.escape(json.dumps({'settings': settings, 'seconds': timings}, indent=1, default=str))}</pre>",
        "</body></html>",
    ])
