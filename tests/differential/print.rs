//! Repro printers: a program as a runnable `.js` file and as the
//! equivalent Rust (a `#[test]` body on evloop's public API), for an issue
//! or a pinning test.

use std::fmt::Write;

use super::model::{AStep, Clear, Comb, Link, Program, Ret, Src, Step, Via, SPIN_MS, SPIN_US};

fn ind(n: usize) -> String {
    "  ".repeat(n)
}

// ---- JavaScript ----

fn js_src(s: &Src) -> String {
    match s {
        Src::Value(id) => format!("Promise.resolve('v{id}')"),
        Src::Rejected(id) => format!("Promise.reject(new Error('e{id}'))"),
        Src::Deferred { id, via, reject } => {
            let settle = if *reject {
                format!("rej(new Error('e{id}'))")
            } else {
                format!("res('d{id}')")
            };
            let f = format!("() => {{ log('D{id}'); {settle}; }}");
            let sched = match via {
                Via::Tick => format!("process.nextTick({f})"),
                Via::Micro => format!("queueMicrotask({f})"),
                Via::Immediate => format!("setImmediate({f})"),
                Via::Timeout => format!("{{ setTimeout({f}, 1); spin(); }}"),
            };
            format!("new Promise((res, rej) => {sched})")
        }
        Src::Combine { kind, inputs } => {
            let ins: Vec<String> = inputs.iter().map(js_src).collect();
            let ins = ins.join(", ");
            match kind {
                Comb::All => format!("Promise.all([{ins}]).then((vs) => vs.join(','))"),
                Comb::AllSettled => format!("Promise.allSettled([{ins}]).then((rs) => rs.map((r) => r.status === 'fulfilled' ? 'f:' + r.value : 'r:' + show(r.reason)).join(','))"),
                Comb::Race => format!("Promise.race([{ins}])"),
                Comb::Any => format!("Promise.any([{ins}])"),
            }
        }
    }
}

fn js_ret(r: Ret, id: u32) -> String {
    match r {
        Ret::Value => format!("return 't{id}';"),
        Ret::Throw => format!("throw new Error('x{id}');"),
        Ret::Resolved => format!("return Promise.resolve('r{id}');"),
        Ret::Rejected => format!("return Promise.reject(new Error('e{id}'));"),
    }
}

fn js_steps(o: &mut String, v: &[Step], d: usize) {
    for s in v {
        js_step(o, s, d);
    }
}

