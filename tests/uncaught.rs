//! Errors never vanish (issue 16): every source of an error that nobody
//! waits for, in each style where it exists, with no handler (the loop
//! stops and `run` returns the error, as Node exits on an uncaught
//! exception) and with an uncaught-exception handler (called once with the
//! error's origin; the loop goes on; nothing is left behind). README's
//! "Errors nobody handles" table is this file's table.

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{self, UdpSocket};
use evloop::process::{on_signal, promises, Command, Signal};
use evloop::promise::{self, Promise, Rejection, UnhandledRejections};
use evloop::task::{self, sleep};
use evloop::{fs, set_timeout, Error, EventLoop, Origin};
use support::ms;

/// What the loop reports for a case.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// `Error::Panicked` with this message.
    Panic(&'static str),
    /// `Error::UnhandledRejection`: a panic with this message.
    RejectedPanic(&'static str),
    /// `Error::UnhandledRejection` of this kind.
    Rejected(io::ErrorKind),
    /// `Error::UnhandledError` of this kind (the emitter is named).
    Unlistened(io::ErrorKind),
}

impl Want {
    fn origin(self) -> Origin {
        match self {
            Want::Panic(_) | Want::Unlistened(_) => Origin::UncaughtException,
            Want::RejectedPanic(_) | Want::Rejected(_) => Origin::UnhandledRejection,
        }
    }

    fn check(self, case: &str, e: &Error) {
        let ok = match (self, e) {
            (Want::Panic(m), Error::Panicked(p)) => p.message() == m,
            (Want::RejectedPanic(m), Error::UnhandledRejection(r)) => {
                r.as_panic().is_some() && r.message() == m
            }
            (Want::Rejected(k), Error::UnhandledRejection(r)) => r.kind() == k,
            (Want::Unlistened(k), Error::UnhandledError { emitter, error }) => {
                !emitter.is_empty() && error.kind() == k
            }
            _ => false,
        };
        assert!(ok, "{case}: wanted {self:?}, got {e:?}");
        assert_eq!(e.origin(), Some(self.origin()), "{case}");
    }
}

/// A TCP server on its own thread that resets each connection it accepts
/// (SO_LINGER 0, then close): the client's next read fails with
/// `ConnectionReset`.
fn resetting_server() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        // One connection per case run (two runs per case, a few cases).
        for s in l.incoming().take(8) {
            let Ok(s) = s else { return };
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            std::thread::sleep(ms(20));
            drop(s);
        }
    });
    addr
}

/// A UDP port nobody listens on (bound, then closed).
fn closed_udp_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

type Setup = Box<dyn Fn()>;

/// Keeps the panics the cases raise on purpose quiet, and prints the rest
/// (a failed assertion among them).
fn quiet_planned_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planned = ["boom", "executor threw", "taken by the handler"];
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned());
        if !msg.is_some_and(|m| planned.contains(&m.as_str())) {
            default(info);
        }
    }));
}

