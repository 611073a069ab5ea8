//! mini_redis tests with real clients (`redis-cli`, redis-py) and the
//! memory cost of a large value.

use std::io::Write;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::harness::*;

#[test]
fn redis_cli_as_a_client() {
    let Ok(out) = Command::new("redis-cli").arg("--version").output() else {
        println!("note: redis-cli is not on PATH; skipping the real-client test");
        return;
    };
    assert!(out.status.success());
    let server = Server::start();
    let port = server.port.to_string();
    let cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(cli(&["PING"]), "PONG\n");
    assert_eq!(cli(&["SET", "cli", "hello world"]), "OK\n");
    assert_eq!(cli(&["GET", "cli"]), "hello world\n");
    assert_eq!(cli(&["INCR", "ctr"]), "1\n");
    assert_eq!(cli(&["MGET", "cli", "nope"]), "hello world\n\n");
    // (redis-cli prints an error with a blank line after it.)
    assert_eq!(
        cli(&["GET"]).trim_end(),
        "ERR wrong number of arguments for 'get' command"
    );
    // Commands on stdin, as a script would pipe them.
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SET piped 7\nINCRBY piped 3\nGET piped\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "OK\n10\n10\n");
}

/// A field of `/proc/PID/status` in MiB (Linux only).
fn status_mib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// One 64 MiB SET costs about 64 MiB at its peak, as in redis-server (the
/// value keeps the buffer it was read into), not twice or three times that.
#[test]
fn a_64_mib_set_peaks_near_64_mib() {
    let server = Server::start();
    let mut c = server.connect();
    assert_eq!(c.cmd(&["PING"]), Simple("PONG".into()));
    let Some(before) = status_mib(server.pid(), "VmRSS:") else {
        eprintln!("note: no /proc/PID/status here; skipping the peak-memory check");
        return;
    };
    let n = 64 << 20;
    c.send(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${n}\r\n").as_bytes());
    let chunk = vec![b'v'; 1 << 20];
    for _ in 0..n / chunk.len() {
        c.send(&chunk);
    }
    c.send(b"\r\n");
    assert_eq!(c.reply(), ok());
    let peak = status_mib(server.pid(), "VmHWM:").expect("VmHWM");
    eprintln!("64 MiB SET: RSS {before} MiB before, peak {peak} MiB");
    // Before the shared buffer, the peak was 128 MiB over the baseline.
    assert!(
        peak - before < 64 + 24,
        "peak RSS grew by {} MiB for a 64 MiB value",
        peak - before
    );
    assert_eq!(c.cmd(&["EXISTS", "big"]), Int(1));
}

/// The real Python client, redis-py (`pip install redis`), with default
/// settings, runs `tests/redis_py/client.py` against the server. Skipped,
/// loudly, where Python or redis-py is missing.
#[test]
fn redis_py_as_a_client() {
    let has_redis_py = Command::new("python3")
        .args(["-c", "import redis"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_redis_py {
        eprintln!(
            "\n*** SKIPPED redis_py_as_a_client: `python3 -c \"import redis\"` failed; \
             install it with `python3 -m pip install redis` to run this test ***\n"
        );
        return;
    }
    let server = Server::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis_py/client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(server.port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    // Bounded: the script sets socket timeouts, and this kills it (by its
    // PID) if it still runs after a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait for python3").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tests/redis_py/client.py did not finish in 60 s");
        }
        sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("python3 output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("redis-py OK"), "client.py said:\n{stdout}");
    eprintln!("{}", stdout.trim_end());
}
