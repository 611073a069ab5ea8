//! What the three style examples share: the config format, the retry delay
//! and how a failure is reported. No control flow lives here: each style's
//! file shows its own.
//!
//! The config is `key = value` lines; blank lines and `#` comments are
//! skipped:
//!
//! ```text
//! server = 127.0.0.1:7100   # where styles_server listens
//! request = hello kitchen   # one line sent to it
//! output = reply.txt        # where its reply is written
//! deadline_ms = 2000        # optional: abort the whole job after this
//! ```
//!
//! The deadline is an `AbortSignal::timeout` made once the config is read:
//! every operation of the job takes it, so when it fires whatever is in
//! flight stops (the connection is closed, the retry timer cleared) and
//! the job fails with [`deadline_message`].
#![allow(dead_code)] // each example uses its own subset

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long to wait before the second (and last) attempt.
pub const RETRY_DELAY: Duration = Duration::from_millis(100);

/// The deadline when the config names none.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

/// What the config file says.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: SocketAddr,
    pub request: String,
    pub output: String,
    /// The whole job (after the config is read) must end within this.
    pub deadline: Duration,
}

/// What a job that missed its deadline reports (the same in each style).
pub fn deadline_message(config: &Config) -> String {
    format!(
        "deadline: no result within {} ms; the job was aborted",
        config.deadline.as_millis()
    )
}

/// Parses the config text read from `path` (the path is only for messages).
pub fn parse(path: &str, text: &str) -> Result<Config, String> {
    let (mut server, mut request, mut output) = (None, None, None);
    let mut deadline = DEFAULT_DEADLINE;
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("bad config '{path}' line {}", i + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("{at}: expected `key = value`"));
        };
        let value = value.trim().to_string();
        match key.trim() {
            "server" => {
                let addr = value
                    .parse()
                    .map_err(|_| format!("{at}: `{value}` is not an IP:port address"))?;
                server = Some(addr);
            }
            "request" => request = Some(value),
            "output" => output = Some(value),
            "deadline_ms" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|_| format!("{at}: `{value}` is not a number of milliseconds"))?;
                deadline = Duration::from_millis(ms);
            }
            other => return Err(format!("{at}: unknown key `{other}`")),
        }
    }
    let missing = |key| format!("bad config '{path}': no `{key} = ...` line");
    Ok(Config {
        server: server.ok_or_else(|| missing("server"))?,
        request: request.ok_or_else(|| missing("request"))?,
        output: output.ok_or_else(|| missing("output"))?,
        deadline,
    })
}

/// The config path from the command line, or a usage message and exit 2.
pub fn config_path() -> String {
    match std::env::args().nth(1) {
        Some(path) => path,
        None => {
            let me = std::env::args().next().unwrap_or_default();
            eprintln!("usage: {me} CONFIG");
            std::process::exit(2);
        }
    }
}

static FAILED: AtomicBool = AtomicBool::new(false);

/// Reports a failure: one line on stderr, and the exit code becomes 1
/// (Node's `console.error(..); process.exitCode = 1`).
pub fn fail(msg: impl Display) {
    eprintln!("error: {msg}");
    FAILED.store(true, Ordering::Relaxed);
}

/// 1 if [`fail`] was called, else 0.
pub fn exit_code() -> i32 {
    i32::from(FAILED.load(Ordering::Relaxed))
}
