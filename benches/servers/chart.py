#!/usr/bin/env python3
"""The chart writer of the scaling benchmark (benches/servers/scale.sh).

    python3 benches/servers/chart.py OUT.svg --title TITLE --x-label X \
        --y-label Y [--logx] [--logy] [--bars] < rows.csv

Reads rows `series,x,y` on stdin (one point per row; blank lines and lines
starting with `#` are skipped; rows whose x or y is not a number are
skipped with a warning, except with --bars, where x is a category) and
writes one self-contained SVG (700x400, no external fonts or scripts):
one line with markers per series, a legend, labelled axes with ticks, and
logarithmic scales when asked. With --bars: grouped bars, one group per x
value (in the order first seen), one bar per series.
"""

import argparse
import math
import sys
from xml.sax.saxutils import escape

W, H = 700, 400
LEFT, RIGHT, TOP, BOTTOM = 78, 150, 40, 52
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
          "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"]
MARKERS = ["circle", "square", "triangle", "diamond"]


def fmt(v):
    """A short label for a tick value."""
    if v == 0:
        return "0"
    a = abs(v)
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            s = "%g" % round(v / div, 3)
            return s + suf
    if a >= 1:
        return "%g" % round(v, 3)
    return "%g" % float("%.3g" % v)


def nice_ticks(lo, hi, n=6):
    """Linear ticks at 1/2/5 x 10^k steps covering [lo, hi]."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(ticks[-1] + step)
    return ticks


def log_ticks(lo, hi):
    """Log ticks covering [lo, hi]: powers of ten, with 2 and 5 between
    them when the span is short; trimmed to the data's range."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if b == a:
        b = a + 1
    mults = (1, 2, 5) if b - a <= 3 else (1,)
    cand = sorted(m * 10.0 ** k for k in range(a, b + 1) for m in mults)
    below = [t for t in cand if t <= lo * (1 + 1e-9)]
    above = [t for t in cand if t >= hi * (1 - 1e-9)]
    first = below[-1] if below else cand[0]
    last = above[0] if above else cand[-1]
    if last <= first:
        last = next((t for t in cand if t > first), first * 10)
    return [t for t in cand if first <= t <= last] or [first, last]


class Axis:
    def __init__(self, values, log, lo_px, hi_px, zero=True):
        self.log = log
        vals = [v for v in values if (v > 0 or not log)]
        if not vals:
            vals = [1.0]
        lo, hi = min(vals), max(vals)
        if log:
            self.ticks = log_ticks(lo, hi)
            self.lo, self.hi = math.log10(self.ticks[0]), math.log10(self.ticks[-1])
        else:
            if zero:
                lo = min(lo, 0.0)
            self.ticks = nice_ticks(lo, hi)
            self.lo, self.hi = self.ticks[0], self.ticks[-1]
        self.lo_px, self.hi_px = lo_px, hi_px

    def px(self, v):
        if self.log:
            v = math.log10(v) if v > 0 else self.lo
        f = (v - self.lo) / ((self.hi - self.lo) or 1.0)
        return self.lo_px + f * (self.hi_px - self.lo_px)


def marker(kind, x, y, color):
    if kind == "circle":
        return '<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' % (x, y, color)
    if kind == "square":
        return '<rect x="%.1f" y="%.1f" width="7" height="7" fill="%s"/>' % (x - 3.5, y - 3.5, color)
    if kind == "triangle":
        return '<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>' % (
            x, y - 4.5, x - 4, y + 3.5, x + 4, y + 3.5, color)
    return '<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>' % (
        x, y - 4.5, x + 4.5, y, x, y + 4.5, x - 4.5, y, color)


