"""Geometry of the small inline SVG charts (no chart library; the templates only place shapes).

Everything is in SVG user units; colours come from CSS classes (the CSP forbids style attributes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from app.ranking.engine import ReviewerSeverity, ReviewerTotal

LABEL_W = 120
PLOT_W = 420
VALUE_W = 60
ROW_H = 26
TOP = 22
BOTTOM = 8


@dataclass
class Bar:
    label: str
    y: float
    width: float
    value: float
    css: str


@dataclass
class Whisker:
    label: str
    y: float
    x_low: float
    x_mean: float
    x_high: float
    css: str
    mean: float


@dataclass
class Tick:
    x: float
    label: str


@dataclass
class Chart:
    width: int
    height: int
    plot_x: int
    plot_w: int
    row_h: int
    bars: list = field(default_factory=list)
    marker_x: float | None = None  # the mean / panel mean line
    marker_label: str = ""
    ticks: list[Tick] = field(default_factory=list)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _ticks(lo: float, hi: float, x_of) -> list[Tick]:
    span = hi - lo
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000) if span / s <= 6) if span > 0 else 1
    first = math.ceil(lo / step) * step
    out, v = [], first
    while v <= hi + 1e-9:
        out.append(Tick(x_of(v), _fmt(v)))
        v += step
    return out


def totals_chart(totals: list[ReviewerTotal], max_total: float, mean: float | None) -> Chart | None:
    """One horizontal bar per reviewer total (0..full marks), with the nomination's mean as a line."""
    shown = [t for t in totals if t.total is not None]
    if not shown or max_total <= 0:
        return None
    height = TOP + ROW_H * len(shown) + BOTTOM
    chart = Chart(width=LABEL_W + PLOT_W + VALUE_W, height=height, plot_x=LABEL_W, plot_w=PLOT_W, row_h=ROW_H)

    def x_of(v: float) -> float:
        return LABEL_W + PLOT_W * max(0.0, min(v, max_total)) / max_total

    for i, t in enumerate(shown):
        chart.bars.append(Bar(label=t.reviewer_name, y=TOP + i * ROW_H + 4, width=x_of(t.total) - LABEL_W,
                              value=t.total, css="bar-draft" if t.status == "draft" else "bar"))
    if mean is not None:
        chart.marker_x = x_of(mean)
        chart.marker_label = f"平均 {_fmt(round(mean, 1))}"
    chart.ticks = _ticks(0, max_total, x_of)
    return chart


def severity_chart(rows: list[ReviewerSeverity], max_total: float) -> Chart | None:
    """Each reviewer's mean ± stdev of totals on a zoomed axis, with the panel mean as a line."""
    if not rows:
        return None
    lo = max(0.0, min(min(r.mean - r.stdev, r.lowest) for r in rows))
    hi = min(max_total, max(max(r.mean + r.stdev, r.highest) for r in rows)) if max_total > 0 else \
        max(r.highest for r in rows)
    lo, hi = math.floor(lo / 5) * 5, math.ceil(hi / 5) * 5
    if hi <= lo:
        hi = lo + 5
    height = TOP + ROW_H * len(rows) + BOTTOM
    chart = Chart(width=LABEL_W + PLOT_W + VALUE_W, height=height, plot_x=LABEL_W, plot_w=PLOT_W, row_h=ROW_H)

    def x_of(v: float) -> float:
        return LABEL_W + PLOT_W * (max(lo, min(v, hi)) - lo) / (hi - lo)

    for i, r in enumerate(rows):
        css = {"lenient": "sev-lenient", "harsh": "sev-harsh"}.get(r.leaning or "", "sev-normal")
        chart.bars.append(Whisker(label=r.reviewer_name, y=TOP + i * ROW_H + ROW_H / 2, x_low=x_of(r.mean - r.stdev),
                                  x_mean=x_of(r.mean), x_high=x_of(r.mean + r.stdev), css=css, mean=r.mean))
    chart.marker_x = x_of(rows[0].panel_mean)
    chart.marker_label = f"全体平均 {_fmt(round(rows[0].panel_mean, 1))}"
    chart.ticks = _ticks(lo, hi, x_of)
    return chart
