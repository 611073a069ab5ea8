//! Measured figures for RELIABILITY.md, counts that scale for long runs,
//! and percentiles.

use std::time::Duration;

/// Prints a measured figure in a greppable form, `FIGURE <id>: <what>`
/// (`cargo test -- --nocapture` shows it; RELIABILITY.md quotes it).
pub fn figure(id: &str, what: std::fmt::Arguments) {
    eprintln!("FIGURE {id}: {what}");
}

/// A count from the environment, or `default`: `EVLOOP_REL_SCALE`
/// multiplies every such count (set it to 10 or 100 for a long run).
pub fn count(default: usize) -> usize {
    let scale: usize = std::env::var("EVLOOP_REL_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    default.saturating_mul(scale.max(1))
}

/// `p`-th percentile of `v` (sorts it).
pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}