fn js_step(o: &mut String, s: &Step, d: usize) {
    let i = ind(d);
    match s {
        Step::Log(id) => writeln!(o, "{i}log('L{id}');").unwrap(),
        Step::Timeout {
            id,
            delay,
            clear,
            body,
        } => {
            writeln!(o, "{i}{{").unwrap();
            writeln!(o, "{i}  const t{id} = setTimeout(() => {{").unwrap();
            writeln!(o, "{i}    log('T{id}');").unwrap();
            js_steps(o, body, d + 2);
            writeln!(o, "{i}  }}, {delay});").unwrap();
            match clear {
                Clear::Now => writeln!(o, "{i}  spin();\n{i}  clearTimeout(t{id});").unwrap(),
                Clear::No => writeln!(o, "{i}  spin();").unwrap(),
                Clear::Tick => writeln!(
                    o,
                    "{i}  spin();\n{i}  process.nextTick(() => {{ log('ct{id}'); clearTimeout(t{id}); }});"
                )
                .unwrap(),
                Clear::Immediate => writeln!(
                    o,
                    "{i}  spin();\n{i}  setImmediate(() => {{ log('ci{id}'); clearTimeout(t{id}); }});"
                )
                .unwrap(),
                Clear::Refresh => writeln!(
                    o,
                    "{i}  spin();\n{i}  setImmediate(() => {{ log('ri{id}'); t{id}.refresh(); spin(); }});"
                )
                .unwrap(),
            }
            writeln!(o, "{i}}}").unwrap();
        }
        Step::Interval { id, n, body } => {
            writeln!(o, "{i}{{").unwrap();
            writeln!(o, "{i}  let n = 0;").unwrap();
            writeln!(o, "{i}  const h = setInterval(() => {{").unwrap();
            writeln!(o, "{i}    n += 1;\n{i}    log('I{id}.' + n);").unwrap();
            if !body.is_empty() {
                writeln!(o, "{i}    if (n === 1) {{").unwrap();
                js_steps(o, body, d + 3);
                writeln!(o, "{i}    }}").unwrap();
            }
            writeln!(o, "{i}    if (n === {n}) clearInterval(h);\n{i}    spin();").unwrap();
            writeln!(o, "{i}  }}, 1);\n{i}  spin();\n{i}}}").unwrap();
        }
        Step::Immediate { id, clear, body } => {
            writeln!(o, "{i}{{").unwrap();
            writeln!(
                o,
                "{i}  const s{id} = setImmediate(() => {{\n{i}    log('S{id}');"
            )
            .unwrap();
            js_steps(o, body, d + 2);
            writeln!(o, "{i}  }});").unwrap();
            match clear {
                Clear::Now => writeln!(o, "{i}  clearImmediate(s{id});").unwrap(),
                Clear::Tick => writeln!(
                    o,
                    "{i}  process.nextTick(() => {{ log('cs{id}'); clearImmediate(s{id}); }});"
                )
                .unwrap(),
                _ => {}
            }
            writeln!(o, "{i}}}").unwrap();
        }
        Step::Tick { id, body } | Step::Micro { id, body } | Step::Pool { id, body } => {
            let (f, l, tail) = match s {
                Step::Tick { .. } => ("process.nextTick(", "N", ""),
                Step::Micro { .. } => ("queueMicrotask(", "M", ""),
                _ => ("fs.stat(__filename, ", "P", ""),
            };
            writeln!(o, "{i}{f}() => {{\n{i}  log('{l}{id}');").unwrap();
            js_steps(o, body, d + 1);
            writeln!(o, "{i}}}){tail};").unwrap();
        }
        Step::Throw(id) => writeln!(o, "{i}throw new Error('x{id}');").unwrap(),
        Step::Chain {
            id,
            src,
            links,
            loose,
        } => {
            writeln!(o, "{i}{}", js_src(src)).unwrap();
            for l in links {
                match l {
                    Link::Then { id, body, ret } => {
                        writeln!(o, "{i}  .then((v) => {{\n{i}    log('then{id}:' + v);").unwrap();
                        js_steps(o, body, d + 2);
                        writeln!(o, "{i}    {}\n{i}  }})", js_ret(*ret, *id)).unwrap();
                    }
                    Link::Catch { id, body, ret } => {
                        writeln!(
                            o,
                            "{i}  .catch((e) => {{\n{i}    log('catch{id}:' + show(e));"
                        )
                        .unwrap();
                        js_steps(o, body, d + 2);
                        writeln!(o, "{i}    {}\n{i}  }})", js_ret(*ret, *id)).unwrap();
                    }
                    Link::Finally { id, body, throws } => {
                        writeln!(o, "{i}  .finally(() => {{\n{i}    log('fin{id}');").unwrap();
                        js_steps(o, body, d + 2);
                        if *throws {
                            writeln!(o, "{i}    throw new Error('x{id}');").unwrap();
                        }
                        writeln!(o, "{i}  }})").unwrap();
                    }
                }
            }
            if *loose {
                writeln!(o, "{i};").unwrap();
            } else {
                writeln!(
                    o,
                    "{i}  .then((v) => log('end{id}:' + v), (e) => log('endc{id}:' + show(e)));"
                )
                .unwrap();
            }
        }
        Step::Async { id, body } => {
            writeln!(o, "{i}(async () => {{\n{i}  log('A{id}');").unwrap();
            for a in body {
                match a {
                    AStep::Step(s) => js_step(o, s, d + 1),
                    AStep::Await { id, src } => {
                        let e = match src {
                            Src::Value(v) => format!("'v{v}'"),
                            s => js_src(s),
                        };
                        writeln!(o, "{i}  try {{ const v = await {e}; log('aw{id}:' + v); }} catch (e) {{ log('awc{id}:' + show(e)); }}").unwrap();
                    }
                }
            }
            writeln!(o, "{i}  return 'a{id}';\n{i}}})().then((v) => log('end{id}:' + v), (e) => log('endc{id}:' + show(e)));").unwrap();
        }
    }
}

