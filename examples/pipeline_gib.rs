//! The streams measurement (issue 19): a file read stream -> a child `cat`
//! -> a TCP socket over loopback -> a file write stream, in two
//! `stream::pipeline`s (the client's: file -> cat -> socket; the server's:
//! socket -> file), at bounded memory.
//!
//! `cargo run --release --example pipeline_gib [MIB] [DIR]` (1024 MiB by
//! default, in the temp dir). Prints bytes, seconds, MB/s and the peak RSS
//! (`VmHWM`) of this process before and after; checks the copy byte for
//! byte and deletes both files. Exits non-zero on any mismatch.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use evloop::fs::{create_read_stream, create_write_stream};
use evloop::net::{connect, TcpListener};
use evloop::process::{Command, Stdio};
use evloop::stream::{pipeline, Duplex};

/// This process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A pattern that a dropped, repeated or reordered block would break.
fn block(i: u64, buf: &mut [u8]) {
    for (j, b) in buf.iter_mut().enumerate() {
        *b = (j as u64 % 251) as u8 ^ (i as u8).wrapping_mul(31);
    }
    buf[..8].copy_from_slice(&i.to_le_bytes());
}

fn make_source(path: &Path, mib: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..mib {
        block(i, &mut buf);
        f.write_all(&buf)?;
    }
    f.flush()
}

fn same(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut a, mut b) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(b.read(&mut y)? == 0);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

fn main() {
    env_logger::init();
    let mut args = std::env::args().skip(1);
    let mib: u64 = args
        .next()
        .map(|a| a.parse().expect("MIB is a number"))
        .unwrap_or(1024);
    let dir: PathBuf = args
        .next()
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let src = dir.join(format!("evloop-pipeline-gib-{}.src", std::process::id()));
    let dst = dir.join(format!("evloop-pipeline-gib-{}.dst", std::process::id()));
    make_source(&src, mib).expect("write the source file");
    let rss_before = peak_rss_kib();

    let results = Rc::new(RefCell::new(Vec::new()));
    let finished_at = Rc::new(Cell::new(None));
    let start = Instant::now();
    let (res, fin, s, d) = (
        results.clone(),
        finished_at.clone(),
        src.clone(),
        dst.clone(),
    );
    let r = evloop::run(move || {
        let mut d = Some(d);
        let (res2, fin2) = (res.clone(), fin.clone());
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            let conn = conn.expect("accept");
            let (res, fin) = (res2.clone(), fin2.clone());
            let dst = d.take().expect("one connection");
            // socket -> file.
            pipeline(conn, [], create_write_stream(dst), move |r| {
                fin.set(Some(Instant::now()));
                res.borrow_mut()
                    .push(("server", r.map_err(|e| e.to_string())));
            });
        })
        .expect("bind");
        server.unref();
        let cat = Command::new("cat")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .spawn()
            .expect("spawn cat");
        connect(server.local_addr(), move |r| {
            let conn = r.expect("connect");
            conn.on_data(|_| {}); // see the server's end, then close
            let middle = Duplex::from_child(&cat).expect("piped");
            // file -> cat -> socket.
            pipeline(create_read_stream(s), [middle], conn, move |r| {
                res.borrow_mut()
                    .push(("client", r.map_err(|e| e.to_string())));
            });
        });
    });
    let elapsed = finished_at
        .get()
        .map_or_else(|| start.elapsed(), |t| t - start);
    let rss_after = peak_rss_kib();
    let bytes = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
    let ok = r.is_ok()
        && results.borrow().len() == 2
        && results.borrow().iter().all(|(_, r)| r.is_ok())
        && bytes == mib << 20
        && same(&src, &dst).unwrap_or(false);
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    let secs = elapsed.as_secs_f64();
    println!(
        "pipeline file -> cat -> tcp -> file: {bytes} bytes in {secs:.2} s = {:.0} MB/s ({:.0} MiB/s); \
         peak RSS (VmHWM) {} KiB before, {} KiB after",
        bytes as f64 / secs / 1e6,
        bytes as f64 / secs / (1 << 20) as f64,
        rss_before,
        rss_after
    );
    if !ok {
        eprintln!(
            "MISMATCH: run {r:?}, results {:?}, {bytes} of {} bytes",
            results.borrow(),
            mib << 20
        );
        std::process::exit(1);
    }
    println!("ok: every byte arrived in order");
}
