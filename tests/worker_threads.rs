//! Worker threads and message ports (`evloop::worker_threads`).
//!
//! Every test is bounded by a watchdog (a hang aborts the binary instead
//! of stalling CI); none asserts on timing.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evloop::worker_threads::{self, MessageChannel, MessagePort, Worker, WorkerError};
use support::watchdog::Watchdog;

fn guard(name: &'static str) -> Watchdog {
    support::init_log();
    Watchdog::new(name, Duration::from_secs(60))
}

#[derive(Debug, Clone, PartialEq)]
struct Job {
    n: u64,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Done { n: u64, upper: String },
    Bye,
}

#[derive(Debug, Clone)]
enum Msg {
    Job(Job),
    Reply(Reply),
}

#[test]
fn typed_messages_round_trip_both_ways() {
    let _w = guard("typed_messages_round_trip_both_ways");
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    evloop::run(move || {
        let worker = Worker::spawn(|parent: MessagePort<Msg>| {
            let reply = parent.clone();
            parent.on_message(move |m| match m {
                Msg::Job(job) if job.n == 0 => {
                    reply.post_message(Msg::Reply(Reply::Bye)).unwrap();
                    reply.close();
                }
                Msg::Job(job) => {
                    let upper = job.text.to_uppercase();
                    reply
                        .post_message(Msg::Reply(Reply::Done { n: job.n, upper }))
                        .unwrap();
                }
                Msg::Reply(_) => panic!("a reply sent to the worker"),
            });
        })
        .unwrap();
        for n in [1, 2, 3, 0] {
            let text = format!("job {n}");
            worker.post_message(Msg::Job(Job { n, text })).unwrap();
        }
        worker.on_message(move |m| match m {
            Msg::Reply(r) => g.borrow_mut().push(r),
            Msg::Job(_) => panic!("a job sent to the parent"),
        });
        worker.on_exit(|code| assert_eq!(code, 0));
    })
    .unwrap();
    let done = |n: u64| Reply::Done {
        n,
        upper: format!("JOB {n}"),
    };
    assert_eq!(*got.borrow(), [done(1), done(2), done(3), Reply::Bye]);
}

#[test]
fn messages_arrive_in_order_each_with_its_checkpoint() {
    let _w = guard("messages_arrive_in_order_each_with_its_checkpoint");
    const N: i64 = 10_000;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    evloop::run(move || {
        let worker = Worker::spawn(|parent: MessagePort<i64>| {
            for n in 1..=N {
                parent.post_message(n).unwrap();
            }
        })
        .unwrap();
        worker.on_message(move |n| {
            s.borrow_mut().push(n);
            let s = s.clone();
            // The checkpoint after this message runs before the next one.
            evloop::queue_microtask(move || s.borrow_mut().push(-n));
        });
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2 * N as usize);
    for (i, pair) in seen.chunks(2).enumerate() {
        let n = i as i64 + 1;
        assert_eq!(pair, [n, -n]);
    }
}

#[test]
fn on_message_adds_listeners_and_remove_takes_one_off() {
    let _w = guard("on_message_adds_listeners_and_remove_takes_one_off");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    evloop::run(move || {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let worker = Worker::spawn(move |parent: MessagePort<String>| {
            parent.post_message("one".into()).unwrap();
            // Wait until the parent has taken a listener off.
            go_rx.recv().unwrap();
            parent.post_message("two".into()).unwrap();
        })
        .unwrap();
        let (a, b) = (s.clone(), s.clone());
        worker.on_message(move |m| a.borrow_mut().push(format!("first {m}")));
        let second = Rc::new(RefCell::new(None));
        let second2 = second.clone();
        let l = worker.on_message(move |m| {
            b.borrow_mut().push(format!("second {m}"));
            // After the first message: take this listener off, let the
            // worker go on.
            if let Some(l) = second2.borrow_mut().take() {
                let l: evloop::Listener = l;
                assert!(l.remove());
                go_tx.send(()).unwrap();
            }
        });
        *second.borrow_mut() = Some(l);
    })
    .unwrap();
    assert_eq!(
        *seen.borrow(),
        ["first one", "second one", "first two"].map(String::from)
    );
}

#[test]
fn recv_as_a_promise_and_awaited() {
    let _w = guard("recv_as_a_promise_and_awaited");
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    evloop::run(move || {
        let worker = Worker::spawn(|parent: MessagePort<u32>| {
            // The worker awaits too.
            evloop::spawn(async move {
                while let Ok(Some(n)) = parent.recv().await {
                    parent.post_message(n * 10).unwrap();
                }
            });
        })
        .unwrap();
        worker.post_message(1).unwrap();
        // The promise form.
        let g1 = g.clone();
        let w = worker.clone();
        worker.recv().then(move |v| {
            g1.borrow_mut().push(v);
            w.post_message(2).unwrap();
            // And the async form.
            evloop::spawn(async move {
                let v = w.recv().await.unwrap();
                g1.borrow_mut().push(v);
                w.port().close();
                let v = w.recv().await.unwrap();
                g1.borrow_mut().push(v);
                let v = Some(w.exited().await.unwrap() as u32);
                g1.borrow_mut().push(v);
            });
        });
    })
    .unwrap();
    assert_eq!(*got.borrow(), [Some(10), Some(20), None, Some(0)]);
}

#[derive(Debug, Clone)]
enum Setup {
    Port(MessagePort<String>),
    Text(String),
}

#[test]
fn a_message_channel_port_sent_to_the_worker_is_used_there() {
    let _w = guard("a_message_channel_port_sent_to_the_worker_is_used_there");
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    evloop::run(move || {
        let worker = Worker::spawn(|parent: MessagePort<Setup>| {
            let p = parent.clone();
            parent.once_message(move |m| {
                let Setup::Port(port) = m else {
                    panic!("expected a port")
                };
                // The port attaches to this (the worker's) loop here.
                let reply = port.clone();
                port.on_message(move |text| {
                    reply.post_message(format!("worker got {text}")).unwrap();
                    reply.close();
                });
                p.post_message(Setup::Text("port received".into())).unwrap();
                p.close();
            });
        })
        .unwrap();
        let (mine, theirs) = MessageChannel::new::<String>();
        worker.post_message(Setup::Port(theirs)).unwrap();
        let g1 = g.clone();
        worker.on_message(move |m| {
            if let Setup::Text(t) = m {
                g1.borrow_mut().push(t);
            }
        });
        mine.post_message("hello".into()).unwrap();
        let g2 = g.clone();
        mine.on_message(move |t| g2.borrow_mut().push(t));
        let g3 = g.clone();
        mine.once_close(move || g3.borrow_mut().push("closed".into()));
    })
    .unwrap();
    let got = got.borrow();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.contains(&"port received".to_string()));
    let i = got.iter().position(|s| s == "worker got hello").unwrap();
    let j = got.iter().position(|s| s == "closed").unwrap();
    assert!(i < j);
}

