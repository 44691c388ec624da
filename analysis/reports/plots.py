"""The three figures of the HTML report, as inline SVG strings.

1. ``effect_figure``: each challenger's cumulative lift over time with its
   confidence band, and the zero line.
2. ``split_figure``: observed against configured share of traffic per variant.
3. ``latency_figure``: latency distribution per variant from the histogram
   buckets on a log axis, with each variant's p99 marked.

Each returns one ``<svg>`` even without data (then with a note inside), so the
page keeps its layout.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from analysis.reports.cells import MINUS
from analysis.reports.svg import (
    Frame,
    LegendItem,
    LinearScale,
    LogScale,
    document,
    legend,
    legend_frame,
    log_ticks,
    nice_ticks,
    note,
    path,
    text,
    text_width,
    x_axis,
    y_axis,
)
from analysis.sufficient import LatencyHistogram
from analysis.timeline import EffectPoint

__all__ = [
    "LatencySeries",
    "SplitRow",
    "effect_figure",
    "latency_figure",
    "split_figure",
    "variant_colours",
]

CHAMPION_COLOUR = "#3d444d"
# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
NEUTRAL = "#57606a"

# Before this (1973-03-03) a window start is taken as seconds since the start, not a date.
_EPOCH_CUTOFF = 1e8
_DAY = 86400
_HOUR = 3600
_TIME_STEPS: tuple[int, ...] = (
    60,
    300,
    600,
    900,
    1800,
    _HOUR,
    2 * _HOUR,
    3 * _HOUR,
    4 * _HOUR,
    6 * _HOUR,
)
_TIME_STEPS += (12 * _HOUR, _DAY, 2 * _DAY, 7 * _DAY, 14 * _DAY, 28 * _DAY)


def variant_colours(names: Sequence[str], champion: str) -> dict[str, str]:
    """A fixed colour per variant: dark grey for the champion, the palette for the rest."""
    colours, others = {}, 0
    for name in names:
        if name == champion:
            colours[name] = CHAMPION_COLOUR
        else:
            colours[name] = PALETTE[others % len(PALETTE)]
            others += 1
    return colours


def _short(label: str, width: float) -> str:
    keep = max(3, int(width / text_width("x")))
    return label if len(label) <= keep else label[: keep - 1] + "…"


def _signed(value: float, *, percent: bool, decimals: int) -> str:
    shown = 100.0 * value if percent else value
    if abs(shown) < 0.5 * 10.0**-decimals:
        return "0%" if percent else "0"
    sign = "+" if shown > 0 else MINUS
    return f"{sign}{abs(shown):.{decimals}f}{'%' if percent else ''}"


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0


# --- 1. effect over time ---------------------------------------------------------------------


def _time_ticks(low: float, high: float) -> list[float]:
    fallback = math.ceil((high - low) / 8 / _DAY) * _DAY
    step = next((s for s in _TIME_STEPS if (high - low) / s <= 8), fallback)
    first = math.ceil(low / step - 1e-9)
    return [k * step for k in range(first, math.floor(high / step + 1e-9) + 1)]


def _time_label(epoch: bool, ticks: Sequence[float]) -> tuple[str, dict[float, str]]:
    if not epoch:
        return "end of window (hours)", {t: f"{t / 3600:g} h" for t in ticks}
    labels, last_day = {}, ""
    daily = len(ticks) > 1 and ticks[1] - ticks[0] >= _DAY
    for t in ticks:
        moment = datetime.fromtimestamp(t, tz=UTC)
        day = moment.strftime("%b %d")
        clock = moment.strftime("%H:%M")
        if daily:
            labels[t] = day
        else:
            labels[t] = f"{clock}\n{day}" if day != last_day else clock
        last_day = day
    return "end of window (UTC)", labels


def _effect_domain(points: Sequence[EffectPoint]) -> tuple[float, float, bool]:
    """The y range: every band, unless the first looks' bands would flatten the rest."""
    low = min(0.0, *(p.ci_low for p in points))
    high = max(0.0, *(p.ci_high for p in points))
    cutoff = statistics.median(p.at for p in points)
    late = [p for p in points if p.at >= cutoff]
    late_low = min(0.0, *(p.ci_low for p in late))
    late_high = max(0.0, *(p.ci_high for p in late))
    span = late_high - late_low
    if span > 0 and high - low > 3.0 * span:
        return late_low - 0.5 * span, late_high + 0.5 * span, True
    return low, high, False


