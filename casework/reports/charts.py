"""Server-rendered SVG charts (matplotlib's SVG backend), readable without JavaScript.

Each chart is a static SVG put inline in the page with ``role="img"``, a title and a
description; the page shows the same numbers in a table beneath it and says what
the chart shows in a sentence, so nobody needs to read the picture. Colours are
from the GOV.UK palette. No pyplot: a ``Figure`` per chart keeps rendering
thread-safe inside the web server.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from html import escape
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

GOVUK_BLUE = "#1d70b8"
GOVUK_GREEN = "#00703c"
GOVUK_ORANGE = "#f47738"
GOVUK_RED = "#d4351c"
GOVUK_DARK_GREY = "#505a5f"
GOVUK_MID_GREY = "#b1b4b6"
GOVUK_BLACK = "#0b0c0c"
GOVUK_PURPLE = "#4c2c92"

_RC: Any = {
    "svg.fonttype": "none",  # keep text as text: selectable, scalable, read by tools
    "svg.hashsalt": "casework",  # stable ids, so the same figures give the same SVG
    "font.size": 11,
    "axes.edgecolor": GOVUK_DARK_GREY,
    "axes.labelcolor": GOVUK_BLACK,
    "xtick.color": GOVUK_BLACK,
    "ytick.color": GOVUK_BLACK,
    "text.color": GOVUK_BLACK,
}

Series = tuple[str, Sequence[float], str]  # name, values, colour


def stacked_bars(
    chart_id: str,
    title: str,
    description: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    value_label: str,
) -> str:
    """Horizontal stacked bars, one per category, with a legend: counts that add up."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        height = 1.2 + 0.45 * max(len(categories), 1)
        fig = Figure(figsize=(8.5, height), dpi=96)
        ax = fig.add_subplot()
        left = [0.0] * len(categories)
        positions = list(range(len(categories)))
        for name, values, colour in series:
            ax.barh(positions, values, left=left, color=colour, label=name, height=0.6)
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.set_yticks(positions, labels=[_wrap(c) for c in categories])
        ax.invert_yaxis()
        ax.set_xlabel(value_label)
        ax.spines[["top", "right"]].set_visible(False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(series), frameon=False)
        fig.tight_layout()
        return _svg(fig, chart_id, title, description)


def bars(
    chart_id: str,
    title: str,
    description: str,
    categories: Sequence[str],
    values: Sequence[float],
    *,
    value_label: str,
    colour: str = GOVUK_BLUE,
) -> str:
    """Vertical bars with their values written on them."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(8.5, 3.6), dpi=96)
        ax = fig.add_subplot()
        positions = list(range(len(categories)))
        drawn = ax.bar(positions, values, color=colour, width=0.6)
        ax.bar_label(drawn, labels=[f"{v:g}" for v in values], padding=2)
        ax.set_xticks(positions, labels=[_wrap(c, 18) for c in categories])
        ax.set_ylabel(value_label)
        ax.spines[["top", "right"]].set_visible(False)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        return _svg(fig, chart_id, title, description)


def line(
    chart_id: str,
    title: str,
    description: str,
    categories: Sequence[str],
    values: Sequence[float | None],
    *,
    value_label: str,
    ymax: float | None = None,
) -> str:
    """A line over months; a missing value (None) leaves a gap rather than a guess."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(8.5, 3.4), dpi=96)
        ax = fig.add_subplot()
        positions = list(range(len(categories)))
        ys = [float("nan") if v is None else v for v in values]
        ax.plot(positions, ys, color=GOVUK_BLUE, marker="o", linewidth=2)
        step = max(1, len(categories) // 12)
        ax.set_xticks(positions[::step], labels=list(categories)[::step], rotation=45, ha="right")
        ax.set_ylabel(value_label)
        if ymax is not None:
            ax.set_ylim(0, ymax)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color=GOVUK_MID_GREY, linewidth=0.5)
        fig.tight_layout()
        return _svg(fig, chart_id, title, description)


def _wrap(text: str, width: int = 38) -> str:
    words, lines, current = text.split(), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    lines.append(current)
    return "\n".join(lines)


_HEADER = re.compile(r"^.*?(<svg\b)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|xlink:href="#|href="#)([^")]+)')
_STYLE_ELEMENT = re.compile(r"<defs>\s*<style[^>]*>.*?</style>\s*</defs>\s*", re.S)
_STYLE = re.compile(r'\sstyle="([^"]*)"')
_SIZE = re.compile(r'\s(width|height)="[^"]*pt"')
FONT_FAMILY = "Arial, Helvetica, sans-serif"


def _presentation_attributes(match: re.Match[str]) -> str:
    """``style="fill: #fff; stroke: ..."`` as ``fill="#fff" stroke="..."``.

    The pages' Content-Security-Policy allows no inline styles, and it applies to
    inline SVG too; presentation attributes are not styles, so the chart keeps its
    colours without loosening the policy.
    """
    attributes = []
    for declaration in match.group(1).split(";"):
        name, _, value = declaration.partition(":")
        name, value = name.strip(), value.strip()
        if not name:
            continue
        if name == "font-family":
            value = FONT_FAMILY
        attributes.append(f' {name}="{escape(value)}"')
    return "".join(attributes)


def _svg(fig: Figure, chart_id: str, title: str, description: str) -> str:
    """The figure as inline SVG: ids made unique to this chart, labelled for assistive tech."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = _HEADER.sub(r"\1", buffer.getvalue(), count=1)
    text = _METADATA.sub("", text)
    text = _STYLE_ELEMENT.sub("", text)
    text = _STYLE.sub(_presentation_attributes, text)
    # Without a fixed size the chart scales to the column; the viewBox keeps its shape.
    text = _SIZE.sub("", text, count=2)
    text = _ID.sub(lambda m: f'id="{chart_id}-{m.group(1)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}{chart_id}-{m.group(2)}", text)
    label = (
        f'<svg role="img" aria-labelledby="{chart_id}-title {chart_id}-desc"'
        f' class="casework-chart" focusable="false"'
    )
    text = text.replace("<svg", label, 1)
    head_end = text.index(">") + 1
    return (
        text[:head_end]
        + f'<title id="{chart_id}-title">{escape(title)}</title>'
        + f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
        + text[head_end:]
    )