#[test]
fn closing_or_dropping_a_port_closes_the_other_end() {
    let _w = guard("closing_or_dropping_a_port_closes_the_other_end");
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    evloop::run(move || {
        let (a, b) = MessageChannel::new::<u8>();
        a.post_message(1).unwrap();
        drop(a); // the last handle: the pair closes
        assert!(b.is_closed());
        let (c, d) = MessageChannel::new::<u8>();
        c.close();
        assert!(d.post_message(9).is_err());
        evloop::spawn(async move {
            // What was posted before the close still arrives.
            let v = b.recv().await.unwrap();
            g.borrow_mut().push(v);
            let v = b.recv().await.unwrap();
            g.borrow_mut().push(v);
            let v = d.recv().await.unwrap();
            g.borrow_mut().push(v);
        });
    })
    .unwrap();
    assert_eq!(*got.borrow(), [Some(1), None, None]);
}

#[test]
fn exit_codes_zero_and_set() {
    let _w = guard("exit_codes_zero_and_set");
    let codes = Rc::new(RefCell::new(Vec::new()));
    let c = codes.clone();
    evloop::run(move || {
        let normal = Worker::spawn(|_: MessagePort<()>| {
            assert!(!worker_threads::is_main_thread());
            evloop::set_timeout(Duration::from_millis(1), || {});
        })
        .unwrap();
        let c1 = c.clone();
        normal.on_exit(move |code| c1.borrow_mut().push(("normal", code)));
        let seven = Worker::spawn(|_: MessagePort<()>| {
            evloop::set_immediate(|| worker_threads::exit(7));
            // Would keep it alive: exit stops the loop anyway.
            evloop::set_interval(Duration::from_millis(5), || {});
        })
        .unwrap();
        let c2 = c.clone();
        seven.on_exit(move |code| c2.borrow_mut().push(("exit(7)", code)));
    })
    .unwrap();
    let mut codes = codes.borrow().clone();
    codes.sort();
    assert_eq!(codes, [("exit(7)", 7), ("normal", 0)]);
    assert!(worker_threads::is_main_thread());
}