/// The program as a standalone Node script.
pub fn js(p: &Program) -> String {
    let mut o = String::new();
    writeln!(
        o,
        "'use strict';\nconst fs = require('fs');\nconst log = (s) => console.log(s);"
    )
    .unwrap();
    writeln!(o, "const show = (e) => (e && Array.isArray(e.errors) ? 'agg[' + e.errors.map(show).join(',') + ']' : e.message);").unwrap();
    writeln!(o, "const spin = () => {{ const end = process.hrtime.bigint() + {}n; while (process.hrtime.bigint() < end); }};", SPIN_US * 1000).unwrap();
    writeln!(
        o,
        "process.on('uncaughtException', (e) => log('uncaught ' + show(e)));"
    )
    .unwrap();
    writeln!(
        o,
        "process.on('unhandledRejection', (e) => log('unhandled ' + show(e)));"
    )
    .unwrap();
    js_steps(&mut o, &p.main, 0);
    let _ = SPIN_MS;
    o
}

// ---- Rust ----

fn rs_src(s: &Src) -> String {
    match s {
        Src::Value(id) => format!("Promise::resolve(\"v{id}\".to_string())"),
        Src::Rejected(id) => format!("Promise::<String>::reject(Rejection::msg(\"e{id}\"))"),
        Src::Deferred { id, via, reject } => {
            let settle = if *reject {
                format!("rej(Rejection::msg(\"e{id}\"))")
            } else {
                format!("res(\"d{id}\".to_string())")
            };
            let f = format!("{{ let l = l.clone(); move || {{ l.push(\"D{id}\"); {settle}; }} }}");
            let sched = match via {
                Via::Tick => format!("evloop::next_tick({f})"),
                Via::Micro => format!("evloop::queue_microtask({f})"),
                Via::Immediate => format!("{{ evloop::set_immediate({f}); }}"),
                Via::Timeout => format!("{{ evloop::set_timeout(ms(1), {f}); spin(); }}"),
            };
            format!("Promise::<String>::new({{ let l = l.clone(); move |res, rej| {sched} }})")
        }
        Src::Combine { kind, inputs } => {
            let ins: Vec<String> = inputs.iter().map(rs_src).collect();
            let ins = ins.join(", ");
            match kind {
                Comb::All => format!("Promise::all([{ins}]).then(|vs| vs.join(\",\"))"),
                Comb::AllSettled => format!("Promise::all_settled([{ins}]).then(|rs| rs.iter().map(|r| match r {{ Ok(v) => format!(\"f:{{v}}\"), Err(e) => format!(\"r:{{}}\", show(e)) }}).collect::<Vec<_>>().join(\",\"))"),
                Comb::Race => format!("Promise::race([{ins}])"),
                Comb::Any => format!("Promise::any([{ins}])"),
            }
        }
    }
}

fn rs_ret(r: Ret, id: u32) -> String {
    match r {
        Ret::Value => format!("Settlement::Fulfill(\"t{id}\".to_string())"),
        Ret::Throw => format!("throw(\"x{id}\")"),
        Ret::Resolved => format!("Settlement::Adopt(Promise::resolve(\"r{id}\".to_string()))"),
        Ret::Rejected => {
            format!("Settlement::Adopt(Promise::<String>::reject(Rejection::msg(\"e{id}\")))")
        }
    }
}

fn rs_steps(o: &mut String, v: &[Step], d: usize) {
    for s in v {
        rs_step(o, s, d);
    }
}

