//! Shrinking: greedy delta debugging on the step tree. Each round builds
//! every one-edit-smaller program (a step removed, a callback replaced by
//! its body, a link or an input removed, a source or a clear made
//! simpler), runs them all in one batch on both sides, and keeps the first
//! that still differs, until none does.

use super::model::{
    throws_in_microtask, timer_in_micro, AStep, Clear, Link, Program, Ret, Src, Step,
};

fn body_of(s: &Step) -> Option<&Vec<Step>> {
    match s {
        Step::Timeout { body, .. }
        | Step::Interval { body, .. }
        | Step::Immediate { body, .. }
        | Step::Tick { body, .. }
        | Step::Micro { body, .. }
        | Step::Pool { body, .. } => Some(body),
        _ => None,
    }
}

fn body_mut(s: &mut Step) -> Option<&mut Vec<Step>> {
    match s {
        Step::Timeout { body, .. }
        | Step::Interval { body, .. }
        | Step::Immediate { body, .. }
        | Step::Tick { body, .. }
        | Step::Micro { body, .. }
        | Step::Pool { body, .. } => Some(body),
        _ => None,
    }
}

fn src_vars(s: &Src) -> Vec<Src> {
    let mut out = Vec::new();
    match s {
        Src::Value(_) => {}
        Src::Rejected(id) => out.push(Src::Value(*id)),
        Src::Deferred { id, via, reject } => {
            out.push(Src::Value(*id));
            if *reject {
                out.push(Src::Rejected(*id));
                out.push(Src::Deferred {
                    id: *id,
                    via: *via,
                    reject: false,
                });
            }
        }
        Src::Combine { kind, inputs } => {
            out.extend(inputs.iter().cloned());
            for i in 0..inputs.len() {
                if inputs.len() > 1 {
                    let mut v = inputs.clone();
                    v.remove(i);
                    out.push(Src::Combine {
                        kind: *kind,
                        inputs: v,
                    });
                }
                for x in src_vars(&inputs[i]) {
                    let mut v = inputs.clone();
                    v[i] = x;
                    out.push(Src::Combine {
                        kind: *kind,
                        inputs: v,
                    });
                }
            }
        }
    }
    out
}

fn step_vars(s: &Step) -> Vec<Step> {
    let mut out = Vec::new();
    if let Some(body) = body_of(s) {
        for b in steps_vars(body) {
            let mut c = s.clone();
            *body_mut(&mut c).unwrap() = b;
            out.push(c);
        }
    }
    match s {
        Step::Timeout { clear, .. } if *clear != Clear::No => {
            let mut c = s.clone();
            if let Step::Timeout { clear, .. } = &mut c {
                *clear = Clear::No;
            }
            out.push(c);
        }
        Step::Immediate { clear, .. } if *clear != Clear::No => {
            let mut c = s.clone();
            if let Step::Immediate { clear, .. } = &mut c {
                *clear = Clear::No;
            }
            out.push(c);
        }
        Step::Interval { n, .. } if *n > 1 => {
            let mut c = s.clone();
            if let Step::Interval { n, .. } = &mut c {
                *n -= 1;
            }
            out.push(c);
        }
        Step::Chain {
            id,
            src,
            links,
            loose,
        } => {
            if *loose {
                out.push(Step::Chain {
                    id: *id,
                    src: src.clone(),
                    links: links.clone(),
                    loose: false,
                });
            }
            for x in src_vars(src) {
                out.push(Step::Chain {
                    id: *id,
                    src: x,
                    links: links.clone(),
                    loose: *loose,
                });
            }
            for i in 0..links.len() {
                let mut v = links.clone();
                v.remove(i);
                out.push(Step::Chain {
                    id: *id,
                    src: src.clone(),
                    links: v,
                    loose: *loose,
                });
                let (b, simpler) = match &links[i] {
                    Link::Then { body, ret, .. } | Link::Catch { body, ret, .. } => {
                        (body, *ret != Ret::Value)
                    }
                    Link::Finally { body, throws, .. } => (body, *throws),
                };
                let mut edits: Vec<Link> = steps_vars(b)
                    .into_iter()
                    .map(|nb| {
                        let mut l = links[i].clone();
                        match &mut l {
                            Link::Then { body, .. }
                            | Link::Catch { body, .. }
                            | Link::Finally { body, .. } => *body = nb,
                        }
                        l
                    })
                    .collect();
                if simpler {
                    let mut l = links[i].clone();
                    match &mut l {
                        Link::Then { ret, .. } | Link::Catch { ret, .. } => *ret = Ret::Value,
                        Link::Finally { throws, .. } => *throws = false,
                    }
                    edits.push(l);
                }
                for l in edits {
                    let mut v = links.clone();
                    v[i] = l;
                    out.push(Step::Chain {
                        id: *id,
                        src: src.clone(),
                        links: v,
                        loose: *loose,
                    });
                }
            }
        }
        Step::Async { id, body } => {
            for i in 0..body.len() {
                let mut v = body.clone();
                v.remove(i);
                out.push(Step::Async { id: *id, body: v });
                let edits: Vec<AStep> = match &body[i] {
                    AStep::Step(s) => step_vars(s).into_iter().map(AStep::Step).collect(),
                    AStep::Await { id, src } => src_vars(src)
                        .into_iter()
                        .map(|x| AStep::Await { id: *id, src: x })
                        .collect(),
                };
                for a in edits {
                    let mut v = body.clone();
                    v[i] = a;
                    out.push(Step::Async { id: *id, body: v });
                }
            }
        }
        _ => {}
    }
    out
}

