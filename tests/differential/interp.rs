//! The Rust side: runs a [`Program`] on evloop's public API, one fresh
//! `EventLoop` per program, and returns its trace.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::promise::{Promise, Rejection, Settlement};
use evloop::{Error, EventLoop, Interval};

use super::model::{AStep, Clear, Comb, Link, Program, Ret, Src, Step, Via, SPIN_US};

/// The trace being written.
#[derive(Clone, Default)]
pub struct Trace(Rc<RefCell<Vec<String>>>);

impl Trace {
    fn log(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
}

fn spin() {
    let end = Instant::now() + Duration::from_micros(SPIN_US);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// JavaScript's `show(e)`: the message, or `agg[..]` for `Promise.any`'s
/// aggregate.
pub fn show(r: &Rejection) -> String {
    match r.errors() {
        Some(errs) => format!(
            "agg[{}]",
            errs.iter().map(show).collect::<Vec<_>>().join(",")
        ),
        None => r.message(),
    }
}

fn show_error(e: &Error) -> String {
    match e {
        Error::Panicked(p) => p.message().to_string(),
        Error::UnhandledRejection(r) => show(r),
        other => other.to_string(),
    }
}

/// Runs one program and returns its trace (a loop error is the last line,
/// `loop error: ..`).
pub fn run(p: &Program) -> Vec<String> {
    let t = Trace::default();
    let el = EventLoop::new().expect("a loop");
    let t1 = t.clone();
    el.on_uncaught_exception(move |e, _| {
        if let Error::UnhandledRejection(r) = &e {
            t1.log(format!("unhandled {}", show(r)));
        } else {
            t1.log(format!("uncaught {}", show_error(&e)));
        }
    });
    let t2 = t.clone();
    el.on_unhandled_rejection(move |r: &Rejection| t2.log(format!("unhandled {}", show(r))));
    let main = p.main.clone();
    let t3 = t.clone();
    let mut r = el.run_main(move || exec(&t3, &main));
    if r.is_ok() {
        r = el.run();
    }
    if let Err(e) = r {
        t.log(format!("loop error: {}", show_error(&e)));
    }
    drop(el);
    let v = t.0.borrow().clone();
    v
}

fn schedule(via: Via, f: impl FnOnce() + 'static) {
    match via {
        Via::Tick => evloop::next_tick(f),
        Via::Micro => evloop::queue_microtask(f),
        Via::Immediate => {
            evloop::set_immediate(f);
        }
        Via::Timeout => {
            evloop::set_timeout(Duration::from_millis(1), f);
            spin();
        }
    }
}

fn mk_src(t: &Trace, s: &Src) -> Promise<String> {
    match s {
        Src::Value(id) => Promise::resolve(format!("v{id}")),
        Src::Rejected(id) => Promise::reject(Rejection::msg(format!("e{id}"))),
        Src::Deferred { id, via, reject } => {
            let (t, id, via, reject) = (t.clone(), *id, *via, *reject);
            Promise::new(move |res, rej| {
                schedule(via, move || {
                    t.log(format!("D{id}"));
                    if reject {
                        rej(Rejection::msg(format!("e{id}")));
                    } else {
                        res(format!("d{id}"));
                    }
                })
            })
        }
        Src::Combine { kind, inputs } => {
            let ps: Vec<Promise<String>> = inputs.iter().map(|i| mk_src(t, i)).collect();
            match kind {
                Comb::All => Promise::all(ps).then(|vs| vs.join(",")),
                Comb::AllSettled => Promise::all_settled(ps).then(|rs| {
                    rs.iter()
                        .map(|r| match r {
                            Ok(v) => format!("f:{v}"),
                            Err(e) => format!("r:{}", show(e)),
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                }),
                Comb::Race => Promise::race(ps),
                Comb::Any => Promise::any(ps),
            }
        }
    }
}

fn ret(r: Ret, id: u32) -> Settlement<String> {
    match r {
        Ret::Value => Settlement::Fulfill(format!("t{id}")),
        Ret::Throw => panic!("x{id}"),
        Ret::Resolved => Settlement::Adopt(Promise::resolve(format!("r{id}"))),
        Ret::Rejected => Settlement::Adopt(Promise::reject(Rejection::msg(format!("e{id}")))),
    }
}

fn end(t: &Trace, p: Promise<String>, id: u32) {
    let (t1, t2) = (t.clone(), t.clone());
    p.then_or_else(
        move |v| {
            t1.log(format!("end{id}:{v}"));
            Settlement::Fulfill(())
        },
        move |e| {
            t2.log(format!("endc{id}:{}", show(&e)));
            Settlement::Fulfill(())
        },
    );
}

/// Runs `steps` as the body of the current callback.
pub fn exec(t: &Trace, steps: &[Step]) {
    for s in steps {
        exec_one(t, s);
    }
}

fn exec_one(t: &Trace, s: &Step) {
    match s {
        Step::Log(id) => t.log(format!("L{id}")),
        Step::Timeout {
            id,
            delay,
            clear,
            body,
        } => {
            let (t1, id, body) = (t.clone(), *id, body.clone());
            let delay = Duration::from_millis(u64::from(*delay));
            let cb = move || {
                t1.log(format!("T{id}"));
                exec(&t1, &body);
            };
            // `refresh` after it ran needs the FnMut face (README).
            let h = if *clear == Clear::Refresh {
                evloop::set_timeout_mut(delay, cb)
            } else {
                evloop::set_timeout(delay, cb)
            };
            // Spun even when cleared at once, as interp.js must.
            spin();
            if *clear == Clear::Now {
                h.clear();
                return;
            }
            let t2 = t.clone();
            match clear {
                Clear::Tick => evloop::next_tick(move || {
                    t2.log(format!("ct{id}"));
                    h.clear();
                }),
                Clear::Immediate => {
                    evloop::set_immediate(move || {
                        t2.log(format!("ci{id}"));
                        h.clear();
                    });
                }
                Clear::Refresh => {
                    evloop::set_immediate(move || {
                        t2.log(format!("ri{id}"));
                        h.refresh();
                        spin();
                    });
                }
                _ => {}
            }
        }
        Step::Interval { id, n, body } => {
            let (t1, id, n, body) = (t.clone(), *id, *n, body.clone());
            let slot: Rc<RefCell<Option<Interval>>> = Rc::default();
            let s2 = slot.clone();
            let mut k = 0u8;
            let h = evloop::set_interval(Duration::from_millis(1), move || {
                k += 1;
                t1.log(format!("I{id}.{k}"));
                if k == 1 {
                    exec(&t1, &body);
                }
                if k == n {
                    if let Some(h) = s2.borrow_mut().take() {
                        h.clear();
                    }
                }
                // The last tick too, as interp.js must.
                spin();
            });
            *slot.borrow_mut() = Some(h);
            spin();
        }
        Step::Immediate { id, clear, body } => {
            let (t1, id, body) = (t.clone(), *id, body.clone());
            let h = evloop::set_immediate(move || {
                t1.log(format!("S{id}"));
                exec(&t1, &body);
            });
            match clear {
                Clear::Now => h.clear(),
                Clear::Tick => {
                    let t2 = t.clone();
                    evloop::next_tick(move || {
                        t2.log(format!("cs{id}"));
                        h.clear();
                    })
                }
                _ => {}
            }
        }
        Step::Tick { id, body } => {
            let (t1, id, body) = (t.clone(), *id, body.clone());
            evloop::next_tick(move || {
                t1.log(format!("N{id}"));
                exec(&t1, &body);
            });
        }
        Step::Micro { id, body } => {
            let (t1, id, body) = (t.clone(), *id, body.clone());
            evloop::queue_microtask(move || {
                t1.log(format!("M{id}"));
                exec(&t1, &body);
            });
        }
        Step::Throw(id) => panic!("x{id}"),
        Step::Chain {
            id,
            src,
            links,
            loose,
        } => {
            let mut p = mk_src(t, src);
            for l in links {
                let t1 = t.clone();
                p = match l.clone() {
                    Link::Then { id, body, ret: r } => p.and_then(move |v| {
                        t1.log(format!("then{id}:{v}"));
                        exec(&t1, &body);
                        ret(r, id)
                    }),
                    Link::Catch { id, body, ret: r } => p.or_else(move |e| {
                        t1.log(format!("catch{id}:{}", show(&e)));
                        exec(&t1, &body);
                        ret(r, id)
                    }),
                    Link::Finally { id, body, throws } => p.finally(move || {
                        t1.log(format!("fin{id}"));
                        exec(&t1, &body);
                        if throws {
                            panic!("x{id}");
                        }
                    }),
                };
            }
            if !*loose {
                end(t, p, *id);
            }
        }
        Step::Async { id, body } => {
            let (t1, id2, body) = (t.clone(), *id, body.clone());
            let p = evloop::spawn(async move {
                t1.log(format!("A{id2}"));
                for a in &body {
                    match a {
                        AStep::Await { id, src } => match mk_src(&t1, src).await {
                            Ok(v) => t1.log(format!("aw{id}:{v}")),
                            Err(e) => t1.log(format!("awc{id}:{}", show(&e))),
                        },
                        AStep::Step(s) => exec_one(&t1, s),
                    }
                }
                format!("a{id2}")
            });
            end(t, p, *id);
        }
        Step::Pool { id, body } => {
            let (t1, id, body) = (t.clone(), *id, body.clone());
            evloop::queue_work(
                || 0u8,
                move |_| {
                    t1.log(format!("P{id}"));
                    exec(&t1, &body);
                },
            );
        }
    }
}