fn rs_step(o: &mut String, s: &Step, d: usize) {
    let i = ind(d);
    match s {
        Step::Log(id) => writeln!(o, "{i}l.push(\"L{id}\");").unwrap(),
        Step::Timeout {
            id,
            delay,
            clear,
            body,
        } => {
            let set = if *clear == Clear::Refresh {
                "set_timeout_mut"
            } else {
                "set_timeout"
            };
            writeln!(o, "{i}{{\n{i}  let t{id} = evloop::{set}(ms({delay}), {{ let l = l.clone(); move || {{\n{i}    l.push(\"T{id}\");").unwrap();
            rs_steps(o, body, d + 2);
            writeln!(o, "{i}  }} }});").unwrap();
            match clear {
                Clear::Now => writeln!(o, "{i}  spin();\n{i}  t{id}.clear();").unwrap(),
                Clear::No => writeln!(o, "{i}  spin();").unwrap(),
                Clear::Tick => writeln!(o, "{i}  spin();\n{i}  evloop::next_tick({{ let l = l.clone(); move || {{ l.push(\"ct{id}\"); t{id}.clear(); }} }});").unwrap(),
                Clear::Immediate => writeln!(o, "{i}  spin();\n{i}  evloop::set_immediate({{ let l = l.clone(); move || {{ l.push(\"ci{id}\"); t{id}.clear(); }} }});").unwrap(),
                Clear::Refresh => writeln!(o, "{i}  spin();\n{i}  evloop::set_immediate({{ let l = l.clone(); move || {{ l.push(\"ri{id}\"); t{id}.refresh(); spin(); }} }});").unwrap(),
            }
            writeln!(o, "{i}}}").unwrap();
        }
        Step::Interval { id, n, body } => {
            writeln!(o, "{i}{{\n{i}  let slot: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();\n{i}  let mut n = 0;").unwrap();
            writeln!(o, "{i}  let h = evloop::set_interval(ms(1), {{ let l = l.clone(); let slot = slot.clone(); move || {{\n{i}    n += 1;\n{i}    l.push(format!(\"I{id}.{{n}}\"));").unwrap();
            if !body.is_empty() {
                writeln!(o, "{i}    if n == 1 {{").unwrap();
                rs_steps(o, body, d + 3);
                writeln!(o, "{i}    }}").unwrap();
            }
            writeln!(o, "{i}    if n == {n} {{ slot.borrow_mut().take().unwrap().clear(); }}\n{i}    spin();").unwrap();
            writeln!(
                o,
                "{i}  }} }});\n{i}  *slot.borrow_mut() = Some(h);\n{i}  spin();\n{i}}}"
            )
            .unwrap();
        }
        Step::Immediate { id, clear, body } => {
            writeln!(o, "{i}{{\n{i}  let s{id} = evloop::set_immediate({{ let l = l.clone(); move || {{\n{i}    l.push(\"S{id}\");").unwrap();
            rs_steps(o, body, d + 2);
            writeln!(o, "{i}  }} }});").unwrap();
            match clear {
                Clear::Now => writeln!(o, "{i}  s{id}.clear();").unwrap(),
                Clear::Tick => writeln!(o, "{i}  evloop::next_tick({{ let l = l.clone(); move || {{ l.push(\"cs{id}\"); s{id}.clear(); }} }});").unwrap(),
                _ => writeln!(o, "{i}  let _ = s{id};").unwrap(),
            }
            writeln!(o, "{i}}}").unwrap();
        }
        Step::Tick { id, body } | Step::Micro { id, body } => {
            let (f, lab) = if matches!(s, Step::Tick { .. }) {
                ("evloop::next_tick", "N")
            } else {
                ("evloop::queue_microtask", "M")
            };
            writeln!(
                o,
                "{i}{f}({{ let l = l.clone(); move || {{\n{i}  l.push(\"{lab}{id}\");"
            )
            .unwrap();
            rs_steps(o, body, d + 1);
            writeln!(o, "{i}}} }});").unwrap();
        }
        Step::Pool { id, body } => {
            writeln!(o, "{i}evloop::queue_work(|| 0u8, {{ let l = l.clone(); move |_| {{\n{i}  l.push(\"P{id}\");").unwrap();
            rs_steps(o, body, d + 1);
            writeln!(o, "{i}}} }});").unwrap();
        }
        Step::Throw(id) => writeln!(o, "{i}panic!(\"x{id}\");").unwrap(),
        Step::Chain {
            id,
            src,
            links,
            loose,
        } => {
            writeln!(o, "{i}{}", rs_src(src)).unwrap();
            for l in links {
                match l {
                    Link::Then { id, body, ret } => {
                        writeln!(o, "{i}  .and_then({{ let l = l.clone(); move |v| {{\n{i}    l.push(format!(\"then{id}:{{v}}\"));").unwrap();
                        rs_steps(o, body, d + 2);
                        writeln!(o, "{i}    {}\n{i}  }} }})", rs_ret(*ret, *id)).unwrap();
                    }
                    Link::Catch { id, body, ret } => {
                        writeln!(o, "{i}  .or_else({{ let l = l.clone(); move |e| {{\n{i}    l.push(format!(\"catch{id}:{{}}\", show(&e)));").unwrap();
                        rs_steps(o, body, d + 2);
                        writeln!(o, "{i}    {}\n{i}  }} }})", rs_ret(*ret, *id)).unwrap();
                    }
                    Link::Finally { id, body, throws } => {
                        writeln!(o, "{i}  .finally({{ let l = l.clone(); move || {{\n{i}    l.push(\"fin{id}\");").unwrap();
                        rs_steps(o, body, d + 2);
                        if *throws {
                            writeln!(o, "{i}    panic!(\"x{id}\");").unwrap();
                        }
                        writeln!(o, "{i}  }} }})").unwrap();
                    }
                }
            }
            if *loose {
                writeln!(o, "{i};").unwrap();
            } else {
                writeln!(o, "{i}  .then_or_else({{ let l = l.clone(); move |v| {{ l.push(format!(\"end{id}:{{v}}\")); Settlement::Fulfill(()) }} }}, {{ let l = l.clone(); move |e| {{ l.push(format!(\"endc{id}:{{}}\", show(&e))); Settlement::Fulfill(()) }} }});").unwrap();
            }
        }
        Step::Async { id, body } => {
            writeln!(
                o,
                "{i}evloop::spawn({{ let l = l.clone(); async move {{\n{i}  l.push(\"A{id}\");"
            )
            .unwrap();
            for a in body {
                match a {
                    AStep::Step(s) => rs_step(o, s, d + 1),
                    AStep::Await { id, src } => writeln!(o, "{i}  match {}.await {{ Ok(v) => l.push(format!(\"aw{id}:{{v}}\")), Err(e) => l.push(format!(\"awc{id}:{{}}\", show(&e))) }}", rs_src(src)).unwrap(),
                }
            }
            writeln!(o, "{i}  \"a{id}\".to_string()\n{i}}} }})").unwrap();
            writeln!(o, "{i}.then_or_else({{ let l = l.clone(); move |v| {{ l.push(format!(\"end{id}:{{v}}\")); Settlement::Fulfill(()) }} }}, {{ let l = l.clone(); move |e| {{ l.push(format!(\"endc{id}:{{}}\", show(&e))); Settlement::Fulfill(()) }} }});").unwrap();
        }
    }
}