fn steps_vars(v: &[Step]) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    for i in 0..v.len() {
        let mut c = v.to_vec();
        c.remove(i);
        out.push(c);
        if let Some(body) = body_of(&v[i]) {
            let mut c = v.to_vec();
            c.splice(i..=i, body.iter().cloned());
            out.push(c);
        }
        for s in step_vars(&v[i]) {
            let mut c = v.to_vec();
            c[i] = s;
            out.push(c);
        }
    }
    out
}

fn throw_last(v: &[Step]) -> bool {
    v.iter().enumerate().all(|(i, s)| {
        (!matches!(s, Step::Throw(_)) || i + 1 == v.len())
            && body_of(s).map_or(true, |b| throw_last(b))
    })
}

/// Whether a candidate keeps the generator's rules that matter for
/// determinism and sense: no throw in the main script, a throw only last,
/// a pool job only as the main script's last step.
fn valid(p: &Program) -> bool {
    let pool_ok = p
        .main
        .iter()
        .enumerate()
        .all(|(i, s)| !matches!(s, Step::Pool { .. }) || i + 1 == p.main.len());
    let has_pool = matches!(p.main.last(), Some(Step::Pool { .. }));
    let macros_in_main = p.main.iter().any(|s| {
        matches!(
            s,
            Step::Timeout { .. } | Step::Interval { .. } | Step::Immediate { .. }
        )
    });
    let throw_in_main = p.main.iter().any(|s| matches!(s, Step::Throw(_)));
    let pool_stage_ok = !(has_pool && macros_in_main);
    let no_micro_throw = !throws_in_microtask(&p.main);
    let no_micro_timer = !timer_in_micro(&p.main, false);
    !throw_in_main
        && throw_last(&p.main)
        && pool_ok
        && pool_stage_ok
        && no_micro_throw
        && no_micro_timer
}

/// Shrinks `p`; `fails` says, for each candidate of a batch, whether it
/// still differs.
pub fn shrink(p: &Program, mut fails: impl FnMut(&[Program]) -> Vec<bool>) -> Program {
    let mut cur = p.clone();
    for _round in 0..200 {
        let cands: Vec<Program> = steps_vars(&cur.main)
            .into_iter()
            .map(|main| Program { main })
            .filter(valid)
            .collect();
        if cands.is_empty() {
            break;
        }
        let verdicts = fails(&cands);
        match verdicts.iter().position(|&b| b) {
            Some(i) => cur = cands[i].clone(),
            None => break,
        }
    }
    cur
}
