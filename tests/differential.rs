//! Differential testing against Node (issue 22): random event-loop
//! programs, run by evloop (`differential/interp.rs`, one `EventLoop` per
//! program, in this process) and by `node` (`differential/interp.js`, one
//! process per batch of programs), must print the same trace. The model,
//! its generator and what it leaves out (and why) are in
//! `differential/model.rs`; README's "Known, deliberate differences"
//! names the differences evloop keeps.
//!
//! - `cargo test --test differential`: the fixed seed, 300 programs, a few
//!   seconds; each batch also runs twice in node, which must agree with
//!   itself.
//! - `DIFF_SEED=<n> DIFF_COUNT=<n>`: any seed and count, e.g.
//!   `DIFF_SEED=2026 DIFF_COUNT=100000 cargo test --release --test
//!   differential random_programs -- --nocapture` before a release (about
//!   5 minutes on 2 cores); `DIFF_BATCH` programs per node process (2000).
//! - `DIFF_SEED=<n> DIFF_PRINT=<k> cargo test --test differential print_a
//!   -- --nocapture`: program k as JSON, `.js` and Rust.
//! - `NODE=/path/to/node`: another node (20 or later).
//!
//! A difference is shrunk to a minimal program (`differential/shrink.rs`)
//! and printed as a `.js` file and the equivalent Rust
//! (`differential/print.rs`). Without node 20 or later the test says so on
//! stderr and passes: `.ci/run` installs it.

#[path = "differential/interp.rs"]
mod interp;
#[path = "differential/model.rs"]
mod model;
#[path = "differential/print.rs"]
mod print;
#[path = "differential/shrink.rs"]
mod shrink;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use model::{Gen, Program};

/// The seed `cargo test` runs.
const FIXED_SEED: u64 = 22;
/// How many programs `cargo test` runs.
const FIXED_COUNT: usize = 300;

/// `node`'s path and major version, if it is 20 or later.
fn node() -> Option<(String, String)> {
    let bin = std::env::var("NODE").unwrap_or_else(|_| "node".to_string());
    let out = Command::new(&bin).arg("--version").output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major: u32 = v.trim_start_matches('v').split('.').next()?.parse().ok()?;
    if major < 20 {
        eprintln!("differential: {bin} is {v}, older than 20");
        return None;
    }
    Some((bin, v))
}

fn interp_js() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/differential/interp.js")
}

/// Runs a batch in one `node` process; each program's trace.
fn run_node(bin: &str, progs: &[Program]) -> Vec<Vec<String>> {
    let dir = std::env::temp_dir();
    let out = dir.join(format!(
        "evloop-diff-{}-{:?}.txt",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut child = Command::new(bin)
        .arg(interp_js())
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    {
        let mut stdin = child.stdin.take().unwrap();
        let mut buf = String::new();
        for p in progs {
            buf.push_str(&model::to_json(p));
            buf.push('\n');
        }
        stdin.write_all(buf.as_bytes()).unwrap();
    }
    let st = child.wait().unwrap();
    assert!(st.success(), "node exited with {st}");
    let text = match std::fs::read_to_string(&out) {
        Ok(t) => t,
        Err(e) => {
            let input = dir.join(format!("evloop-diff-failed-{}.jsonl", std::process::id()));
            let body: Vec<String> = progs.iter().map(model::to_json).collect();
            std::fs::write(&input, body.join("\n") + "\n").unwrap();
            panic!(
                "node wrote no traces ({e}); its input is in {}",
                input.display()
            );
        }
    };
    let _ = std::fs::remove_file(&out);
    let mut traces: Vec<Vec<String>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("=== program ") {
            traces.push(Vec::new());
        } else {
            traces
                .last_mut()
                .expect("a header first")
                .push(line.to_string());
        }
    }
    assert_eq!(traces.len(), progs.len(), "node traced every program");
    traces
}

fn run_rust(progs: &[Program]) -> Vec<Vec<String>> {
    progs.iter().map(interp::run).collect()
}

/// Whether `p` differs (Rust against Node), both run once.
fn differs(bin: &str, progs: &[Program]) -> Vec<bool> {
    let n = run_node(bin, progs);
    let r = run_rust(progs);
    n.iter().zip(&r).map(|(a, b)| a != b).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    Some(if let Some(h) = v.strip_prefix("0x") {
        u64::from_str_radix(h, 16).expect("a hex number")
    } else {
        v.parse().expect("a number")
    })
}

/// Prints a difference, shrunk, on both sides; returns its report.
fn report(bin: &str, k: usize, p: &Program, node: &[String], rust: &[String]) -> String {
    let small = shrink::shrink(p, |cands| differs(bin, cands));
    let (n2, r2) = (
        run_node(bin, std::slice::from_ref(&small)).remove(0),
        interp::run(&small),
    );
    format!(
        "---- program {k} differs\nnode: {node:?}\nrust: {rust:?}\n\
         shrunk: {}\nnode: {n2:?}\nrust: {r2:?}\n// repro.js\n{}\n// repro.rs\n{}\n",
        model::to_json(&small),
        print::js(&small),
        print::rust(&small)
    )
}

/// The programs' own panics (`x<id>`, their JavaScript throws) are
/// expected: the panic hook stays quiet about them, and only them.
fn quiet_program_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        let ours =
            msg.len() > 1 && msg.starts_with('x') && msg[1..].bytes().all(|b| b.is_ascii_digit());
        if !ours {
            default(info);
        }
    }));
}