def _window_length(points: Sequence[EffectPoint]) -> float:
    starts = sorted({p.at for p in points})
    gaps = [b - a for a, b in itertools.pairwise(starts) if b > a]
    return min(gaps) if gaps else 0.0


def effect_figure(
    points: Sequence[EffectPoint],
    challengers: Sequence[str],
    colours: Mapping[str, str],
    *,
    relative: bool,
    interval: str,
) -> str:
    """Each challenger's cumulative lift at the end of each window, with its interval band."""
    title = "Lift over the champion over time, with confidence bands"
    points = [p for p in points if all(map(math.isfinite, (p.estimate, p.ci_low, p.ci_high)))]
    if not points:
        frame = Frame(1080, 150, left=76, right=28, top=16, bottom=16)
        return document(frame, title, note(frame, "no time windows recorded"))
    length = _window_length(points)
    y_low, y_high, clipped = _effect_domain(points)
    items = [LegendItem(name, colours[name]) for name in challengers]
    items += [
        LegendItem(f"shaded: {interval}", NEUTRAL, "band"),
        LegendItem("no difference (0)", "#24292f", "dash"),
    ]
    if clipped:
        items.append(LegendItem("the first, wide bands run off the chart", NEUTRAL, "band"))
    frame, drawn_legend = legend_frame(1080, 236, items, left=76, right=28, bottom=58)
    ends = [p.at + length for p in points]
    x_low, x_high = min(ends), max(ends)
    if x_high == x_low:
        x_low, x_high = x_low - 1800, x_high + 1800
    y_ticks, step = nice_ticks(y_low, y_high, 6)
    x = LinearScale((x_low, x_high), (frame.x0, frame.x1))
    y = LinearScale((y_ticks[0], y_ticks[-1]), (frame.y0, frame.y1))
    x_ticks = _time_ticks(x_low, x_high)
    axis_title, x_labels = _time_label(x_low > _EPOCH_CUTOFF, x_ticks)
    if length == 0:
        axis_title = axis_title.replace("end of window", "window start")
    decimals = _decimals(100 * step if relative else step)
    parts = [
        drawn_legend,
        y_axis(
            frame,
            y,
            y_ticks,
            lambda v: _signed(v, percent=relative, decimals=decimals),
            "lift vs champion" + (" (relative)" if relative else " (absolute)"),
        ),
        x_axis(frame, x, x_ticks, lambda t: x_labels[t], axis_title),
        f'<clipPath id="effect-clip"><rect x="{frame.x0 - 5}" y="{frame.y1}" '
        f'width="{frame.x1 - frame.x0 + 10}" height="{frame.y0 - frame.y1}"/></clipPath>',
        '<g clip-path="url(#effect-clip)">',
    ]
    opacity = 0.16 if len(challengers) <= 2 else 0.1
    single = len({p.at for p in points}) == 1
    for index, name in enumerate(challengers):
        mine = sorted((p for p in points if p.variant == name), key=lambda p: p.at)
        # One window: side by side error bars instead of one on top of the other.
        dodge = (index - (len(challengers) - 1) / 2) * 12.0 if single else 0.0
        series = _EffectSeries(mine, colours[name], opacity, dodge)
        parts.append(series.svg(length, x, y, relative))
    zero = y(0.0)
    parts.append(
        f'</g><line x1="{frame.x0}" y1="{zero:.1f}" x2="{frame.x1}" y2="{zero:.1f}" '
        f'stroke="#24292f" stroke-width="1.2" stroke-dasharray="6 4"/>'
    )
    return document(frame, title, "".join(parts))