/// The program as the body of a Rust test (with `tests/support`'s `Log`,
/// `ms` and `spin(ms(..))`-like helpers named in its header).
pub fn rust(p: &Program) -> String {
    let mut o = String::new();
    writeln!(o, "// use evloop::promise::{{Promise, Rejection, Settlement}}; use std::{{cell::RefCell, rc::Rc}};").unwrap();
    writeln!(o, "// fn show(r: &Rejection) -> String {{ match r.errors() {{ Some(es) => format!(\"agg[{{}}]\", es.iter().map(show).collect::<Vec<_>>().join(\",\")), None => r.message() }} }}").unwrap();
    writeln!(
        o,
        "// fn spin() {{ support::spin(std::time::Duration::from_micros({SPIN_US})) }}"
    )
    .unwrap();
    writeln!(
        o,
        "// fn throw(msg: &str) -> Settlement<String> {{ panic!(\"{{msg}}\") }} // a JavaScript throw"
    )
    .unwrap();
    writeln!(
        o,
        "let log = Log::new();\nlet el = evloop::EventLoop::new().unwrap();"
    )
    .unwrap();
    writeln!(o, "{{ let l = log.clone(); el.on_uncaught_exception(move |e, _| l.push(format!(\"uncaught {{}}\", match &e {{ evloop::Error::Panicked(p) => p.message().to_string(), e => e.to_string() }}))); }}").unwrap();
    writeln!(o, "{{ let l = log.clone(); el.on_unhandled_rejection(move |r: &Rejection| l.push(format!(\"unhandled {{}}\", show(r)))); }}").unwrap();
    writeln!(o, "let l = log.clone();\nel.run_main(move || {{").unwrap();
    rs_steps(&mut o, &p.main, 1);
    writeln!(
        o,
        "}}).unwrap();\nel.run().unwrap();\nprintln!(\"{{:#?}}\", log.take());"
    )
    .unwrap();
    o
}