#[test]
fn a_panic_in_the_worker_is_an_error_then_exit_one() {
    let _w = guard("a_panic_in_the_worker_is_an_error_then_exit_one");
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    evloop::run(move || {
        let worker = Worker::spawn(|_: MessagePort<()>| {
            evloop::set_timeout(Duration::from_millis(1), || panic!("boom in the worker"));
        })
        .unwrap();
        let l1 = l.clone();
        worker.on_error(move |e: WorkerError| {
            assert!(e.is_panic());
            l1.borrow_mut().push(format!("error: {}", e.message()));
        });
        let l2 = l.clone();
        let w = worker.clone();
        worker.on_exit(move |code| {
            l2.borrow_mut().push(format!("exit {code}"));
            assert_eq!(w.exit_code(), Some(1));
        });
    })
    .unwrap();
    assert_eq!(
        *log.borrow(),
        ["error: boom in the worker".to_string(), "exit 1".into()]
    );
}

#[test]
fn a_worker_error_without_listener_is_uncaught_in_the_parent() {
    let _w = guard("a_worker_error_without_listener_is_uncaught_in_the_parent");
    let r = evloop::run(|| {
        Worker::spawn(|_: MessagePort<()>| panic!("nobody listens")).unwrap();
    });
    let e = r.unwrap_err();
    assert!(e.to_string().contains("nobody listens"), "{e}");
}

#[test]
fn terminate_stops_a_worker_stuck_in_an_interval() {
    let _w = guard("terminate_stops_a_worker_stuck_in_an_interval");
    let code = Rc::new(Cell::new(None));
    let c = code.clone();
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    evloop::run(move || {
        let worker = Worker::spawn(move |parent: MessagePort<&'static str>| {
            evloop::set_interval(Duration::from_millis(1), move || {
                if t.fetch_add(1, Ordering::Relaxed) == 3 {
                    parent.post_message("running").unwrap();
                }
            });
        })
        .unwrap();
        let w = worker.clone();
        worker.once_message(move |_| {
            w.terminate().then(move |code| c.set(Some(code)));
        });
    })
    .unwrap();
    assert_eq!(code.get(), Some(1));
    assert!(ticks.load(Ordering::Relaxed) > 3);
}

#[test]
fn an_unrefd_worker_does_not_keep_the_parent_alive() {
    let _w = guard("an_unrefd_worker_does_not_keep_the_parent_alive");
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    evloop::run(move || {
        let worker = Worker::spawn(move |_: MessagePort<()>| {
            let interval = Rc::new(RefCell::new(None::<evloop::Interval>));
            let me = interval.clone();
            *interval.borrow_mut() =
                Some(evloop::set_interval(Duration::from_millis(1), move || {
                    if r.load(Ordering::Acquire) {
                        if let Some(i) = me.borrow_mut().take() {
                            i.clear();
                        }
                        done_tx.send(()).unwrap();
                    }
                }));
        })
        .unwrap();
        worker.unref();
        assert!(!worker.has_ref());
        worker.on_exit(|_| panic!("the parent's loop ended before the worker"));
    })
    .unwrap();
    // The parent's loop ended while the worker still ran; let it end.
    release.store(true, Ordering::Release);
    done_rx.recv().unwrap();
}

#[test]
fn a_refd_worker_keeps_the_parent_alive_until_it_ends() {
    let _w = guard("a_refd_worker_keeps_the_parent_alive_until_it_ends");
    let worker_done = Arc::new(AtomicBool::new(false));
    let d = worker_done.clone();
    let exit = Rc::new(Cell::new(None));
    let e = exit.clone();
    evloop::run(move || {
        let worker = Worker::spawn(move |_: MessagePort<()>| {
            evloop::set_timeout(Duration::from_millis(30), move || {
                d.store(true, Ordering::Release);
            });
        })
        .unwrap();
        assert!(worker.has_ref());
        worker.on_exit(move |code| e.set(Some(code)));
        // Nothing else on this loop.
    })
    .unwrap();
    assert!(worker_done.load(Ordering::Acquire));
    assert_eq!(exit.get(), Some(0));
}

#[test]
fn a_hundred_workers_spawned_and_joined() {
    let _w = guard("a_hundred_workers_spawned_and_joined");
    let ids = Rc::new(RefCell::new(Vec::new()));
    let exits = Rc::new(Cell::new(0));
    let (i, x) = (ids.clone(), exits.clone());
    evloop::run(move || {
        for _ in 0..100 {
            let worker = Worker::spawn(|parent: MessagePort<u64>| {
                parent.post_message(worker_threads::thread_id()).unwrap();
            })
            .unwrap();
            let i = i.clone();
            let w = worker.clone();
            worker.on_message(move |id| {
                assert_eq!(id, w.thread_id());
                i.borrow_mut().push(id);
            });
            let x = x.clone();
            worker.on_exit(move |code| {
                assert_eq!(code, 0);
                x.set(x.get() + 1);
            });
        }
    })
    .unwrap();
    assert_eq!(exits.get(), 100);
    let mut ids = ids.borrow().clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
}