fn cases(reset: SocketAddr) -> Vec<(&'static str, Setup, Want)> {
    const MISSING: &str = "/nonexistent/evloop-no-such-program";
    let panic = Want::Panic("boom");
    let rejected_panic = Want::RejectedPanic("boom");
    let not_found = Want::Rejected(io::ErrorKind::NotFound);
    vec![
        // -- a callback panics
        (
            "callback panics / callbacks",
            Box::new(|| drop(set_timeout(ms(1), || panic!("boom")))),
            panic,
        ),
        (
            "callback panics / promises (then)",
            Box::new(|| {
                let _ = Promise::resolve(1).then(|_| -> u32 { panic!("boom") });
            }),
            rejected_panic,
        ),
        (
            "callback panics / async (after an await)",
            Box::new(|| {
                let _ = evloop::spawn(async {
                    sleep(ms(1)).await;
                    panic!("boom")
                });
            }),
            rejected_panic,
        ),
        (
            "callback panics / async (before any await)",
            Box::new(|| {
                let _ = evloop::spawn(async { panic!("boom") });
            }),
            rejected_panic,
        ),
        // -- a promise nobody handles
        (
            "promise rejected / promises",
            Box::new(|| {
                let _ = Promise::<()>::reject(Rejection::from(io::Error::from(
                    io::ErrorKind::NotFound,
                )));
            }),
            not_found,
        ),
        (
            "promise rejected / async (spawn_try returns Err)",
            Box::new(|| {
                let _ = task::spawn_try(async {
                    sleep(ms(1)).await;
                    Err::<(), _>(io::Error::from(io::ErrorKind::NotFound))
                });
            }),
            not_found,
        ),
        // -- a stream fails with no error listener
        (
            "stream error / callbacks",
            Box::new(move || {
                net::connect(reset, |r| {
                    r.unwrap().on_data(|_| {});
                })
            }),
            Want::Unlistened(io::ErrorKind::ConnectionReset),
        ),
        (
            "stream error / promises",
            Box::new(move || {
                net::promises::connect(reset).then(|s| {
                    s.on_data(|_| {});
                });
            }),
            Want::Unlistened(io::ErrorKind::ConnectionReset),
        ),
        (
            "stream error / async (returned to the awaiting read)",
            Box::new(move || {
                let _ = task::spawn_try(async move {
                    let mut s = task::net::TcpStream::connect(reset).await?;
                    let mut buf = [0u8; 16];
                    loop {
                        if s.read(&mut buf).await? == 0 {
                            return Ok::<(), io::Error>(());
                        }
                    }
                });
            }),
            Want::Rejected(io::ErrorKind::ConnectionReset),
        ),
        // -- a UDP socket's receive error with no listener
        (
            "udp receive error / callbacks",
            Box::new(|| {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                s.connect(closed_udp_port()).unwrap();
                s.on_message(|_, _| {});
                let s2 = s.clone();
                s.send(b"anyone?", move |_| {
                    // Closed after the error (or after 200 ms) so the loop ends.
                    drop(set_timeout(ms(200), move || s2.close()));
                });
            }),
            Want::Unlistened(io::ErrorKind::ConnectionRefused),
        ),
        // -- a pool job and a file operation
        (
            "pool job panics / promises",
            Box::new(|| {
                let _ = promise::queue_work(|| -> u32 { panic!("boom") });
            }),
            Want::Rejected(io::ErrorKind::Other),
        ),
        (
            "file error / promises",
            Box::new(|| {
                let _ = fs::promises::read_file("/nonexistent/evloop-file");
            }),
            not_found,
        ),
        (
            "file error / async",
            Box::new(|| {
                let _ = task::spawn_try(async {
                    fs::promises::read_file("/nonexistent/evloop-file").await?;
                    Ok::<(), Rejection>(())
                });
            }),
            not_found,
        ),
        // -- a child process that cannot start
        (
            "child cannot start / promises",
            Box::new(|| {
                let _ = promises::exec(&mut Command::new(MISSING));
            }),
            not_found,
        ),
        (
            "child cannot start / async",
            Box::new(|| {
                let _ = task::spawn_try(async {
                    promises::exec(&mut Command::new(MISSING)).await?;
                    Ok::<(), Rejection>(())
                });
            }),
            not_found,
        ),
        // -- a signal handler panics
        (
            "signal handler panics / callbacks",
            Box::new(|| {
                let h = on_signal(Signal::SIGUSR2, |_| panic!("boom")).unwrap();
                // The handle stays until the loop is dropped; close it
                // after the signal so the loop can end.
                drop(set_timeout(ms(100), move || h.close()));
                // SAFETY: raise has no preconditions.
                unsafe { libc::raise(libc::SIGUSR2) };
            }),
            panic,
        ),
    ]
}

/// Each case twice: with no handler the run ends with the error; with a
/// handler the handler gets it once, with its origin, and the loop runs on
/// (a later timer fires) to its end, leaving no handle behind.
#[test]
fn every_error_source_in_every_style_is_loud() {
    support::init_log();
    quiet_planned_panics();
    let reset = resetting_server();
    for (case, setup, want) in cases(reset) {
        // No handler: the run returns the error.
        let el = EventLoop::new().unwrap();
        let r = el.run_main(&setup).and_then(|()| el.run());
        match r {
            Err(e) => want.check(case, &e),
            Ok(()) => panic!("{case}: the error vanished"),
        }
        drop(el);

        // A handler: called once, the loop goes on.
        let el = EventLoop::new().unwrap();
        let seen: Rc<RefCell<Vec<(Error, Origin)>>> = Rc::default();
        let s = seen.clone();
        el.on_uncaught_exception(move |e, o| s.borrow_mut().push((e, o)));
        let later = Rc::new(Cell::new(false));
        let l = later.clone();
        el.run_main(|| {
            setup();
            drop(set_timeout(ms(30), move || l.set(true)));
        })
        .unwrap();
        el.run().unwrap_or_else(|e| panic!("{case}: {e}"));
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1, "{case}: {seen:?}");
        want.check(case, &seen[0].0);
        assert_eq!(seen[0].1, want.origin(), "{case}");
        assert!(later.get(), "{case}: the loop went on");
        // Nothing left that keeps a loop alive (the loop's own unref'd
        // SIGCHLD watch, made by a spawn, may stay until it is dropped).
        let left: Vec<_> = el
            .active_handles()
            .into_iter()
            .filter(|h| h.refed)
            .collect();
        assert!(left.is_empty(), "{case}: {left:?}");
    }
}

