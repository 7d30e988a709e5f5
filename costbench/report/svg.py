"""An inline SVG scatter of AUC against a cost: hover a point to see its configuration.

The hover text is each point's SVG ``<title>``, which every browser shows as a tooltip: no script, no
network, a few hundred bytes per point. A cost spanning more than a decade is drawn on a log axis.
"""

from __future__ import annotations

import html
import math

from costbench.report.names import axis_text, header
from costbench.report.plots import LOG_SPAN
from costbench.report.rows import Row

WIDTH, HEIGHT, PAD, KEY = 980, 360, 56, 90  # KEY: the colour key's strip right of the plot
COLOURS = {"fp32": "#1f77b4", "fp16": "#ff7f0e", "bf16": "#2ca02c", "int8": "#d62728"}  # as in the PNG plots


def scatter_svg(rows: list[Row], cost: str) -> str:
    """The SVG element, or '' when fewer than two rows have both AUC and the cost."""
    points = [(r, float(x), float(y)) for r in rows
              if isinstance(x := r.metrics.get(cost), (int, float)) and isinstance(y := r.metrics.get("auc"),
                                                                                  (int, float))
              and math.isfinite(x) and math.isfinite(y)]
    if len(points) < 2:
        return ""
    xs = [x for _, x, _ in points]
    ys = [y for _, _, y in points]
    log = min(xs) > 0 and max(xs) / min(xs) > LOG_SPAN
    fx = math.log10 if log else (lambda v: v)
    x0, x1 = fx(min(xs)), fx(max(xs))
    y0, y1 = min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 0.01)

    def sx(v: float) -> float:
        return PAD + (fx(v) - x0) / (x1 - x0) * (WIDTH - KEY - 2 * PAD)

    def sy(v: float) -> float:
        return HEIGHT - PAD - (v - y0) / (y1 - y0) * (HEIGHT - 2 * PAD)

    dots = []
    for row, x, y in points:
        config = ", ".join(f"{k}={axis_text(v)}" for k, v in row.axes.items())
        tip = html.escape(f"{row.id} {config}\nAUC {y:.4f}, {header(cost)} {x:.4g}, rank {row.rank or 'n/a'}"
                          + (f"\nflags: {', '.join(row.flags)}" if row.flags else ""))
        colour = COLOURS.get(str(row.config.get("precision")), "gray")
        ring = ' stroke="black" stroke-width="2"' if row.rank == 1 else ""
        dots.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{7 if row.pick else 5}" fill="{colour}"'
                    f'{ring}><title>{tip}</title></circle>')
    label = html.escape(header(cost) + (" (log scale)" if log else ""))
    shown = [(p, c) for p, c in COLOURS.items() if any(str(r.config.get("precision")) == p for r, _, _ in points)]
    key = "".join(f'<circle cx="{WIDTH - KEY + 10}" cy="{PAD + 18 * i}" r="5" fill="{c}"/>'
                  f'<text x="{WIDTH - KEY + 20}" y="{PAD + 18 * i + 4}">{p}</text>' for i, (p, c) in enumerate(shown))
    key += (f'<circle cx="{WIDTH - KEY + 10}" cy="{PAD + 18 * len(shown)}" r="5" fill="white" stroke="black" '
            f'stroke-width="2"/><text x="{WIDTH - KEY + 20}" y="{PAD + 18 * len(shown) + 4}">front</text>')
    axes = (f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - KEY - PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>'
            f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>'
            f'<text x="{(WIDTH - KEY) / 2}" y="{HEIGHT - 14}" text-anchor="middle">{label}</text>'
            f'<text x="14" y="{HEIGHT / 2}" transform="rotate(-90 14 {HEIGHT / 2})" text-anchor="middle">AUC</text>'
            f'<text x="{PAD}" y="{HEIGHT - PAD + 16}" text-anchor="middle">{min(xs):.3g}</text>'
            f'<text x="{WIDTH - KEY - PAD}" y="{HEIGHT - PAD + 16}" text-anchor="middle">{max(xs):.3g}</text>'
            f'<text x="{PAD - 6}" y="{sy(y0) + 4:.1f}" text-anchor="end">{y0:.3f}</text>'
            f'<text x="{PAD - 6}" y="{sy(y1) + 4:.1f}" text-anchor="end">{y1:.3f}</text>')
    return (f'<svg class="scatter" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            f'role="img" aria-label="AUC against {label}" font-size="12">{axes}{key}{"".join(dots)}</svg>')
