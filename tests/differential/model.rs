//! The program model: a small tree of event-loop steps over the vocabulary
//! evloop shares with Node, its seeded generator, and its JSON form (what
//! `interp.js` reads).
//!
//! Every callback prints a labelled line first (`T7` a timeout, `S3` an
//! immediate, `N2` a tick, `M4` a microtask, `I5.2` an interval's second
//! tick, `P1` a pool job, `then9:v3` a `then` with its value...), so two
//! traces are equal only if the same callbacks ran in the same order with
//! the same values.
//!
//! Determinism in Node (the generator's rules):
//! - every timer has a delay of 0 or 1 ms (Node makes 0 into 1): one
//!   duration list, so timers run in creation order;
//! - right after a timer is created (and at the end of every interval
//!   tick: Node reads libuv's clock as a tick starts, and may arm its next
//!   wake-up from it), the callback busy-waits [`SPIN_MS`], so the timer is
//!   always due at the next timers phase: a timer against an immediate is
//!   then decided by the loop's phases, not by latency. Also after a timer
//!   that is cleared at once: Node's `setTimeout` refreshes libuv's clock,
//!   from which Node arms its next wake-up (without the spin, a timer set
//!   just before may miss the next timers phase);
//! - a pool job (`fs.stat` in Node, `queue_work` here) is only the last
//!   step of a main script that queued nothing else but ticks and
//!   microtasks: its completion races with nothing; its callback is an I/O
//!   callback, from which anything may be scheduled;
//! - every promise chain ends with a two-handler `then`, every `await` sits
//!   in a `try`, so no rejection goes unhandled;
//! - no throw in the main script, in an immediate (README: Known,
//!   deliberate differences), in an interval, in a tick or a microtask
//!   (Node runs the ticks and microtasks a throwing one leaves behind at
//!   its next callback, which may be a pool job's: latency decides), or in
//!   a promise callback's body (a `then` that throws is [`Ret::Throw`]);
//! - no timer set from a tick, a microtask, a promise callback or an async
//!   function (README: Known, deliberate differences: Node runs a timer
//!   that came due during the timers phase in that same phase when one is
//!   set from the phase's last microtasks).

use serde_json::{json, Value};

/// Busy-wait after creating a timer, in microseconds (see the module doc).
pub const SPIN_US: u64 = 1_500;
/// [`SPIN_US`] in milliseconds, for the printed sources.
pub const SPIN_MS: f64 = SPIN_US as f64 / 1000.0;

/// A small seeded PRNG (SplitMix64): the same seed, the same programs.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// 0..n
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// true with probability p/100
    pub fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// How a timer is cleared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clear {
    No,
    /// Right after it is set.
    Now,
    /// From a `next_tick` queued right after it is set (prints `ct<id>`).
    Tick,
    /// From an immediate queued right after it is set (prints `ci<id>`).
    Immediate,
    /// Not cleared: refreshed (`timeout.refresh()`, evloop's
    /// `set_timeout_mut`) from an immediate queued right after it is set
    /// (prints `ri<id>`): before it fired, it starts again; after, it runs
    /// again.
    Refresh,
}

/// What a deferred promise settles from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Via {
    Tick,
    Micro,
    Immediate,
    Timeout,
}

/// A promise combinator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Comb {
    All,
    AllSettled,
    Race,
    Any,
}

/// What a `then`/`catch` callback ends with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ret {
    /// Returns `t<id>`.
    Value,
    /// Throws (panics) `x<id>`.
    Throw,
    /// Returns `Promise.resolve('r<id>')` (adoption: two extra hops).
    Resolved,
    /// Returns `Promise.reject(new Error('e<id>'))`.
    Rejected,
}

/// Where a promise comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Src {
    /// `Promise.resolve('v<id>')` (awaited: the bare value `'v<id>'`).
    Value(u32),
    /// `Promise.reject(new Error('e<id>'))`.
    Rejected(u32),
    /// Pending; settled later from `via`, which prints `D<id>` and fulfils
    /// with `d<id>` or rejects with `e<id>`.
    Deferred { id: u32, via: Via, reject: bool },
    /// A combinator over the inputs (`all` and `allSettled` joined to one
    /// string by a `then`).
    Combine { kind: Comb, inputs: Vec<Src> },
}

