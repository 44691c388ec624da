"""A tiny inline-SVG toolkit for the HTML report: scales, nice ticks, axes, legends.

No dependencies and no JavaScript, so a report opens on a machine without
internet. Coordinates are in the SVG's user units (the ``viewBox``); the page
scales the picture to its column, so sizes here are the sizes at 100 %.
Every string that reaches the output goes through ``html.escape``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

__all__ = [
    "Frame",
    "LegendItem",
    "LinearScale",
    "LogScale",
    "document",
    "legend",
    "legend_frame",
    "log_ticks",
    "nice_ticks",
    "note",
    "path",
    "text",
    "text_width",
    "x_axis",
    "y_axis",
]

Anchor = Literal["start", "middle", "end"]
Marker = Literal["line", "dash", "band", "box", "outline"]

FONT_SIZE = 12.0
AXIS_COLOUR = "#57606a"
GRID_COLOUR = "#e5e8eb"
TEXT_COLOUR = "#24292f"
LEGEND_TOP = 18.0
LEGEND_ROW = 18.0


def _n(value: float) -> str:
    """A coordinate, short: one decimal and no trailing zeros."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def text_width(label: str, size: float = FONT_SIZE) -> float:
    """Rough rendered width of ``label`` in a sans-serif font (no font metrics here)."""
    return 0.58 * size * len(label)


@dataclass(frozen=True)
class Frame:
    """A picture ``width`` x ``height`` with the plot area inset by the margins."""

    width: float
    height: float
    left: float = 64.0
    right: float = 20.0
    top: float = 40.0
    bottom: float = 48.0

    @property
    def x0(self) -> float:
        """Left edge of the plot area."""
        return self.left

    @property
    def x1(self) -> float:
        """Right edge of the plot area."""
        return self.width - self.right

    @property
    def y0(self) -> float:
        """Bottom edge of the plot area (SVG y grows downwards)."""
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        """Top edge of the plot area."""
        return self.top


@dataclass(frozen=True)
class LinearScale:
    """Maps ``domain`` linearly onto ``range`` (either may be reversed)."""

    domain: tuple[float, float]
    range: tuple[float, float]

    def __call__(self, value: float) -> float:
        d0, d1 = self.domain
        r0, r1 = self.range
        if d1 == d0:
            return (r0 + r1) / 2.0
        return r0 + (value - d0) * (r1 - r0) / (d1 - d0)


@dataclass(frozen=True)
class LogScale:
    """Maps a positive ``domain`` onto ``range`` on a log10 scale."""

    domain: tuple[float, float]
    range: tuple[float, float]

    def __call__(self, value: float) -> float:
        d0, d1 = (math.log10(d) for d in self.domain)
        r0, r1 = self.range
        v = math.log10(max(value, self.domain[0] * 1e-3))
        if d1 == d0:
            return (r0 + r1) / 2.0
        return r0 + (v - d0) * (r1 - r0) / (d1 - d0)


def _nice_step(span: float, count: int) -> float:
    raw = span / max(count, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0):
        if raw <= multiple * magnitude * (1 + 1e-9):
            return multiple * magnitude
    return 10.0 * magnitude


