//! Where an abort comes from, for the cancellation tests (`abort_*.rs`):
//! the issue asks for each operation to be aborted from a timer, a
//! microtask, another task and another thread.

use std::time::Duration;

use evloop::abort::AbortController;
use evloop::promise::Rejection;

/// The ways an abort can come.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    Timer,
    Microtask,
    Task,
    Thread,
}

/// All of them.
pub const ALL_VIA: [Via; 4] = [Via::Timer, Via::Microtask, Via::Task, Via::Thread];

/// Aborts `controller` with the reason "stop", from `via`, after `delay`
/// (a microtask: at the end of the current callback).
pub fn abort_via(via: Via, controller: AbortController, delay: Duration) {
    let reason = || Rejection::msg("stop");
    match via {
        Via::Timer => {
            evloop::set_timeout(delay, move || controller.abort(reason()));
        }
        Via::Microtask => evloop::queue_microtask(move || controller.abort(reason())),
        Via::Task => {
            evloop::spawn(async move {
                evloop::task::sleep(delay).await;
                controller.abort(reason());
            });
        }
        Via::Thread => {
            let sender = controller.sender();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                sender.abort(Some("stop".into())).unwrap();
            });
        }
    }
}
