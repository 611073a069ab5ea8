//! `compare --svg FILE`: the figures as one picture. For each workload, a
//! row of three bar charts (wall time, CPU time, peak memory), one bar per
//! model, each labelled with its value. A chart whose values span more than
//! a factor of 20 uses a log scale (and says so), so a 10 ms bar stays
//! visible beside a 10 s one. Plain SVG, no script: it shows the same in a
//! browser, an image viewer or a README.

use std::fmt::Write as _;

use crate::measure::{human, Row};

/// One model per colour, in the order `compare` runs them.
const COLORS: [&str; 8] = [
    "#757575", "#1e88e5", "#8e24aa", "#43a047", "#fb8c00", "#e53935", "#00897b", "#6d4c41",
];

const LABEL_W: f64 = 118.0;
const CHART_W: f64 = 300.0;
const CHART_GAP: f64 = 34.0;
const ROW_H: f64 = 20.0;
const BAR_H: f64 = 14.0;
const LEFT: f64 = 16.0;
/// Room after a bar for its value label.
const VALUE_W: f64 = 62.0;

/// What a chart shows of a row.
struct Metric {
    title: &'static str,
    value: fn(&Row) -> f64,
    label: fn(f64) -> String,
}

fn seconds(s: f64) -> String {
    human(std::time::Duration::from_secs_f64(s))
}

fn mib(m: f64) -> String {
    if m >= 100.0 {
        format!("{m:.0} MiB")
    } else {
        format!("{m:.1} MiB")
    }
}

const METRICS: [Metric; 3] = [
    Metric {
        title: "wall time",
        value: |r| r.wall.as_secs_f64(),
        label: seconds,
    },
    Metric {
        title: "CPU time",
        value: |r| r.cpu.as_secs_f64(),
        label: seconds,
    },
    Metric {
        title: "peak memory",
        value: |r| r.peak_kib as f64 / 1024.0,
        label: mib,
    },
];

/// The picture of every workload run: `(title, rows)` each.
pub fn render(workloads: &[(String, Vec<Row>)]) -> String {
    let width = LEFT + LABEL_W + 3.0 * CHART_W + 2.0 * CHART_GAP + 16.0;
    let mut body = String::new();
    let mut y = 34.0;
    for (title, rows) in workloads {
        y = workload(&mut body, y, title, rows);
    }
    let height = y + 8.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12">"##
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>
<text x="{LEFT}" y="20" font-size="15" font-weight="bold" fill="#222">evloop compare: the same work in seven models (shorter is better)</text>"##
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

/// One workload's row of charts, from `y`; returns the next free `y`.
fn workload(out: &mut String, y: f64, title: &str, rows: &[Row]) -> f64 {
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" font-size="13" font-weight="bold" fill="#333">{}</text>"##,
        y + 14.0,
        esc(title)
    );
    let top = y + 44.0;
    // The model names, once, left of the first chart.
    for (i, r) in rows.iter().enumerate() {
        let ry = top + i as f64 * ROW_H;
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{}">{}{}</text>"##,
            LEFT + LABEL_W - 8.0,
            ry + BAR_H - 3.0,
            if r.ok { "#333" } else { "#c62828" },
            esc(r.model),
            if r.ok { "" } else { " (wrong!)" }
        );
    }
    for (k, m) in METRICS.iter().enumerate() {
        let x0 = LEFT + LABEL_W + k as f64 * (CHART_W + CHART_GAP);
        chart(out, x0, top, m, rows);
    }
    top + rows.len() as f64 * ROW_H + 30.0
}

/// One metric's bars, the plot area starting at (`x0`, `top`).
fn chart(out: &mut String, x0: f64, top: f64, m: &Metric, rows: &[Row]) {
    let values: Vec<f64> = rows.iter().map(|r| (m.value)(r)).collect();
    let max = values.iter().cloned().fold(0.0, f64::max);
    let min_pos = values
        .iter()
        .cloned()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let log = max > 0.0 && min_pos.is_finite() && max / min_pos > 20.0;
    let plot_w = CHART_W - VALUE_W;
    // Where a value ends, 0..plot_w.
    let (lo, hi) = if log {
        (
            10f64.powf(min_pos.log10().floor()),
            // A little room past the longest bar, not a whole decade.
            max * 1.15,
        )
    } else {
        let step = nice_ceiling(max / 4.0);
        (0.0, (max / step).ceil().max(1.0) * step)
    };
    let scale = |v: f64| -> f64 {
        if hi <= lo {
            0.0
        } else if log {
            let v = v.max(lo);
            (v.log10() - lo.log10()) / (hi.log10() - lo.log10()) * plot_w
        } else {
            v / hi * plot_w
        }
    };
    let bottom = top + rows.len() as f64 * ROW_H;
    let _ = writeln!(
        out,
        r##"<text x="{x0:.1}" y="{:.1}" font-weight="bold" fill="#222">{}<tspan font-weight="normal" fill="#777">{}</tspan></text>"##,
        top - 12.0,
        m.title,
        if log { " (log scale)" } else { "" }
    );
    // Grid lines and their labels under the bars.
    let ticks: Vec<f64> = if log {
        let mut t = Vec::new();
        let mut v = lo;
        while v <= hi * 1.0001 {
            t.push(v);
            v *= 10.0;
        }
        t
    } else {
        let step = nice_ceiling(max / 4.0);
        let n = (hi / step).round() as usize;
        (0..=n).map(|i| step * i as f64).collect()
    };
    for t in ticks {
        let x = x0 + scale(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#e0e0e0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#888">{}</text>"##,
            top - 4.0,
            bottom,
            bottom + 12.0,
            esc(&tick_label(t, m))
        );
    }
    let _ = writeln!(
        out,
        r##"<line x1="{x0:.1}" y1="{:.1}" x2="{x0:.1}" y2="{bottom:.1}" stroke="#999"/>"##,
        top - 4.0
    );
    for (i, (r, v)) in rows.iter().zip(&values).enumerate() {
        let ry = top + i as f64 * ROW_H;
        let w = scale(*v).max(1.5);
        let _ = writeln!(
            out,
            r##"<rect class="bar" x="{x0:.1}" y="{ry:.1}" width="{w:.1}" height="{BAR_H}" rx="2" fill="{}"><title>{}: {} {}</title></rect><text x="{:.1}" y="{:.1}" font-size="11" fill="#333">{}</text>"##,
            COLORS[i % COLORS.len()],
            esc(r.model),
            m.title,
            esc(&(m.label)(*v)),
            x0 + w + 4.0,
            ry + BAR_H - 3.0,
            esc(&(m.label)(*v))
        );
    }
}

/// A grid line's label: short (`0`, `50 ms`, `1.5 s`, `2.5 MiB`).
fn tick_label(t: f64, m: &Metric) -> String {
    if t == 0.0 {
        "0".into()
    } else if m.title == "peak memory" {
        format!("{} MiB", trimmed(t))
    } else if t >= 1.0 {
        format!("{} s", trimmed(t))
    } else {
        format!("{} ms", trimmed(t * 1e3))
    }
}

/// Up to 2 decimals, without trailing zeros.
fn trimmed(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
