"""Charts drawn on the server as SVG: no script, no CDN, no inline style (the Content-Security-
Policy of the console and of tenants' sites holds). The admin revenue dashboard
(``billing.admin_revenue``), the owners' billing page (daily usage) and the journey's activation
funnel (``tenants.journey.admin``) draw with these.

Each chart is ``None`` when there is nothing to draw, so that a template shows its empty state.
Every mark carries a ``<title>`` (the value on hover and for screen readers) and the ``<svg>`` is
``role="img"`` with an ``aria-label``; a page still gives the numbers as text or a table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 36
GRID_COLOUR = "#cccccc"
TEXT_COLOUR = "#666666"

Format = Callable[[int], str]


def count(value: int) -> str:
    return f"{value:,}"


def nice_max(value: int, *, empty: int = 100) -> int:
    """A round top for the y axis: 1, 2 or 5 x a power of ten, at least ``value``."""
    if value <= 0:
        return empty
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def svg(label: str, body: SafeString, *, css_class: str, height: int = HEIGHT) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="{}" role="img" aria-label="{}" '
        'viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMinYMin meet">{}</svg>',
        css_class,
        label,
        WIDTH,
        height,
        body,
    )


def _plot() -> tuple[int, int]:
    return WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def y_axis(top_value: int, fmt: Format) -> SafeString:
    """Grid lines at quarters of ``top_value`` (whole values, each drawn at its own height)."""
    plot_h = _plot()[1]
    values = sorted({top_value * n // 4 for n in range(5)})
    rows = []
    for value in values:
        y = TOP + plot_h - plot_h * value / top_value
        rows.append(
            (LEFT, f"{y:.1f}", WIDTH - RIGHT, f"{y:.1f}", GRID_COLOUR, LEFT - 6, f"{y + 4:.1f}", fmt(value))
        )
    return format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#666666">{}</text>',
        rows,
    )


def _x_label(x: float | str, text: str, anchor: str = "middle") -> SafeString:
    return format_html(
        '<text x="{}" y="{}" text-anchor="{}" font-size="11" fill="{}">{}</text>',
        x,
        HEIGHT - 12,
        anchor,
        TEXT_COLOUR,
        text,
    )


@dataclass(frozen=True)
class Point:
    """One mark: ``key`` names it (``data-key``), ``label`` under the axis, ``value`` its size."""

    key: str
    label: str
    value: int


def line_chart(
    points: Sequence[Point], *, label: str, fmt: Format, colour: str, css_class: str
) -> SafeString | None:
    """A line through ``points`` (evenly spaced), a dot on each; first and last labelled under
    the axis. ``None`` without points."""
    if not points:
        return None
    top_value = nice_max(max(p.value for p in points))
    plot_w, plot_h = _plot()
    total = len(points)

    def xy(n: int, value: int) -> tuple[float, float]:
        x = LEFT + (plot_w * n / (total - 1) if total > 1 else plot_w / 2)
        return x, TOP + plot_h - plot_h * value / top_value

    coords = [xy(n, p.value) for n, p in enumerate(points)]
    polyline = format_html(
        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>',
        " ".join(f"{x:.1f},{y:.1f}" for x, y in coords),
        colour,
    )
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}: {}</title></circle>',
        (
            (f"{x:.1f}", f"{y:.1f}", colour, p.label, fmt(p.value))
            for (x, y), p in zip(coords, points, strict=True)
        ),
    )
    labels = _x_label(LEFT, points[0].label, "start") + _x_label(WIDTH - RIGHT, points[-1].label, "end")
    return svg(label, mark_safe(y_axis(top_value, fmt) + polyline + dots + labels), css_class=css_class)  # noqa: S308


def bar_chart(
    points: Sequence[Point],
    *,
    label: str,
    fmt: Format,
    colour: str,
    css_class: str,
    bar_class: str = "",
    every_label: bool = True,
    title: Callable[[Point], str] | None = None,
) -> SafeString | None:
    """Vertical bars, one per point, in order; ``None`` when every value is 0 (empty state).
    ``every_label`` puts each point's label under its bar, else only the first and the last
    (many bars: days). ``title`` words a bar's tooltip (default ``"<label>: <value>"``)."""
    if not any(p.value for p in points):
        return None
    top_value = nice_max(max(p.value for p in points))
    plot_w, plot_h = _plot()
    slot = plot_w / len(points)
    bar_w = slot * 0.6
    bars = []
    for n, p in enumerate(points):
        h = plot_h * p.value / top_value
        x = LEFT + slot * n + (slot - bar_w) / 2
        y = TOP + plot_h - h
        tip = title(p) if title else f"{p.label}: {fmt(p.value)}"
        attrs = format_html(' class="{}"', bar_class) if bar_class else ""
        bars.append(
            format_html(
                '<rect{} data-key="{}" data-value="{}" x="{}" y="{}" width="{}" height="{}" fill="{}">'
                "<title>{}</title></rect>",
                attrs,
                p.key,
                p.value,
                f"{x:.1f}",
                f"{y:.1f}",
                f"{bar_w:.1f}",
                f"{h:.1f}",
                colour,
                tip,
            )
        )
        if every_label:
            bars.append(_x_label(f"{x + bar_w / 2:.1f}", p.label))
    if not every_label:
        bars.append(_x_label(LEFT, points[0].label, "start"))
        bars.append(_x_label(WIDTH - RIGHT, points[-1].label, "end"))
    return svg(label, mark_safe(y_axis(top_value, fmt) + "".join(bars)), css_class=css_class)  # noqa: S308