/// One link of a promise chain.
#[derive(Clone, Debug, PartialEq)]
pub enum Link {
    Then {
        id: u32,
        body: Vec<Step>,
        ret: Ret,
    },
    Catch {
        id: u32,
        body: Vec<Step>,
        ret: Ret,
    },
    Finally {
        id: u32,
        body: Vec<Step>,
        throws: bool,
    },
}

/// One step of a program, a callback's body or an async function's body.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Prints `L<id>`.
    Log(u32),
    Timeout {
        id: u32,
        delay: u8,
        clear: Clear,
        body: Vec<Step>,
    },
    /// `setInterval(.., 1)` cleared by its own `n`-th tick; the body runs on
    /// the first tick.
    Interval {
        id: u32,
        n: u8,
        body: Vec<Step>,
    },
    /// `clear`: `Clear::No`, `Now` or `Tick` (prints `cs<id>`).
    Immediate {
        id: u32,
        clear: Clear,
        body: Vec<Step>,
    },
    Tick {
        id: u32,
        body: Vec<Step>,
    },
    Micro {
        id: u32,
        body: Vec<Step>,
    },
    /// Throws (panics) `x<id>`: the last step of a body.
    Throw(u32),
    /// `src.link1.link2...` ended by `.then(v => 'end<id>:v', e =>
    /// 'endc<id>:e')`; a `loose` chain has no end, so that its rejection
    /// goes unhandled (both sides print `unhandled <reason>` from their
    /// unhandled-rejection hook).
    Chain {
        id: u32,
        src: Src,
        links: Vec<Link>,
        loose: bool,
    },
    /// An async function, called at once, its promise ended as a chain's.
    Async {
        id: u32,
        body: Vec<AStep>,
    },
    /// A pool job whose callback runs the body.
    Pool {
        id: u32,
        body: Vec<Step>,
    },
}

/// A step of an async function's body.
#[derive(Clone, Debug, PartialEq)]
pub enum AStep {
    Step(Step),
    /// `try { v = await src; 'aw<id>:v' } catch (e) { 'awc<id>:e' }`.
    Await {
        id: u32,
        src: Src,
    },
}

/// A program: the main script.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub main: Vec<Step>,
}

/// What the generator may put in a body.
#[derive(Clone, Copy)]
struct Cx {
    depth: u32,
    /// Timers, immediates, intervals, pool jobs and their deferrals.
    macros: bool,
    /// Timers and intervals (not from ticks, microtasks, promise callbacks
    /// or async functions: see the module doc).
    timers: bool,
    throws: bool,
}

/// The generator.
pub struct Gen {
    /// Whether this program may set timers (some programs have none, so
    /// that ticks, microtasks and promises get deep trees of their own).
    timers: bool,
    rng: Rng,
    next_id: u32,
    budget: i32,
}

