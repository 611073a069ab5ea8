//! H3, loop metrics: what the loop already exposes, read in one place.

/// A snapshot of the loop's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Loop iterations so far.
    pub iterations: u64,
    /// Live reactor slab entries (registered sources, `Io` handles).
    pub sources: usize,
    /// Active timeouts and intervals.
    pub timers: usize,
    /// Queued immediates.
    pub immediates: usize,
    /// Requests in flight (pool jobs, name lookups).
    pub requests: usize,
    /// Callbacks deferred to the pending phase.
    pub pending: usize,
    /// Handles waiting for their close callback.
    pub closing: usize,
    /// Spawned tasks not finished.
    pub tasks: usize,
}

impl Metrics {
    /// Reads `el`'s counters now.
    pub fn of(el: &evloop::EventLoop) -> Metrics {
        use evloop::HandleKind as K;
        let mut m = Metrics {
            iterations: el.iterations(),
            tasks: el.tasks(),
            ..Metrics::default()
        };
        for h in el.active_handles() {
            match h.kind {
                K::Io => m.sources += 1,
                K::Timeout | K::Interval => m.timers += 1,
                K::Immediate => m.immediates += 1,
                K::Request => m.requests += 1,
                K::Pending => m.pending += 1,
                K::Closing => m.closing += 1,
                // Watchers and async handles: not counted by the suite.
                _ => {}
            }
        }
        m
    }
}