@dataclass(frozen=True)
class _EffectSeries:
    points: Sequence[EffectPoint]
    colour: str
    opacity: float
    dodge: float

    def svg(self, length: float, x: LinearScale, y: LinearScale, relative: bool) -> str:
        points, colour = self.points, self.colour
        if not points:
            return ""
        xs = [x(p.at + length) + self.dodge for p in points]
        upper = [(xi, y(p.ci_high)) for xi, p in zip(xs, points, strict=True)]
        lower = [(xi, y(p.ci_low)) for xi, p in zip(xs, points, strict=True)]
        centre = [(xi, y(p.estimate)) for xi, p in zip(xs, points, strict=True)]
        parts = []
        if len(points) > 1:
            band = path(upper + lower[::-1], close=True)
            parts.append(
                f'<path d="{band}" fill="{colour}" fill-opacity="{self.opacity}" stroke="none"/>'
            )
            parts.append(
                f'<path d="{path(centre)}" fill="none" stroke="{colour}" stroke-width="2.5"/>'
            )
        else:
            parts.append(
                f'<path d="{path([upper[0], lower[0]])}" stroke="{colour}" stroke-width="2"/>'
            )
        # Beyond two days of hourly windows the dots would merge into a thick line.
        for (cx, cy), p in zip(centre if len(points) <= 48 else [], points, strict=False):
            lift = _signed(p.estimate, percent=relative, decimals=2)
            low = _signed(p.ci_low, percent=relative, decimals=2)
            high = _signed(p.ci_high, percent=relative, decimals=2)
            tip = (
                f"{p.variant}: {lift} [{low}, {high}], p={p.p_value:.3g}, "
                f"n={p.champion_n}/{p.variant_n}"
            )
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        return "".join(parts)


# --- 2. traffic split ------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitRow:
    """One variant's configured and observed share of requests, in percent."""

    variant: str
    configured_pct: float
    observed_pct: float
    requests: int


def split_figure(rows: Sequence[SplitRow], colours: Mapping[str, str], *, mismatch: bool) -> str:
    """Grouped bars: configured (outlined) and observed (filled) share per variant."""
    frame = Frame(520, 320, left=56, right=16, top=46, bottom=36)
    title = "Observed against configured traffic split"
    total = sum(r.requests for r in rows)
    if not rows or total == 0:
        empty = Frame(520, 150, left=56, right=16, top=16, bottom=16)
        return document(empty, title, note(empty, "no requests recorded"))
    top = max(max(r.configured_pct, r.observed_pct) for r in rows)
    ticks, _ = nice_ticks(0.0, top * 1.12, 5)
    y = LinearScale((0.0, ticks[-1]), (frame.y0, frame.y1))
    group = (frame.x1 - frame.x0) / len(rows)
    bar = min(56.0, group * 0.4)
    parts = [y_axis(frame, y, ticks, lambda v: f"{v:g}%", "% of requests")]
    for index, row in enumerate(rows):
        middle = frame.x0 + group * (index + 0.5)
        colour = colours[row.variant]
        tip = (
            f"{row.variant}: observed {row.requests:,} requests ({row.observed_pct:.1f}%), "
            f"configured {row.configured_pct:.1f}%"
        )
        parts.append(f"<g><title>{escape(tip)}</title>")
        for left, value, filled in (
            (middle - bar - 2, row.configured_pct, False),
            (middle + 2, row.observed_pct, True),
        ):
            top_y = y(value)
            style = (
                f'fill="{colour}"'
                if filled
                else f'fill="{colour}" fill-opacity="0.12" stroke="{colour}" stroke-width="1.5"'
            )
            parts.append(
                f'<rect x="{left:.1f}" y="{top_y:.1f}" width="{bar:.1f}" '
                f'height="{frame.y0 - top_y:.1f}" {style}/>'
            )
            label = f"{value:.1f}%"
            if text_width(label, 11) <= bar + 2:
                parts.append(text(left + bar / 2, top_y - 5, label, anchor="middle", size=11))
        parts.append("</g>")
        parts.append(text(middle, frame.y0 + 20, _short(row.variant, group - 6), anchor="middle"))
    parts.append(
        f'<line x1="{frame.x0}" y1="{frame.y0}" x2="{frame.x1}" y2="{frame.y0}" '
        f'stroke="{NEUTRAL}"/>'
    )
    items = [LegendItem("configured", NEUTRAL, "outline"), LegendItem("observed", NEUTRAL, "box")]
    parts.append(legend(items, frame.x0, 18, 220)[0])
    status = "sample-ratio mismatch" if mismatch else "split as configured"
    parts.append(
        text(
            frame.x1,
            22,
            status,
            anchor="end",
            colour="#b42318" if mismatch else "#1a7f37",
            weight="bold",
        )
    )
    return document(frame, title, "".join(parts))


# --- 3. latency distribution -----------------------------------------------------------------