impl Gen {
    pub fn new(seed: u64) -> Self {
        Gen {
            timers: true,
            rng: Rng::new(seed),
            next_id: 0,
            budget: 0,
        }
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// The next program: see [`keepalive`] for the programs left out.
    pub fn program(&mut self) -> Program {
        loop {
            self.timers = self.rng.pct(85);
            let p = self.program_any();
            let racy_keepalive = keepalive(&p) && throws_in_microtask(&p.main);
            debug_assert!(!timer_in_micro(&p.main, false), "{}", to_json(&p));
            if !racy_keepalive {
                return p;
            }
        }
    }

    fn program_any(&mut self) -> Program {
        self.next_id = 0;
        self.budget = 4 + self.rng.below(14) as i32;
        if self.rng.pct(15) {
            // The pool stage: microtask-level work, then a pool job whose
            // callback is an I/O callback.
            let cx = Cx {
                depth: 0,
                macros: false,
                timers: false,
                throws: false,
            };
            let mut main = self.body(cx, 3);
            let id = self.id();
            let body = self.body(
                Cx {
                    depth: 1,
                    macros: true,
                    timers: self.timers,
                    throws: true,
                },
                4,
            );
            main.push(Step::Pool { id, body });
            return Program { main };
        }
        let cx = Cx {
            depth: 0,
            macros: true,
            timers: self.timers,
            throws: false,
        };
        Program {
            main: self.body(cx, 5),
        }
    }

    fn body(&mut self, cx: Cx, max: u64) -> Vec<Step> {
        let mut v = Vec::new();
        if cx.depth > 3 || self.budget <= 0 {
            if self.rng.pct(50) {
                v.push(Step::Log(self.id()));
            }
            return v;
        }
        let n = self.rng.below(max + 1);
        for _ in 0..n {
            if self.budget <= 0 {
                break;
            }
            self.budget -= 1;
            v.push(self.step(cx));
        }
        if cx.throws && self.rng.pct(12) {
            v.push(Step::Throw(self.id()));
        }
        v
    }

    fn inner(cx: Cx, macros: bool, throws: bool) -> Cx {
        Cx {
            depth: cx.depth + 1,
            macros: macros && cx.macros,
            timers: cx.timers,
            throws,
        }
    }

    /// The body of a tick, a microtask, a promise callback or an async
    /// function: no timers.
    fn micro(cx: Cx, throws: bool) -> Cx {
        Cx {
            timers: false,
            ..Self::inner(cx, true, throws)
        }
    }

    /// The body of a timer, an immediate or an interval: timers again,
    /// where the program has them.
    fn macro_(cx: Cx, throws: bool, top_timers: bool) -> Cx {
        Cx {
            timers: top_timers,
            ..Self::inner(cx, true, throws)
        }
    }

    fn step(&mut self, cx: Cx) -> Step {
        loop {
            let r = self.rng.below(100);
            let id = self.id();
            return match r {
                0..=9 => Step::Log(id),
                10..=21 if cx.timers => {
                    let clear = match self.rng.below(10) {
                        0 => Clear::Now,
                        1 => Clear::Tick,
                        2 => Clear::Immediate,
                        3 => Clear::Refresh,
                        _ => Clear::No,
                    };
                    let delay = self.rng.below(2) as u8;
                    let body = self.body(Self::macro_(cx, true, self.timers), 3);
                    Step::Timeout {
                        id,
                        delay,
                        clear,
                        body,
                    }
                }
                22..=25 if cx.timers => {
                    let n = 1 + self.rng.below(3) as u8;
                    let body = self.body(Self::macro_(cx, false, self.timers), 2);
                    Step::Interval { id, n, body }
                }
                26..=37 if cx.macros => {
                    let clear = match self.rng.below(10) {
                        0 => Clear::Now,
                        1 => Clear::Tick,
                        _ => Clear::No,
                    };
                    let body = self.body(Self::macro_(cx, false, self.timers), 3);
                    Step::Immediate { id, clear, body }
                }
                38..=49 => {
                    let body = self.body(Self::micro(cx, false), 3);
                    Step::Tick { id, body }
                }
                50..=61 => {
                    let body = self.body(Self::micro(cx, false), 3);
                    Step::Micro { id, body }
                }
                62..=83 => {
                    let src = self.src(Self::micro(cx, false), 0);
                    let n = self.rng.below(4);
                    let links = (0..n).map(|_| self.link(cx)).collect();
                    let loose = self.rng.pct(8);
                    Step::Chain {
                        id,
                        src,
                        links,
                        loose,
                    }
                }
                84..=99 => {
                    let n = 1 + self.rng.below(4);
                    let mut body = Vec::new();
                    for _ in 0..n {
                        if self.rng.pct(55) {
                            let aid = self.id();
                            body.push(AStep::Await {
                                id: aid,
                                src: self.src(Self::micro(cx, false), 0),
                            });
                        } else if self.budget > 0 {
                            self.budget -= 1;
                            body.push(AStep::Step(self.step(Self::micro(cx, false))));
                        }
                    }
                    if self.rng.pct(10) {
                        body.push(AStep::Step(Step::Throw(self.id())));
                    }
                    Step::Async { id, body }
                }
                _ => continue,
            };
        }
    }

    fn src(&mut self, cx: Cx, level: u32) -> Src {
        let r = self.rng.below(100);
        let id = self.id();
        match r {
            0..=34 => Src::Value(id),
            35..=54 => Src::Rejected(id),
            55..=79 => {
                let kinds = if cx.timers {
                    4
                } else if cx.macros {
                    3
                } else {
                    2
                };
                let via = match self.rng.below(kinds) {
                    0 => Via::Tick,
                    1 => Via::Micro,
                    2 => Via::Immediate,
                    _ => Via::Timeout,
                };
                Src::Deferred {
                    id,
                    via,
                    reject: self.rng.pct(30),
                }
            }
            _ if level < 2 => {
                let kind = match self.rng.below(4) {
                    0 => Comb::All,
                    1 => Comb::AllSettled,
                    2 => Comb::Race,
                    _ => Comb::Any,
                };
                let n = 1 + self.rng.below(3);
                let inputs = (0..n).map(|_| self.src(cx, level + 1)).collect();
                Src::Combine { kind, inputs }
            }
            _ => Src::Value(id),
        }
    }

    fn ret(&mut self) -> Ret {
        match self.rng.below(10) {
            0..=4 => Ret::Value,
            5..=6 => Ret::Throw,
            7..=8 => Ret::Resolved,
            _ => Ret::Rejected,
        }
    }

    fn link(&mut self, cx: Cx) -> Link {
        let id = self.id();
        let inner = Self::micro(cx, false);
        let body = if self.rng.pct(30) && self.budget > 0 {
            self.budget -= 1;
            vec![self.step(inner)]
        } else {
            Vec::new()
        };
        match self.rng.below(10) {
            0..=4 => Link::Then {
                id,
                body,
                ret: self.ret(),
            },
            5..=7 => Link::Catch {
                id,
                body,
                ret: self.ret(),
            },
            _ => Link::Finally {
                id,
                body,
                throws: self.rng.pct(20),
            },
        }
    }
}

/// Whether `interp.js` must keep the loop alive after this program's main
/// script with a no-op immediate, so that `'beforeExit'` comes again (it
/// does not when the main script leaves the loop empty): when the main
/// script itself holds no timer, immediate, interval or pool job that
/// keeps the loop alive.
///
/// That immediate is a callback, and Node runs the ticks and microtasks
/// left behind by a throwing tick or microtask at the next callback: so the
/// generator leaves out programs that need it and throw in a tick or a
/// microtask (the no-op would decide where those run).
pub fn keepalive(p: &Program) -> bool {
    !p.main.iter().any(|s| {
        matches!(
            s,
            Step::Timeout {
                clear: Clear::No | Clear::Immediate | Clear::Refresh,
                ..
            } | Step::Interval { .. }
                | Step::Immediate {
                    clear: Clear::No,
                    ..
                }
                | Step::Pool { .. }
        )
    })
}

/// Whether a timer is set from a tick, a microtask, a promise callback or
/// an async function (the generator's rule; the shrinker keeps it).
pub fn timer_in_micro(v: &[Step], in_micro: bool) -> bool {
    fn src_timer(s: &Src) -> bool {
        match s {
            Src::Deferred { via, .. } => *via == Via::Timeout,
            Src::Combine { inputs, .. } => inputs.iter().any(src_timer),
            _ => false,
        }
    }
    v.iter().any(|s| match s {
        Step::Timeout { body, .. } | Step::Interval { body, .. } => {
            in_micro || timer_in_micro(body, false)
        }
        Step::Immediate { body, .. } | Step::Pool { body, .. } => timer_in_micro(body, false),
        Step::Tick { body, .. } | Step::Micro { body, .. } => timer_in_micro(body, true),
        Step::Chain { src, links, .. } => {
            src_timer(src)
                || links.iter().any(|l| match l {
                    Link::Then { body, .. }
                    | Link::Catch { body, .. }
                    | Link::Finally { body, .. } => timer_in_micro(body, true),
                })
        }
        Step::Async { body, .. } => body.iter().any(|a| match a {
            AStep::Step(s) => timer_in_micro(std::slice::from_ref(s), true),
            AStep::Await { src, .. } => src_timer(src),
        }),
        _ => false,
    })
}

/// Whether a tick or a microtask (or a `then` callback) anywhere throws.
pub fn throws_in_microtask(v: &[Step]) -> bool {
    fn any_throw(v: &[Step]) -> bool {
        v.iter().any(|s| matches!(s, Step::Throw(_)))
    }
    v.iter().any(|s| match s {
        Step::Tick { body, .. } | Step::Micro { body, .. } => {
            any_throw(body) || throws_in_microtask(body)
        }
        Step::Timeout { body, .. }
        | Step::Interval { body, .. }
        | Step::Immediate { body, .. }
        | Step::Pool { body, .. } => throws_in_microtask(body),
        Step::Chain { links, .. } => links.iter().any(|l| match l {
            Link::Then { body, .. } | Link::Catch { body, .. } | Link::Finally { body, .. } => {
                throws_in_microtask(body)
            }
        }),
        Step::Async { body, .. } => body.iter().any(|a| match a {
            AStep::Step(s) => throws_in_microtask(std::slice::from_ref(s)),
            AStep::Await { .. } => false,
        }),
        _ => false,
    })
}

// ---- JSON (what interp.js reads) ----

fn steps_json(v: &[Step]) -> Value {
    Value::Array(v.iter().map(step_json).collect())
}

fn clear_str(c: Clear) -> &'static str {
    match c {
        Clear::No => "no",
        Clear::Now => "now",
        Clear::Tick => "tick",
        Clear::Immediate => "imm",
        Clear::Refresh => "refresh",
    }
}