def nice_ticks(low: float, high: float, count: int = 5) -> tuple[list[float], float]:
    """Round tick values covering [low, high] (about ``count`` intervals) and their step.

    The first and last ticks lie at or beyond the ends, so they can be the axis' domain.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need a finite range, got [{low}, {high}]")
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    step = _nice_step(high - low, count)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    # round() drops the float noise of k * step (0.30000000000000004).
    return [round(k * step, 12) for k in range(first, last + 1)], step


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten in [low, high], with 2 and 5 between them when there are few decades."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    multiples = (1.0,) if last - first > 3 else (1.0, 2.0, 5.0)
    ticks = [
        m * 10.0**e
        for e in range(first, last + 1)
        for m in multiples
        if low * (1 - 1e-9) <= m * 10.0**e <= high * (1 + 1e-9)
    ]
    return ticks or [low, high]


def text(
    x: float,
    y: float,
    label: str,
    *,
    anchor: Anchor = "start",
    size: float = FONT_SIZE,
    colour: str = TEXT_COLOUR,
    weight: str | None = None,
    rotate: bool = False,
    halo: bool = False,
) -> str:
    """One escaped ``<text>``; ``rotate`` turns it 90° anticlockwise about (x, y), ``halo``
    outlines it in white so it stays legible over lines and bands."""
    attrs = [f'x="{_n(x)}"', f'y="{_n(y)}"']
    if anchor != "start":
        attrs.append(f'text-anchor="{anchor}"')
    if size != FONT_SIZE:
        attrs.append(f'font-size="{_n(size)}"')
    attrs.append(f'fill="{colour}"')
    if weight:
        attrs.append(f'font-weight="{weight}"')
    if halo:
        attrs.append('stroke="#fff" stroke-width="4" stroke-linejoin="round" paint-order="stroke"')
    if rotate:
        attrs.append(f'transform="rotate(-90 {_n(x)} {_n(y)})"')
    return f"<text {' '.join(attrs)}>{escape(label)}</text>"


def path(points: Sequence[tuple[float, float]], *, close: bool = False) -> str:
    """The ``d`` attribute of a polyline (or polygon, with ``close``) through ``points``."""
    if not points:
        return ""
    head, *rest = points
    d = f"M{_n(head[0])} {_n(head[1])}" + "".join(f"L{_n(x)} {_n(y)}" for x, y in rest)
    return d + "Z" if close else d


def x_axis(
    frame: Frame,
    scale: Callable[[float], float],
    ticks: Sequence[float],
    label: Callable[[float], str],
    title: str,
    *,
    grid: bool = False,
) -> str:
    """Bottom axis line, tick marks, tick labels (``label`` may return two lines) and title."""
    parts = [
        f'<line x1="{_n(frame.x0)}" y1="{_n(frame.y0)}" x2="{_n(frame.x1)}" '
        f'y2="{_n(frame.y0)}" stroke="{AXIS_COLOUR}"/>'
    ]
    for tick in ticks:
        x = scale(tick)
        if grid:
            parts.append(
                f'<line x1="{_n(x)}" y1="{_n(frame.y1)}" x2="{_n(x)}" y2="{_n(frame.y0)}" '
                f'stroke="{GRID_COLOUR}"/>'
            )
        parts.append(
            f'<line x1="{_n(x)}" y1="{_n(frame.y0)}" x2="{_n(x)}" y2="{_n(frame.y0 + 5)}" '
            f'stroke="{AXIS_COLOUR}"/>'
        )
        for row, line in enumerate(label(tick).split("\n")):
            parts.append(text(x, frame.y0 + 18 + 13 * row, line, anchor="middle"))
    parts.append(
        text((frame.x0 + frame.x1) / 2, frame.height - 8, title, anchor="middle", colour="#3d444d")
    )
    return "".join(parts)


def y_axis(
    frame: Frame,
    scale: Callable[[float], float],
    ticks: Sequence[float],
    label: Callable[[float], str],
    title: str,
) -> str:
    """Left axis with horizontal grid lines, tick labels and a rotated title."""
    parts = []
    for tick in ticks:
        y = scale(tick)
        parts.append(
            f'<line x1="{_n(frame.x0)}" y1="{_n(y)}" x2="{_n(frame.x1)}" y2="{_n(y)}" '
            f'stroke="{GRID_COLOUR}"/>'
        )
        parts.append(text(frame.x0 - 8, y + 4, label(tick), anchor="end"))
    parts.append(
        f'<line x1="{_n(frame.x0)}" y1="{_n(frame.y1)}" x2="{_n(frame.x0)}" '
        f'y2="{_n(frame.y0)}" stroke="{AXIS_COLOUR}"/>'
    )
    middle = (frame.y0 + frame.y1) / 2
    parts.append(text(16, middle, title, anchor="middle", colour="#3d444d", rotate=True))
    return "".join(parts)


@dataclass(frozen=True)
class LegendItem:
    """One legend entry: a label and how its swatch is drawn."""

    label: str
    colour: str
    marker: Marker = "line"


def _swatch(x: float, y: float, item: LegendItem) -> str:
    c = item.colour
    if item.marker == "line":
        return (
            f'<line x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x + 18)}" y2="{_n(y)}" '
            f'stroke="{c}" stroke-width="2.5"/>'
        )
    if item.marker == "dash":
        return (
            f'<line x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x + 18)}" y2="{_n(y)}" '
            f'stroke="{c}" stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
    fill = {"band": f'fill="{c}" fill-opacity="0.2"', "box": f'fill="{c}"'}.get(
        item.marker, f'fill="{c}" fill-opacity="0.12" stroke="{c}" stroke-width="1.5"'
    )
    return f'<rect x="{_n(x)}" y="{_n(y - 6)}" width="18" height="12" {fill}/>'


def legend(items: Sequence[LegendItem], x: float, y: float, max_width: float) -> tuple[str, int]:
    """Entries left to right from (x, y), wrapping at ``max_width``; returns (svg, rows)."""
    parts, cx, cy, rows = [], x, y, 1
    room = max(1, int((max_width - 42) / text_width("x")))
    for item in items:
        label = item.label if len(item.label) <= room else item.label[: room - 1] + "…"
        width = 24 + text_width(label) + 18
        if cx > x and cx + width > x + max_width:
            cx, cy, rows = x, cy + LEGEND_ROW, rows + 1
        parts.append(_swatch(cx, cy, item))
        parts.append(text(cx + 24, cy + 4, label))
        cx += width
    return "".join(parts), rows


def legend_frame(
    width: float,
    plot_height: float,
    items: Sequence[LegendItem],
    *,
    left: float,
    right: float,
    bottom: float,
) -> tuple[Frame, str]:
    """A frame whose top margin fits ``items`` as a legend above the plot area.

    The plot area keeps ``plot_height`` however many rows the legend wraps to,
    so a long variant name never pushes the legend into the data.
    """
    drawn, rows = legend(items, left, LEGEND_TOP, width - left - right)
    top = LEGEND_TOP + LEGEND_ROW * (rows - 1) + 22.0
    return Frame(width, top + plot_height + bottom, left, right, top, bottom), drawn


def note(frame: Frame, message: str) -> str:
    """A centred message in an empty plot area (for "no data" cases)."""
    return (
        f'<rect x="{_n(frame.x0)}" y="{_n(frame.y1)}" width="{_n(frame.x1 - frame.x0)}" '
        f'height="{_n(frame.y0 - frame.y1)}" fill="#f6f8fa" stroke="{GRID_COLOUR}"/>'
        + text(
            (frame.x0 + frame.x1) / 2,
            (frame.y0 + frame.y1) / 2,
            message,
            anchor="middle",
            size=14,
            colour="#3d444d",
        )
    )


def document(frame: Frame, title: str, body: str) -> str:
    """An inline ``<svg>`` with an accessible title (no ``xmlns``: HTML5 does not need it)."""
    return (
        f'<svg viewBox="0 0 {_n(frame.width)} {_n(frame.height)}" role="img" '
        f'width="{_n(frame.width)}" height="{_n(frame.height)}" font-size="{_n(FONT_SIZE)}">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )
