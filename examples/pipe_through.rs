//! Pipe 10 MiB through `cat` and check every byte comes back: a child
//! process's stdin and stdout as loop streams, with backpressure both ways.
//!
//! Twice: first **by hand**, to show what backpressure is (write while
//! `write` returns `true`, wait for `on_drain`, then go on), then with
//! **`stream::pipeline`**, which does exactly that on every link (and the
//! end, errors and cleanup) for file streams, sockets and children:
//! file -> `cat` -> file in one call.
//!
//! `cargo run --release --example pipe_through [MIB]`. Exits non-zero on
//! any mismatch.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use evloop::fs::{create_read_stream, create_write_stream};
use evloop::process::{Command, Stdio};
use evloop::stream::{pipeline, Duplex};

fn main() {
    env_logger::init();
    let mib: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MIB is a number"))
        .unwrap_or(10);
    let total = mib << 20;
    // A pattern that a dropped, repeated or reordered chunk would break.
    let data: Rc<Vec<u8>> = Rc::new(
        (0..total)
            .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
            .collect(),
    );
    let received = Rc::new(Cell::new(0usize));
    let mismatch = Rc::new(Cell::new(None));
    let status = Rc::new(RefCell::new(None));
    let paused = Rc::new(Cell::new(0u32));
    let start = Instant::now();
    let (d, r, m, st, pz) = (
        data.clone(),
        received.clone(),
        mismatch.clone(),
        status.clone(),
        paused.clone(),
    );
    evloop::run(move || {
        let child = Command::new("cat")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .spawn()
            .expect("spawn");
        let stdin = child.stdin.clone().expect("piped stdin");
        let stdout = child.stdout.clone().expect("piped stdout");
        // Check each chunk as it arrives, against the same offset.
        let expected = d.clone();
        stdout.on_data(move |bytes| {
            let at = r.get();
            if m.get().is_none() {
                let want = expected.get(at..at + bytes.len());
                if want != Some(bytes) {
                    m.set(Some(at));
                }
            }
            r.set(at + bytes.len());
        });
        // Write in 64 KiB chunks while `write` says go on; resume on drain.
        let offset = Rc::new(Cell::new(0usize));
        let pump: Rc<dyn Fn()> = {
            let (stdin, offset) = (stdin.clone(), offset.clone());
            Rc::new(move || loop {
                let at = offset.get();
                if at == d.len() {
                    stdin.end();
                    return;
                }
                let end = (at + 64 * 1024).min(d.len());
                offset.set(end);
                if !stdin.write(&d[at..end]) {
                    pz.set(pz.get() + 1);
                    return;
                }
            })
        };
        let p = pump.clone();
        stdin.on_drain(move || p());
        pump();
        child.on_exit(move |s| *st.borrow_mut() = Some(s));
    })
    .expect("the loop");
    let elapsed = start.elapsed();
    println!(
        "{} bytes through cat in {elapsed:.2?} ({:.0} MiB/s), writer paused {} times",
        received.get(),
        mib as f64 / elapsed.as_secs_f64(),
        paused.get()
    );
    let ok_exit = matches!(&*status.borrow(), Some(Ok(s)) if s.success());
    if !ok_exit || received.get() != total || mismatch.get().is_some() {
        eprintln!(
            "MISMATCH: exit {:?}, {} of {total} bytes, first bad offset {:?}",
            status.borrow(),
            received.get(),
            mismatch.get()
        );
        std::process::exit(1);
    }
    println!("ok: every byte came back in order");

    // The same through `pipeline`: the data from a file, back into a file.
    let dir = std::env::temp_dir();
    let (src, dst) = (
        dir.join(format!("evloop-pipe-through-{}.src", std::process::id())),
        dir.join(format!("evloop-pipe-through-{}.dst", std::process::id())),
    );
    std::fs::write(&src, &*data).expect("write the source file");
    let result = Rc::new(RefCell::new(None));
    let (res, s, d) = (result.clone(), src.clone(), dst.clone());
    let start = Instant::now();
    evloop::run(move || {
        let child = Command::new("cat")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .spawn()
            .expect("spawn");
        pipeline(
            create_read_stream(s),
            [Duplex::from_child(&child).expect("piped stdio")],
            create_write_stream(d),
            move |r| *res.borrow_mut() = Some(r),
        );
    })
    .expect("the loop");
    let elapsed = start.elapsed();
    let copy = std::fs::read(&dst).unwrap_or_default();
    let _ = (std::fs::remove_file(&src), std::fs::remove_file(&dst));
    println!(
        "pipeline: {} bytes file -> cat -> file in {elapsed:.2?} ({:.0} MiB/s)",
        copy.len(),
        mib as f64 / elapsed.as_secs_f64()
    );
    if !matches!(&*result.borrow(), Some(Ok(()))) || copy != *data {
        eprintln!("MISMATCH through pipeline: {:?}", result.borrow());
        std::process::exit(1);
    }
    println!("ok: the pipeline copy is exact too");
}
