//! Process-wide set-up a test does before it takes its baselines.

/// Starts the process-wide signal machinery (a pipe and a dispatcher
/// thread, started once per process on first use, by design) so that an
/// fd or thread census taken afterwards counts it in its baseline.
pub fn warm_process_machinery() {
    let el = evloop::EventLoop::new().unwrap();
    let _g = el.enter();
    evloop::process::Command::new("true")
        .spawn()
        .expect("spawn")
        .on_exit(|r| {
            r.unwrap();
        });
    let s = evloop::process::on_signal(evloop::process::Signal::SIGWINCH, |_| {}).unwrap();
    s.close();
    drop(_g);
    el.run().unwrap();
}

/// Installs a panic hook that stays quiet about the test's own deliberate
/// panics (payloads containing "boom") and reports every other one.
pub fn quiet_booms() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !msg.contains("boom") {
            default(info);
        }
    }));
}