#[test]
fn random_programs_print_what_node_prints() {
    let Some((bin, version)) = node() else {
        eprintln!(
            "SKIPPED differential: no node 20 or later (set NODE=/path/to/node; .ci/run installs it)"
        );
        return;
    };
    quiet_program_panics();
    let seed = env_u64("DIFF_SEED").unwrap_or(FIXED_SEED);
    let count = env_u64("DIFF_COUNT").map_or(FIXED_COUNT, |c| c as usize);
    let batch = env_u64("DIFF_BATCH").map_or(2_000, |c| c as usize);
    eprintln!("differential: seed {seed}, {count} programs, against node {version}");
    let mut gen = Gen::new(seed);
    let mut failures = Vec::new();
    let mut done = 0;
    let started = std::time::Instant::now();
    while done < count {
        let n = batch.min(count - done);
        let progs: Vec<Program> = (0..n).map(|_| gen.program()).collect();
        let node1 = run_node(&bin, &progs);
        let node2 = run_node(&bin, &progs);
        for (i, (a, b)) in node1.iter().zip(&node2).enumerate() {
            assert_eq!(
                a,
                b,
                "program {} is not deterministic in node: {}",
                done + i,
                model::to_json(&progs[i])
            );
        }
        let rust = run_rust(&progs);
        for (i, (a, b)) in node1.iter().zip(&rust).enumerate() {
            if a != b && failures.len() < 5 {
                let r = report(&bin, done + i, &progs[i], a, b);
                eprintln!("{r}");
                failures.push(r);
            }
        }
        done += n;
        eprintln!(
            "differential: {done}/{count} programs, {} differ, {:.1?}",
            failures.len(),
            started.elapsed()
        );
    }
    assert!(
        failures.is_empty(),
        "{} programs print differently from node {version} (seed {seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The repro printer's `.js` prints what `interp.js` prints, program by
/// program (so a printed repro is the program that failed).
#[test]
fn printed_js_repros_print_what_the_interpreter_prints() {
    let Some((bin, _)) = node() else {
        eprintln!("SKIPPED differential repro check: no node 20 or later");
        return;
    };
    let mut gen = Gen::new(FIXED_SEED);
    let progs: Vec<Program> = (0..25).map(|_| gen.program()).collect();
    let traces = run_node(&bin, &progs);
    for (p, want) in progs.iter().zip(&traces) {
        let file =
            std::env::temp_dir().join(format!("evloop-diff-repro-{}.js", std::process::id()));
        std::fs::write(&file, print::js(p)).unwrap();
        let out = Command::new(&bin).arg(&file).output().expect("node runs");
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(&got, want, "{}", print::js(p));
    }
}

/// `DIFF_PRINT=K` (with `DIFF_SEED`): prints program K of the seed as
/// JSON, as a `.js` file and as Rust, and runs nothing else.
#[test]
fn print_a_program_on_request() {
    let Some(k) = env_u64("DIFF_PRINT") else {
        return;
    };
    let mut gen = Gen::new(env_u64("DIFF_SEED").unwrap_or(FIXED_SEED));
    let p = (0..=k).map(|_| gen.program()).last().unwrap();
    println!(
        "{}\n// ---- .js\n{}\n// ---- .rs\n{}",
        model::to_json(&p),
        print::js(&p),
        print::rust(&p)
    );
}