@dataclass(frozen=True)
class LatencySeries:
    """One variant's latency histogram (in ms)."""

    variant: str
    histogram: LatencyHistogram


def _bucket_edges(hist: LatencyHistogram) -> list[tuple[float, float]]:
    """Finite, positive edges for every bucket: the open ends get one more bucket's width."""
    bounds = hist.bounds
    first_ratio = bounds[1] / bounds[0] if len(bounds) > 1 and bounds[0] > 0 else 2.0
    last_ratio = bounds[-1] / bounds[-2] if len(bounds) > 1 and bounds[-2] > 0 else 2.0
    low = bounds[0] / first_ratio if bounds[0] > 0 else 1e-3
    edges = [(low, bounds[0])]
    edges += list(itertools.pairwise(bounds))
    edges.append((bounds[-1], bounds[-1] * last_ratio))
    return [(max(a, 1e-6), max(b, a * 1.0001, 1e-6)) for a, b in edges]


def _densities(hist: LatencyHistogram, edges: Sequence[tuple[float, float]]) -> list[float]:
    """Percent of requests per bucket, scaled to the median bucket width on the log axis."""
    widths = [math.log(b / a) for a, b in edges]
    reference = statistics.median(widths[1:-1] or widths)
    n = hist.n
    return [100.0 * c / n * reference / w for c, w in zip(hist.counts, widths, strict=True)]


def latency_figure(series: Sequence[LatencySeries], colours: Mapping[str, str]) -> str:
    """Latency distribution per variant (log-scale ms), each variant's p99 dashed."""
    title = "Latency distribution per variant, p99 marked"
    data = [s for s in series if s.histogram.n > 0]
    if not data:
        empty = Frame(540, 150, left=56, right=18, top=16, bottom=16)
        return document(empty, title, note(empty, "no latency recorded"))
    p99 = {s.variant: s.histogram.quantile(0.99) for s in data}
    items = [
        LegendItem(f"{_short(s.variant, 130)}: p99 {p99[s.variant]:.3g} ms", colours[s.variant])
        for s in data
    ]
    items.append(LegendItem("p99", NEUTRAL, "dash"))
    frame, drawn_legend = legend_frame(540, 220, items, left=56, right=18, bottom=52)
    edges = {s.variant: _bucket_edges(s.histogram) for s in data}
    dens = {s.variant: _densities(s.histogram, edges[s.variant]) for s in data}
    used = [
        edge
        for s in data
        for edge, count in zip(edges[s.variant], s.histogram.counts, strict=True)
        if count
    ]
    x_low, x_high = min(a for a, _ in used), max(b for _, b in used)
    x = LogScale((x_low, x_high), (frame.x0, frame.x1))
    top = max(max(d) for d in dens.values())
    ticks, _ = nice_ticks(0.0, top * 1.05, 5)
    y = LinearScale((0.0, ticks[-1]), (frame.y0, frame.y1))
    axis_title = "latency (ms, log scale)"
    if any(s.histogram.counts[-1] for s in data):
        axis_title = f"latency (ms, log scale; the last step is > {data[0].histogram.bounds[-1]:g})"
    parts = [
        drawn_legend,
        y_axis(frame, y, ticks, lambda v: f"{v:g}%", "% of requests per bucket"),
        x_axis(frame, x, log_ticks(x_low, x_high), _ms, axis_title, grid=True),
    ]
    for s in data:
        colour = colours[s.variant]
        points = [(x(x_low), y(0.0))]
        for (a, b), d in zip(edges[s.variant], dens[s.variant], strict=True):
            if a < x_high and b > x_low:
                points += [(x(max(a, x_low)), y(d)), (x(min(b, x_high)), y(d))]
        points.append((x(x_high), y(0.0)))
        parts.append(
            f'<path d="{path(points)}" fill="none" stroke="{colour}" stroke-width="2" '
            f'stroke-linejoin="round"/>'
        )
        px = x(p99[s.variant])
        tip = f"{s.variant}: p99 {p99[s.variant]:.3g} ms"
        parts.append(
            f'<line x1="{px:.1f}" y1="{frame.y1}" x2="{px:.1f}" y2="{frame.y0}" '
            f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 4">'
            f"<title>{escape(tip)}</title></line>"
        )
    return document(frame, title, "".join(parts))


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:g}"