/// An unhandled-rejection hook takes a rejection before the uncaught
/// handler (Node's default `throw` mode), and `Strict` raises it as
/// uncaught first and calls the hook after.
#[test]
fn rejection_hook_and_modes() {
    for (mode, want_hook, want_uncaught) in [
        (UnhandledRejections::Throw, 1, 0),
        (UnhandledRejections::Strict, 1, 1),
        (UnhandledRejections::Warn, 1, 0),
        (UnhandledRejections::None, 1, 0),
    ] {
        let (hook, uncaught) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (h, u) = (hook.clone(), uncaught.clone());
        evloop::run(move || {
            promise::set_unhandled_rejections(mode);
            promise::on_unhandled_rejection(move |_| h.set(h.get() + 1));
            evloop::on_uncaught_exception(move |_, _| u.set(u.get() + 1));
            let _ = Promise::<()>::reject(Rejection::msg("x"));
        })
        .unwrap();
        assert_eq!(
            (hook.get(), uncaught.get()),
            (want_hook, want_uncaught),
            "{mode:?}"
        );
    }
    // No hook, no handler: Strict and Throw stop; Warn and None do not.
    for (mode, stops) in [
        (UnhandledRejections::Throw, true),
        (UnhandledRejections::Strict, true),
        (UnhandledRejections::Warn, false),
        (UnhandledRejections::None, false),
    ] {
        let r = evloop::run(move || {
            promise::set_unhandled_rejections(mode);
            let _ = Promise::<()>::reject(Rejection::msg("x"));
        });
        assert_eq!(r.is_err(), stops, "{mode:?}: {r:?}");
    }
}

/// An aborted task is never reported as an unhandled rejection by itself.
#[test]
fn an_aborted_task_is_not_an_unhandled_rejection() {
    evloop::run(|| {
        let (_promise, abort) = task::spawn_handle(sleep(Duration::from_secs(5)));
        drop(set_timeout(ms(1), move || abort.abort()));
    })
    .unwrap();
}

/// The settings of the loop are reachable from inside `run` and
/// `run_async`, from a callback and from a task.
#[test]
fn the_loop_is_reachable_from_inside_it() {
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    evloop::run(move || {
        let me = EventLoop::current().expect("inside run");
        me.on_uncaught_exception(move |_, _| s.set(s.get() + 1));
        drop(set_timeout(ms(1), || panic!("taken by the handler")));
        assert_eq!(evloop::active_handles().len(), 1);
    })
    .unwrap();
    assert_eq!(seen.get(), 1);

    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    evloop::run_async(async move {
        evloop::on_uncaught_exception(move |_, o| {
            assert_eq!(o, Origin::UnhandledRejection);
            s.set(s.get() + 1)
        });
        let _ = Promise::<()>::reject(Rejection::msg("taken"));
        sleep(ms(1)).await;
        assert!(evloop::active_handles().is_empty());
    })
    .unwrap();
    assert_eq!(seen.get(), 1);
    assert!(EventLoop::current().is_none());
}

/// A caught panic's message is the panic's own text; where it came from is
/// a separate field.
#[test]
fn a_panic_message_is_its_own_text() {
    quiet_planned_panics();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    evloop::run(move || {
        Promise::<u32>::new(|_, _| panic!("executor threw")).catch(move |e| {
            *g.borrow_mut() = Some((
                e.message(),
                e.to_string(),
                e.as_panic().unwrap().origin().to_string(),
            ));
            0
        });
    })
    .unwrap();
    let (message, shown, origin) = got.borrow_mut().take().unwrap();
    assert_eq!(message, "executor threw");
    assert_eq!(shown, "executor threw");
    assert_eq!(origin, "promise executor");
}
