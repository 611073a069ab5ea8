//! The style triplets (`examples/styles/`): the callback, promise and
//! async/await versions of one job must print the same lines, write the
//! same file and exit the same way, on the happy path, through a retry and
//! on each kind of failure. Also a smoke run of `examples/kitchen.rs`.
//!
//! The examples are built once with `cargo build --example ...` (a no-op
//! when `cargo test` already built them), so `cargo test --test styles`
//! alone works and never runs a stale binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const STYLES: [&str; 3] = ["styles_callbacks", "styles_promises", "styles_async_await"];
const EXAMPLES: [&str; 5] = [
    "styles_callbacks",
    "styles_promises",
    "styles_async_await",
    "styles_server",
    "kitchen",
];
/// Far beyond what any run needs: only there so a hang fails the test
/// instead of blocking it forever.
const HANG: Duration = Duration::from_secs(120);

/// The directory of the example binaries, built for this test's profile.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/styles-<hash> -> target/<profile>/examples
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.arg("build").current_dir(env!("CARGO_MANIFEST_DIR"));
        for name in EXAMPLES {
            cmd.args(["--example", name]);
        }
        // The directory is named after the profile, except `dev`'s.
        let profile = profile_dir.file_name().unwrap().to_str().unwrap();
        cmd.args([
            "--profile",
            if profile == "debug" { "dev" } else { profile },
        ]);
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the examples failed");
        profile_dir.join("examples")
    })
}

fn example(name: &str) -> Command {
    Command::new(examples_dir().join(name))
}

/// Kills (by pid) and reaps a child this test started, however the test
/// ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `styles_server` on a free loopback port.
struct Server {
    _child: Guard,
    addr: String,
}

fn start_server(drop_odd: bool) -> Server {
    start_server_with(if drop_odd { &["--drop-odd"] } else { &[] })
}

fn start_server_with(flags: &[&str]) -> Server {
    let mut cmd = example("styles_server");
    cmd.arg("127.0.0.1:0").stdout(Stdio::piped());
    cmd.args(flags);
    let mut child = Guard(cmd.spawn().expect("start styles_server"));
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("styles_server said {line:?}"))
        .to_string();
    Server {
        _child: child,
        addr,
    }
}

/// A loopback address nothing listens on (bound, then released).
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A scratch directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("evloop-styles-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, PartialEq)]
struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
    /// The output file's bytes, if the run wrote it.
    output: Option<Vec<u8>>,
}

/// Runs `cmd` to its end and returns what it printed; a run that hangs is
/// killed (by its pid) and fails the test.
fn output_of(mut cmd: Command) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    // Wait on another thread so a hang can be noticed and killed here.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(out) => return out.unwrap(),
            Err(_) if start.elapsed() > HANG => {
                // Our own child, by pid.
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("{cmd:?} hung for {HANG:?}");
            }
            Err(_) => {}
        }
    }
}

/// Runs one style on `config` and collects what it did; `output` is the
/// file its config names, removed afterwards so the next style starts
/// clean.
fn run_style(name: &str, config: &Path, output: &Path) -> Outcome {
    let mut cmd = example(name);
    cmd.arg(config);
    let out = output_of(cmd);
    let written = std::fs::read(output).ok();
    let _ = std::fs::remove_file(output);
    Outcome {
        success: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
        output: written,
    }
}

/// Writes `config` to a file and runs the three styles on it, one after
/// the other; asserts they did exactly the same and returns what that was.
fn run_all(dir: &TempDir, config: &str) -> Outcome {
    let path = dir.path("job.conf");
    std::fs::write(&path, config).unwrap();
    same_for_all(&path, &dir.path("reply.txt"))
}

fn same_for_all(config: &Path, output: &Path) -> Outcome {
    let mut outcomes: Vec<Outcome> = STYLES
        .iter()
        .map(|name| run_style(name, config, output))
        .collect();
    for (name, o) in STYLES.iter().zip(&outcomes).skip(1) {
        assert_eq!(o, &outcomes[0], "{name} differs from {}", STYLES[0]);
    }
    outcomes.swap_remove(0)
}

fn config(server: &str, output: &Path) -> String {
    format!(
        "# a job for the style examples\nserver = {server}\nrequest = hello kitchen\noutput = {}\n",
        output.display()
    )
}

#[test]
fn happy_path() {
    let server = start_server(false);
    let dir = TempDir::new("happy");
    let out = dir.path("reply.txt");
    let o = run_all(&dir, &config(&server.addr, &out));
    assert!(o.success, "{o:?}");
    assert_eq!(o.output.as_deref(), Some(&b"echo: hello kitchen\n"[..]));
    assert_eq!(o.stderr, "");
    let expected = format!(
        "config: ask {addr} for \"hello kitchen\", write the reply to {out}\n\
         attempt 1: connected to {addr}\n\
         attempt 1: got 20 bytes\n\
         wrote 20 bytes to {out}\n",
        addr = server.addr,
        out = out.display()
    );
    assert_eq!(o.stdout, expected);
}

#[test]
fn retry_after_a_dropped_connection() {
    // Each run's first connection is closed unanswered, its second served.
    let server = start_server(true);
    let dir = TempDir::new("retry");
    let out = dir.path("reply.txt");
    let o = run_all(&dir, &config(&server.addr, &out));
    assert!(o.success, "{o:?}");
    assert_eq!(o.output.as_deref(), Some(&b"echo: hello kitchen\n"[..]));
    assert_eq!(o.stderr, "");
    let expected = format!(
        "config: ask {addr} for \"hello kitchen\", write the reply to {out}\n\
         attempt 1: connected to {addr}\n\
         attempt 1 failed: receive: the server closed the connection without a reply; \
         retrying in 100 ms\n\
         attempt 2: connected to {addr}\n\
         attempt 2: got 20 bytes\n\
         wrote 20 bytes to {out}\n",
        addr = server.addr,
        out = out.display()
    );
    assert_eq!(o.stdout, expected);
}

