//! Re-entrant scheduling and cancelling from every kind of callback: no
//! `RefCell` borrow panic, and every effect happens.

mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop::{
    clear_immediate, clear_interval, clear_timeout, next_tick, queue_microtask, set_immediate,
    set_interval, set_timeout, watch, EventLoop, Interest, Timeout, Watch,
};
use support::{ms, Log};

/// Calls every scheduling API, cancels some of what it scheduled, and
/// records what must still happen: eight records per call.
fn exercise(tag: &'static str, log: &Log) {
    let rec = move |what: &str| {
        let l = log.clone();
        let s = format!("{tag}:{what}");
        move || l.push(s)
    };
    // A timeout, poked with every handle method.
    let t = set_timeout(ms(1), rec("timeout"));
    t.unref();
    t.ref_();
    assert!(t.refresh());
    drop(t);
    // Cancelled at once (twice, to check it is idempotent).
    let c = set_timeout(ms(1), || panic!("cleared timeout ran"));
    clear_timeout(&c);
    c.clear();
    // An interval that clears itself from its own callback after two runs.
    let me: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
    let me2 = me.clone();
    let mut n = 0;
    let r = rec("interval");
    let r = Rc::new(RefCell::new(Some(r)));
    let l = log.clone();
    *me.borrow_mut() = Some(set_interval(ms(1), move || {
        n += 1;
        l.push(format!("{tag}:interval{n}"));
        if n == 2 {
            clear_interval(me2.borrow().as_ref().unwrap());
            // Dropping our own handle from inside our callback.
            me2.borrow_mut().take();
            r.borrow_mut().take();
        }
    }));
    // Immediates, one cancelled.
    let _ = set_immediate(rec("immediate"));
    let i2 = set_immediate(|| panic!("cleared immediate ran"));
    clear_immediate(&i2);
    i2.clear();
    // Ticks and microtasks that schedule more.
    let r = rec("tick");
    next_tick(move || {
        r();
    });
    let r = rec("microtask");
    let l = log.clone();
    queue_microtask(move || {
        r();
        next_tick(move || l.push(format!("{tag}:tick-from-microtask")));
    });
    // A watch that reads and then closes itself inside its own callback.
    let (mut a, b) = UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    a.write_all(b"x").unwrap();
    let slot: Rc<RefCell<Option<(Watch, UnixStream, UnixStream)>>> = Rc::default();
    let slot2 = slot.clone();
    let r = rec("io");
    let mut r = Some(r);
    let w = watch(&b, Interest::READABLE, move |_| {
        let taken = slot2.borrow_mut().take();
        if let Some((w, _a, mut b)) = taken {
            let mut buf = [0u8; 4];
            assert_eq!(b.read(&mut buf).unwrap(), 1);
            w.close(); // close self, inside own callback
            w.close();
            drop(w);
        }
        if let Some(r) = r.take() {
            r();
        }
    })
    .unwrap();
    *slot.borrow_mut() = Some((w, a, b));
}

#[test]
fn every_api_from_every_kind_of_callback() {
    let log = Log::new();
    let el = EventLoop::new().unwrap();
    let remote = el.remote();
    {
        let _g = el.enter();
        exercise("main", &log);
        let l = log.clone();
        let _ = set_timeout(ms(2), move || {
            exercise("timer", &l);
        });
        let l = log.clone();
        let me: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        let me2 = me.clone();
        *me.borrow_mut() = Some(set_interval(ms(2), move || {
            exercise("interval", &l);
            me2.borrow_mut().take().unwrap().clear();
        }));
        let l = log.clone();
        let _ = set_immediate(move || {
            exercise("immediate", &l);
        });
        let l = log.clone();
        next_tick(move || {
            exercise("tick", &l);
        });
        let l = log.clone();
        queue_microtask(move || {
            exercise("microtask", &l);
        });
        // From an I/O callback.
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"x").unwrap();
        let l = log.clone();
        let holder: Rc<RefCell<Option<Watch>>> = Rc::default();
        let h2 = holder.clone();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
        // The callback owns the sockets: they close after the watch does.
        let sockets = (a, b);
        *holder.borrow_mut() = Some(
            evloop::watch_fd(fd, Interest::READABLE, move |_| {
                let _sockets = &sockets;
                h2.borrow_mut().take();
                exercise("io", &l);
            })
            .unwrap(),
        );
        // From the pending phase (a cross-thread post), kept alive by a timer.
        let l = log.clone();
        let keep_alive: Rc<RefCell<Option<Timeout>>> =
            Rc::new(RefCell::new(Some(set_timeout(ms(5000), || {}))));
        thread_local!(static JOB: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None));
        JOB.with(|j| {
            *j.borrow_mut() = Some(Box::new(move || {
                exercise("pending", &l);
                keep_alive.borrow_mut().take().unwrap().clear();
            }))
        });
        std::thread::spawn(move || {
            remote
                .post(|| JOB.with(|j| j.borrow_mut().take().unwrap()()))
                .unwrap();
        });
    }
    el.run().unwrap();
    let got = log.take();
    // Eight kinds of callback, eight records each, nothing else.
    assert_eq!(got.len(), 8 * 8, "{got:#?}");
    for tag in [
        "main",
        "timer",
        "interval",
        "immediate",
        "tick",
        "microtask",
        "io",
        "pending",
    ] {
        for what in [
            "timeout",
            "interval1",
            "interval2",
            "immediate",
            "tick",
            "microtask",
            "tick-from-microtask",
            "io",
        ] {
            let want = format!("{tag}:{what}");
            assert_eq!(
                got.iter().filter(|s| **s == want).count(),
                1,
                "{want} in {got:#?}"
            );
        }
    }
}

#[test]
fn clearing_inside_and_dropping_handles_inside_callbacks() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        // A timeout that clears itself and drops its own handle while
        // running, then re-arms a fresh one.
        let me: Rc<RefCell<Option<Timeout>>> = Rc::default();
        let me2 = me.clone();
        let l2 = l.clone();
        *me.borrow_mut() = Some(set_timeout(ms(1), move || {
            let t = me2.borrow_mut().take().unwrap();
            t.clear();
            assert!(!t.refresh(), "refresh after clear must not re-arm");
            drop(t);
            let _ = set_timeout(ms(1), l2.rec("c"));
        }));
        // A timer that refreshes itself from its own callback runs twice.
        let slot: Rc<RefCell<Option<Timeout>>> = Rc::default();
        let slot2 = slot.clone();
        let l3 = l.clone();
        let mut n = 0;
        *slot.borrow_mut() = Some(evloop::set_timeout_mut(ms(1), move || {
            n += 1;
            l3.push(format!("r{n}"));
            if n == 1 {
                assert!(slot2.borrow().as_ref().unwrap().refresh());
            } else {
                slot2.borrow_mut().take();
            }
        }));
    })
    .unwrap();
    let mut got = log.take();
    got.sort();
    assert_eq!(got, ["c", "r1", "r2"]);
}
