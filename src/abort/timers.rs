//! Timers bound to a signal: cleared when it aborts. (They live here, not
//! in `timers/`, because the loop core knows nothing of signals.)

use std::time::Duration;

use super::AbortSignal;
use crate::timers::{Interval, Timeout};

/// [`set_timeout`](crate::set_timeout), cleared when `signal` aborts
/// (the callback then never runs). TO BE WRITTEN.
pub fn set_timeout_with_signal(
    _delay: Duration,
    _signal: &AbortSignal,
    _cb: impl FnOnce() + 'static,
) -> Timeout {
    unimplemented!("helper writes this")
}

/// [`set_interval`](crate::set_interval), cleared when `signal` aborts.
/// TO BE WRITTEN.
pub fn set_interval_with_signal(
    _period: Duration,
    _signal: &AbortSignal,
    _cb: impl FnMut() + 'static,
) -> Interval {
    unimplemented!("helper writes this")
}