fn via_str(v: Via) -> &'static str {
    match v {
        Via::Tick => "tick",
        Via::Micro => "micro",
        Via::Immediate => "imm",
        Via::Timeout => "timeout",
    }
}

fn comb_str(c: Comb) -> &'static str {
    match c {
        Comb::All => "all",
        Comb::AllSettled => "allSettled",
        Comb::Race => "race",
        Comb::Any => "any",
    }
}

fn ret_str(r: Ret) -> &'static str {
    match r {
        Ret::Value => "value",
        Ret::Throw => "throw",
        Ret::Resolved => "resolved",
        Ret::Rejected => "rejected",
    }
}

fn src_json(s: &Src) -> Value {
    match s {
        Src::Value(id) => json!({"k": "val", "id": id}),
        Src::Rejected(id) => json!({"k": "rej", "id": id}),
        Src::Deferred { id, via, reject } => {
            json!({"k": "def", "id": id, "via": via_str(*via), "reject": reject})
        }
        Src::Combine { kind, inputs } => json!({
            "k": "comb", "kind": comb_str(*kind),
            "inputs": Value::Array(inputs.iter().map(src_json).collect()),
        }),
    }
}

fn step_json(s: &Step) -> Value {
    match s {
        Step::Log(id) => json!({"k": "log", "id": id}),
        Step::Timeout {
            id,
            delay,
            clear,
            body,
        } => {
            json!({"k": "timeout", "id": id, "delay": delay, "clear": clear_str(*clear), "body": steps_json(body)})
        }
        Step::Interval { id, n, body } => {
            json!({"k": "interval", "id": id, "n": n, "body": steps_json(body)})
        }
        Step::Immediate { id, clear, body } => {
            json!({"k": "imm", "id": id, "clear": clear_str(*clear), "body": steps_json(body)})
        }
        Step::Tick { id, body } => json!({"k": "tick", "id": id, "body": steps_json(body)}),
        Step::Micro { id, body } => json!({"k": "micro", "id": id, "body": steps_json(body)}),
        Step::Throw(id) => json!({"k": "throw", "id": id}),
        Step::Chain {
            id,
            src,
            links,
            loose,
        } => json!({
            "k": "chain", "id": id, "src": src_json(src), "loose": loose,
            "links": Value::Array(links.iter().map(|l| match l {
                Link::Then { id, body, ret } => json!({"k": "then", "id": id, "body": steps_json(body), "ret": ret_str(*ret)}),
                Link::Catch { id, body, ret } => json!({"k": "catch", "id": id, "body": steps_json(body), "ret": ret_str(*ret)}),
                Link::Finally { id, body, throws } => json!({"k": "finally", "id": id, "body": steps_json(body), "throws": throws}),
            }).collect()),
        }),
        Step::Async { id, body } => json!({
            "k": "async", "id": id,
            "body": Value::Array(body.iter().map(|a| match a {
                AStep::Step(s) => step_json(s),
                AStep::Await { id, src } => json!({"k": "await", "id": id, "src": src_json(src)}),
            }).collect()),
        }),
        Step::Pool { id, body } => json!({"k": "pool", "id": id, "body": steps_json(body)}),
    }
}

/// The program as one line of JSON.
pub fn to_json(p: &Program) -> String {
    json!({"main": steps_json(&p.main), "keepalive": keepalive(p)}).to_string()
}