#[test]
fn server_down() {
    let addr = dead_addr();
    let dir = TempDir::new("down");
    let o = run_all(&dir, &config(&addr, &dir.path("reply.txt")));
    assert!(!o.success);
    assert_eq!(o.output, None);
    assert!(
        o.stdout
            .contains(&format!("attempt 1 failed: connect {addr}: ")),
        "{o:?}"
    );
    assert!(o.stderr.starts_with(&format!(
        "error: no reply after 2 attempts: connect {addr}: "
    )));
    assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
}

#[test]
fn missing_config() {
    let dir = TempDir::new("missing");
    let o = same_for_all(&dir.path("nope.conf"), &dir.path("reply.txt"));
    assert!(!o.success);
    assert_eq!(o.stdout, "");
    let expected = format!(
        "error: cannot read config: read '{}': ",
        dir.path("nope.conf").display()
    );
    assert!(o.stderr.starts_with(&expected), "{o:?}");
    assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
}

#[test]
fn bad_config() {
    let dir = TempDir::new("bad");
    let o = run_all(&dir, "server = 127.0.0.1:1\nrequest hello\n");
    assert!(!o.success);
    assert_eq!(o.stdout, "");
    assert!(
        o.stderr.ends_with("line 2: expected `key = value`\n"),
        "{o:?}"
    );
    assert_eq!(o.stderr.lines().count(), 1);
}

#[test]
fn unwritable_output() {
    let server = start_server(false);
    let dir = TempDir::new("unwritable");
    let out = dir.path("no-such-dir/reply.txt");
    let o = run_all(&dir, &config(&server.addr, &out));
    assert!(!o.success);
    assert!(o.stdout.contains("attempt 1: got 20 bytes"), "{o:?}");
    let expected = format!("error: cannot write output: write '{}': ", out.display());
    assert!(o.stderr.starts_with(&expected), "{o:?}");
    assert_eq!(o.stderr.lines().count(), 1);
}

/// The kitchen (`examples/kitchen.rs`) ends by itself, exits 0, and its
/// log shows each kind of cook at work. Only the presence of lines is
/// checked: their times and interleaving depend on the machine.
#[test]
fn kitchen_smoke() {
    let out = output_of(example("kitchen"));
    let log = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{log}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in log.lines() {
        let (time, rest) = line.trim_start().split_once(' ').unwrap();
        assert!(
            time.starts_with('+') && time.ends_with("ms") && rest.contains(": "),
            "not a log line: {line:?}"
        );
    }
    let has = |needle: &str| log.lines().any(|l| l.contains(needle));
    for needle in [
        "chef: opens the kitchen",
        "chef: puts the bread in the oven (timer 500ms)",
        "chef: stirs the soup (timer, ",
        "chef: takes the chopped onions (pool job done)",
        "chef: doorbell: \"3 fresh fish\" from the supplier (readable pipe)",
        "gets an order for 2 apple pies (message)",
        "chef: receives 2 apple pies from kitchen 2 (pid ",
        "chef: takes the bread out (timer)",
    ] {
        assert!(has(needle), "no {needle:?} in:\n{log}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains(": chops the carrots (60ms)") && l.contains("(thread evloop-pool-")),
        "no assistant on a pool thread in:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("kitchen 2 (pid ") && l.contains("kneads the dough")),
        "kitchen 2 did not log in:\n{log}"
    );
    assert!(
        log.trim_end().ends_with("closes (the loop ended)"),
        "the kitchen did not close last:\n{log}"
    );
}

/// The deadline (issue 18): a server that reads the request and never
/// answers. Each style aborts the whole job when its deadline fires (the
/// connection is destroyed), reports it the same way, and exits at once:
/// nothing left keeps its loop alive.
#[test]
fn deadline_aborts_the_job() {
    let server = start_server_with(&["--silent"]);
    let dir = TempDir::new("deadline");
    let out = dir.path("reply.txt");
    let conf = format!("{}deadline_ms = 300\n", config(&server.addr, &out));
    let start = Instant::now();
    let o = run_all(&dir, &conf);
    // Three runs of 300 ms each, and process start-ups: far below the
    // hang limit, and no run waited for anything after its deadline.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(!o.success, "{o:?}");
    assert_eq!(o.output, None);
    let expected = format!(
        "config: ask {addr} for \"hello kitchen\", write the reply to {out}\n\
         attempt 1: connected to {addr}\n",
        addr = server.addr,
        out = out.display()
    );
    assert_eq!(o.stdout, expected);
    assert_eq!(
        o.stderr,
        "error: deadline: no result within 300 ms; the job was aborted\n"
    );
}

/// The deadline while waiting to retry: the retry timer is cleared.
#[test]
fn deadline_while_waiting_to_retry() {
    let addr = dead_addr();
    let dir = TempDir::new("deadline-retry");
    let out = dir.path("reply.txt");
    // The first connect fails at once; the deadline fires during the
    // 100 ms wait before the second.
    let conf = format!("{}deadline_ms = 50\n", config(&addr, &out));
    let o = run_all(&dir, &conf);
    assert!(!o.success, "{o:?}");
    assert!(o.stdout.contains("attempt 1 failed: connect"), "{o:?}");
    assert!(!o.stdout.contains("attempt 2"), "{o:?}");
    assert_eq!(
        o.stderr,
        "error: deadline: no result within 50 ms; the job was aborted\n"
    );
}
