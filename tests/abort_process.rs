//! Issue 18: children, `exec`, `once_signal` bound to an `AbortSignal`:
//! aborted before the start, while in flight, after completion; from a
//! timer, a microtask, another task and another thread. The child is
//! really killed (`SIGTERM`), reaped, and nothing keeps the loop alive.

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::abort::{is_abort_error, AbortController, AbortError, AbortSignal};
use evloop::process::{exec, once_signal_with_signal, promises, Command, Signal, Stdio};
use evloop::promise::Rejection;
use evloop::EventLoop;

/// Handles that keep the loop alive.
fn refed() -> Vec<evloop::HandleInfo> {
    evloop::active_handles()
        .into_iter()
        .filter(|h| h.refed)
        .collect()
}

use support::abort::{Via, ALL_VIA};

/// Aborts `controller` with the reason "stop", from `via`, soon.
fn abort_via(via: Via, controller: AbortController) {
    support::abort::abort_via(via, controller, Duration::from_millis(20));
}

/// Runs `main` on a fresh loop, to the end; returns how long it took.
fn run_timed(main: impl FnOnce()) -> Duration {
    support::init_log();
    let t0 = Instant::now();
    let el = EventLoop::new().unwrap();
    el.run_main(main).unwrap();
    el.run().unwrap();
    assert!(!el.is_alive());
    t0.elapsed()
}

/// An `AbortError` whose reason is "stop".
fn io_is_stop(e: &io::Error) -> bool {
    let reason = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<AbortError>())
        .map(|a| a.reason().to_string());
    is_abort_error(e) && reason.as_deref() == Some("stop")
}

fn is_stop(e: &Rejection) -> bool {
    e.is_aborted() && e.abort_reason().map(|r| r.to_string()) == Some("stop".into())
}

/// `sleep 3600`, bound to `signal`.
fn sleeper(signal: &AbortSignal) -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg("3600").stdin(Stdio::Null).signal(signal);
    cmd
}

// ---- Command::signal: spawn, on_exit, wait, .await ----

#[test]
fn spawn_aborted_before_start_starts_nothing() {
    run_timed(|| {
        let signal = AbortSignal::abort(Rejection::msg("stop"));
        let e = sleeper(&signal).spawn().unwrap_err();
        assert!(io_is_stop(&e), "{e}");
        assert!(refed().is_empty(), "{:?}", refed());
    });
}

#[test]
fn child_killed_on_abort_from_everywhere() {
    for via in ALL_VIA {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let took = run_timed(move || {
            let controller = AbortController::new();
            let child = sleeper(&controller.signal()).spawn().unwrap();
            // Callback.
            let (c, s1) = (child.clone(), s.clone());
            child.on_exit(move |r| {
                let e = r.unwrap_err();
                s1.borrow_mut().push(format!("cb {}", io_is_stop(&e)));
                let status = c.exit_status().expect("reaped");
                assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
                assert!(refed().is_empty(), "{:?}", refed());
            });
            // Promise.
            let s2 = s.clone();
            child
                .wait()
                .then(|_| unreachable!("aborted"))
                .catch(move |e| s2.borrow_mut().push(format!("promise {}", is_stop(&e))));
            // Async/await.
            let (c, s3) = (child.clone(), s.clone());
            evloop::spawn(async move {
                let e = c.wait().await.unwrap_err();
                s3.borrow_mut().push(format!("await {}", is_stop(&e)));
            });
            abort_via(via, controller);
        });
        let mut seen = seen.borrow().clone();
        seen.sort();
        assert_eq!(seen, ["await true", "cb true", "promise true"], "{via:?}");
        assert!(took < Duration::from_secs(1), "{via:?}: {took:?}");
    }
}

#[test]
fn child_done_then_aborted_reports_its_exit() {
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    run_timed(move || {
        let controller = AbortController::new();
        let child = Command::new("true")
            .signal(&controller.signal())
            .spawn()
            .unwrap();
        let c = child.clone();
        child.on_exit(move |r| {
            controller.abort(None);
            // Too late: a later listener sees the real exit too.
            c.on_exit(move |r2| g.set(Some(r.unwrap().success() && r2.unwrap().success())));
        });
    });
    assert_eq!(got.get(), Some(true));
}