def read_rows(bars):
    series, order = {}, []
    for n, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            print("chart.py: line %d: want series,x,y: %r" % (n, line), file=sys.stderr)
            continue
        name, x, y = parts
        try:
            y = float(y)
            x = x if bars else float(x)
        except ValueError:
            print("chart.py: line %d: not a number: %r" % (n, line), file=sys.stderr)
            continue
        if not math.isfinite(y):
            continue
        if name not in series:
            series[name] = []
            order.append(name)
        series[name].append((x, y))
    return series, order


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    ap.add_argument("--x-label", default="")
    ap.add_argument("--y-label", default="")
    ap.add_argument("--logx", action="store_true")
    ap.add_argument("--logy", action="store_true")
    ap.add_argument("--bars", action="store_true")
    a = ap.parse_args()
    series, order = read_rows(a.bars)

    px0, px1 = LEFT, W - RIGHT
    py0, py1 = H - BOTTOM, TOP
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (W, H, W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" text-anchor="middle" font-size="15" font-weight="bold">%s</text>'
           % ((px0 + px1) // 2, escape(a.title))]
    if not order:
        out.append('<text x="%d" y="%d" text-anchor="middle">no data</text>' % (W // 2, H // 2))
        out.append("</svg>")
        open(a.out, "w").write("\n".join(out) + "\n")
        print("chart.py: %s: no rows (an empty chart)" % a.out, file=sys.stderr)
        return

    ys = [y for s in order for _, y in series[s]]
    yax = Axis(ys, a.logy, py0, py1)

    # Grid and y ticks.
    for t in yax.ticks:
        y = yax.px(t)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (px0, y, px1, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (px0 - 6, y + 4, fmt(t)))

    if a.bars:
        cats = []
        for s in order:
            for x, _ in series[s]:
                if x not in cats:
                    cats.append(x)
        gw = (px1 - px0) / len(cats)
        bw = gw * 0.8 / len(order)
        base = yax.px(yax.ticks[0]) if a.logy else yax.px(max(0.0, yax.lo))
        for ci, c in enumerate(cats):
            cx = px0 + gw * (ci + 0.5)
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (cx, py0 + 16, escape(c)))
            for si, s in enumerate(order):
                vals = [y for x, y in series[s] if x == c]
                if not vals:
                    continue
                y = yax.px(vals[0])
                x = px0 + gw * ci + gw * 0.1 + bw * si
                out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                           % (x, min(y, base), bw * 0.92, abs(base - y), COLORS[si % len(COLORS)]))
    else:
        xs = [x for s in order for x, _ in series[s]]
        xax = Axis(xs, a.logx, px0, px1, zero=False)
        for t in xax.ticks:
            x = xax.px(t)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>' % (x, py0, x, py1))
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x, py0 + 16, fmt(t)))
        for si, s in enumerate(order):
            color = COLORS[si % len(COLORS)]
            pts = sorted((xax.px(x), yax.px(y)) for x, y in series[s]
                         if (x > 0 or not a.logx) and (y > 0 or not a.logy))
            if len(pts) > 1:
                out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                           % (color, " ".join("%.1f,%.1f" % p for p in pts)))
            for x, y in pts:
                out.append(marker(MARKERS[si % len(MARKERS)], x, y, color))

    # Axes and their labels.
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (px0, py0, px1, py0))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (px0, py0, px0, py1))
    xl = a.x_label + (" (log scale)" if a.logx and not a.bars else "")
    yl = a.y_label + (" (log scale)" if a.logy else "")
    out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % ((px0 + px1) // 2, H - 12, escape(xl)))
    out.append('<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>'
               % ((py0 + py1) // 2, (py0 + py1) // 2, escape(yl)))

    # Legend, right of the plot.
    lx, ly = px1 + 14, py1 + 6
    for si, s in enumerate(order):
        color = COLORS[si % len(COLORS)]
        y = ly + si * 20
        if a.bars:
            out.append('<rect x="%d" y="%d" width="14" height="10" fill="%s"/>' % (lx, y - 5, color))
        else:
            out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                       % (lx, y, lx + 18, y, color))
            out.append(marker(MARKERS[si % len(MARKERS)], lx + 9, y, color))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 24, y + 4, escape(s)))
    out.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
