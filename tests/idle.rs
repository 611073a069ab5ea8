//! An idle loop sleeps in poll: about zero CPU and a handful of iterations.

mod support;

use std::time::{Duration, Instant};

use evloop::{set_timeout, EventLoop};

#[test]
fn an_idle_loop_with_one_far_timer_uses_about_zero_cpu() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let far = set_timeout(Duration::from_secs(3600), || panic!("far timer fired"));
        // After a second of idling, clear the far timer so run() returns.
        let _ = set_timeout(Duration::from_secs(1), move || far.clear());
    }
    let cpu = support::cpu::cpu_time();
    let start = Instant::now();
    el.run().unwrap();
    let wall = start.elapsed();
    let cpu = support::cpu::cpu_time() - cpu;
    assert!(wall >= Duration::from_secs(1));
    // One iteration waits ~1 s; allow a few for clock rounding.
    assert!(el.iterations() <= 4, "{} iterations", el.iterations());
    // Other tests may run on other threads of this process; this binary has
    // only this one, so the process's CPU time is the loop's.
    assert!(
        cpu < Duration::from_millis(50),
        "idle loop used {cpu:?} of CPU"
    );
}