// ---- exec / promises::exec ----

#[test]
fn exec_aborted_before_start() {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    run_timed(move || {
        let signal = AbortSignal::abort(Rejection::msg("stop"));
        let g1 = g.clone();
        exec(sleeper(&signal).arg("x"), move |r| {
            g1.borrow_mut().push(io_is_stop(&r.unwrap_err()))
        });
        assert!(g.borrow().is_empty(), "called back asynchronously");
        let g2 = g.clone();
        promises::exec(&mut sleeper(&signal))
            .then(|_| ())
            .catch(move |e| g2.borrow_mut().push(is_stop(&e)));
        assert!(
            refed().iter().all(|h| h.kind != evloop::HandleKind::Io),
            "{:?}",
            refed()
        );
    });
    assert_eq!(*got.borrow(), [true, true]);
}

#[test]
fn exec_aborted_in_flight_from_everywhere() {
    for via in ALL_VIA {
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let took = run_timed(move || {
            let controller = AbortController::new();
            let signal = controller.signal();
            let g1 = g.clone();
            exec(&mut sleeper(&signal), move |r| {
                g1.borrow_mut().push(io_is_stop(&r.unwrap_err()))
            });
            let g2 = g.clone();
            promises::exec(&mut sleeper(&signal))
                .then(|_| ())
                .catch(move |e| g2.borrow_mut().push(is_stop(&e)));
            abort_via(via, controller);
        });
        assert_eq!(*got.borrow(), [true, true], "{via:?}");
        assert!(took < Duration::from_secs(1), "{via:?}: {took:?}");
    }
}

#[test]
fn exec_done_then_aborted_keeps_its_output() {
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    run_timed(move || {
        let controller = AbortController::new();
        let p = promises::exec(Command::new("echo").arg("hi").signal(&controller.signal()));
        p.then(move |out| {
            controller.abort(None);
            *g.borrow_mut() = Some(out.stdout);
        });
    });
    assert_eq!(got.borrow().as_deref(), Some(&b"hi\n"[..]));
}

// ---- once_signal_with_signal ----

#[test]
fn once_signal_aborted_before_start() {
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    run_timed(move || {
        let signal = AbortSignal::abort(Rejection::msg("stop"));
        once_signal_with_signal(Signal::SIGUSR2, &signal)
            .then(|_| ())
            .catch(move |e| g.set(Some(is_stop(&e))));
        assert!(refed().is_empty(), "no handler: {:?}", refed());
    });
    assert_eq!(got.get(), Some(true));
}

#[test]
fn once_signal_aborted_in_flight_from_everywhere() {
    for via in ALL_VIA {
        let got = Rc::new(Cell::new(None));
        let g = got.clone();
        let took = run_timed(move || {
            let controller = AbortController::new();
            let signal = controller.signal();
            once_signal_with_signal(Signal::SIGUSR2, &signal)
                .then(|_| ())
                .catch(move |e| g.set(Some(is_stop(&e))));
            assert_eq!(refed().len(), 1, "the handler");
            let _ = signal.on_abort(|_| {
                // The abort closed the handler first.
                let left = refed();
                assert!(
                    !left.iter().any(|h| h.label.starts_with("signal")),
                    "{left:?}"
                );
            });
            abort_via(via, controller);
        });
        assert_eq!(got.get(), Some(true), "{via:?}");
        assert!(took < Duration::from_secs(1), "{via:?}: {took:?}");
    }
}

#[test]
fn once_signal_delivered_then_aborted() {
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    run_timed(move || {
        let controller = AbortController::new();
        once_signal_with_signal(Signal::SIGUSR1, &controller.signal()).then(move |sig| {
            controller.abort(None);
            g.set(Some(sig));
        });
        evloop::set_timeout(Duration::from_millis(1), || {
            evloop::process::kill(std::process::id(), Signal::SIGUSR1).unwrap();
        });
    });
    assert_eq!(got.get(), Some(Signal::SIGUSR1));
}
