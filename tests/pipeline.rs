//! `stream::pipeline`: files, TCP and a child process as stages;
//! backpressure by counting queued bytes; errors, abort, the promise form.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use evloop::abort::{is_abort_error, AbortController};
use evloop::fs::{create_read_stream, create_write_stream, ReadStream, WriteStream};
use evloop::net::{connect, TcpListener};
use evloop::process::{Command, Stdio};
use evloop::stream::{pipeline, pipeline_with_signal, promises, Duplex};
use support::{init_log, rng::Rng};

/// A temp path unique to this test process and `name`, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("evloop-pipeline-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Tmp(p)
    }
    fn with(name: &str, data: &[u8]) -> Tmp {
        let t = Tmp::new(name);
        std::fs::write(&t.0, data).unwrap();
        t
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; n];
    Rng::new(seed).fill(&mut v);
    v
}

/// `done`'s results, to check it ran exactly once.
#[derive(Clone, Default)]
struct Dones(Rc<RefCell<Vec<Outcome>>>);

/// `done`'s result: the error's kind and whether it is an abort.
type Outcome = Result<(), (ErrorKind, bool)>;

impl Dones {
    fn cb(&self) -> impl FnOnce(std::io::Result<()>) + 'static {
        let me = self.clone();
        move |r| {
            me.0.borrow_mut()
                .push(r.map_err(|e| (e.kind(), is_abort_error(&e))))
        }
    }
    fn once(&self) -> Outcome {
        let v = self.0.borrow();
        assert_eq!(v.len(), 1, "done runs exactly once: {v:?}");
        v[0]
    }
}

fn cat() -> evloop::process::Child {
    Command::new("cat")
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .spawn()
        .expect("spawn cat")
}

#[test]
fn file_to_file() {
    init_log();
    let data = payload(3 << 20, 1);
    let (src, dst) = (Tmp::with("ff-src", &data), Tmp::new("ff-dst"));
    let dones = Dones::default();
    let (d, s, o) = (dones.clone(), src.0.clone(), dst.0.clone());
    evloop::run(move || {
        pipeline(create_read_stream(s), [], create_write_stream(o), d.cb());
    })
    .unwrap();
    assert_eq!(dones.once(), Ok(()));
    assert_eq!(std::fs::read(&dst.0).unwrap(), data);
}

#[test]
fn empty_file_to_file() {
    init_log();
    let (src, dst) = (Tmp::with("ef-src", b""), Tmp::new("ef-dst"));
    let dones = Dones::default();
    let (d, s, o) = (dones.clone(), src.0.clone(), dst.0.clone());
    evloop::run(move || {
        pipeline(create_read_stream(s), [], create_write_stream(o), d.cb());
    })
    .unwrap();
    assert_eq!(dones.once(), Ok(()));
    assert_eq!(std::fs::read(&dst.0).unwrap(), b"");
}

#[test]
fn file_to_tcp_to_file() {
    init_log();
    let data = payload(2 << 20, 2);
    let (src, dst) = (Tmp::with("ftf-src", &data), Tmp::new("ftf-dst"));
    let (sent, received) = (Dones::default(), Dones::default());
    let (d1, d2, s, o) = (sent.clone(), received.clone(), src.0.clone(), dst.0.clone());
    evloop::run(move || {
        let mut d2 = Some(d2);
        let mut o = Some(o);
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            let conn = conn.unwrap();
            let (d2, o) = (d2.take().unwrap(), o.take().unwrap());
            pipeline(conn, [], create_write_stream(o), d2.cb());
        })
        .unwrap();
        server.unref();
        connect(server.local_addr(), move |r| {
            let conn = r.unwrap();
            // The destination must read to see the peer's end and close.
            conn.on_data(|_| {});
            pipeline(create_read_stream(s), [], conn, d1.cb());
        });
    })
    .unwrap();
    assert_eq!(sent.once(), Ok(()));
    assert_eq!(received.once(), Ok(()));
    assert_eq!(std::fs::read(&dst.0).unwrap(), data);
}

/// One socket as a middle stage (`Duplex::from(stream)`): the pipeline
/// writes to an echo server and reads the echo back.
#[test]
fn file_through_an_echo_socket_to_file() {
    init_log();
    let data = payload(2 << 20, 8);
    let (src, dst) = (Tmp::with("echo-src", &data), Tmp::new("echo-dst"));
    let dones = Dones::default();
    let (d, s, o) = (dones.clone(), src.0.clone(), dst.0.clone());
    evloop::run(move || {
        let server = TcpListener::bind("127.0.0.1:0", |conn| {
            let conn = conn.unwrap();
            let w = conn.clone();
            conn.on_data(move |b| {
                w.write(b);
            });
        })
        .unwrap();
        server.unref();
        connect(server.local_addr(), move |r| {
            let conn = r.unwrap();
            pipeline(
                create_read_stream(s),
                [Duplex::from(conn)],
                create_write_stream(o),
                d.cb(),
            );
        });
    })
    .unwrap();
    assert_eq!(dones.once(), Ok(()));
    assert_eq!(std::fs::read(&dst.0).unwrap(), data);
}

#[test]
fn file_through_cat_to_file() {
    init_log();
    let data = payload(4 << 20, 3);
    let (src, dst) = (Tmp::with("fcf-src", &data), Tmp::new("fcf-dst"));
    let dones = Dones::default();
    let (d, s, o) = (dones.clone(), src.0.clone(), dst.0.clone());
    evloop::run(move || {
        let child = cat();
        pipeline(
            create_read_stream(s),
            [Duplex::from_child(&child).unwrap()],
            create_write_stream(o),
            d.cb(),
        );
    })
    .unwrap();
    assert_eq!(dones.once(), Ok(()));
    assert_eq!(std::fs::read(&dst.0).unwrap(), data);
}

#[test]
fn a_child_without_pipes_is_an_error() {
    init_log();
    evloop::run(|| {
        let child = Command::new("true").spawn().unwrap();
        let e = Duplex::from_child(&child).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    })
    .unwrap();
}

/// Every stage's memory stays about its high-water mark: sampled on each
/// chunk the source delivers (a user `on_data` beside the pipeline's), the
/// bytes held between the source and the destination stay bounded, and
/// each queue stays under its mark plus one chunk. Counts, not timing.
#[test]
fn memory_stays_bounded_through_cat() {
    init_log();
    let total = 16 << 20;
    let data = payload(total, 4);
    let (src, dst) = (Tmp::with("mem-src", &data), Tmp::new("mem-dst"));
    let dones = Dones::default();
    #[derive(Default)]
    struct Max {
        in_flight: Cell<u64>,
        stdin_queue: Cell<usize>,
        dest_queue: Cell<usize>,
        held: Cell<usize>,
        samples: Cell<u32>,
    }
    let max = Rc::new(Max::default());
    let (d, s, o, m) = (dones.clone(), src.0.clone(), dst.0.clone(), max.clone());
    evloop::run(move || {
        let child = cat();
        let stdin = child.stdin.clone().unwrap();
        let source: ReadStream = create_read_stream(s);
        let dest: WriteStream = create_write_stream(o);
        let (src2, dest2) = (source.clone(), dest.clone());
        // The user's own listener on a piped source sees every chunk too.
        source.on_data(move |_| {
            let upd = |c: &Cell<usize>, v: usize| c.set(c.get().max(v));
            let held = src2.bytes_read() - dest2.bytes_written();
            m.in_flight.set(m.in_flight.get().max(held));
            upd(&m.stdin_queue, stdin.write_queue_len());
            upd(&m.dest_queue, dest2.write_queue_len());
            upd(&m.held, src2.buffered_len());
            m.samples.set(m.samples.get() + 1);
        });
        pipeline(source, [Duplex::from_child(&child).unwrap()], dest, d.cb());
    })
    .unwrap();
    assert_eq!(dones.once(), Ok(()));
    assert_eq!(std::fs::read(&dst.0).unwrap().len(), total);
    let chunk = 64 * 1024;
    eprintln!(
        "max: in flight {} B, stdin queue {} B, dest queue {} B, held {} B",
        max.in_flight.get(),
        max.stdin_queue.get(),
        max.dest_queue.get(),
        max.held.get()
    );
    assert_eq!(max.samples.get() as usize, total / chunk);
    assert!(
        max.stdin_queue.get() <= 16 * 1024 + chunk,
        "{}",
        max.stdin_queue.get()
    );
    assert!(
        max.dest_queue.get() <= 16 * 1024 + chunk,
        "{}",
        max.dest_queue.get()
    );
    assert!(max.held.get() <= chunk, "{}", max.held.get());
    // Queues plus the pipes' kernel buffers and cat's own buffer: far
    // below the 16 MiB file.
    assert!(max.in_flight.get() <= 2 << 20, "{}", max.in_flight.get());
}

/// A middle stage that fails (a TCP peer that resets the connection after
/// some data): every stage is destroyed and `done` gets the error once.
#[test]
fn an_error_in_the_middle_destroys_every_stage() {
    init_log();
    let data = payload(8 << 20, 5);
    let (src, dst) = (Tmp::with("err-src", &data), Tmp::new("err-dst"));
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap();
    let resetter = std::thread::spawn(move || {
        let (mut conn, _) = peer.accept().unwrap();
        let mut buf = vec![0; 100_000];
        let mut got = 0;
        while got < 100_000 {
            let n = conn.read(&mut buf).unwrap();
            conn.write_all(&buf[..n]).unwrap();
            got += n;
        }
        socket2::SockRef::from(&conn)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    let dones = Dones::default();
    let stages = Rc::new(RefCell::new(None));
    let (d, s, o, st) = (dones.clone(), src.0.clone(), dst.0.clone(), stages.clone());
    evloop::run(move || {
        connect(addr, move |r| {
            let conn = r.unwrap();
            let (source, dest) = (create_read_stream(s), create_write_stream(o));
            *st.borrow_mut() = Some((source.clone(), conn.clone(), dest.clone()));
            pipeline(source, [Duplex::from(conn)], dest, d.cb());
        });
    })
    .unwrap();
    resetter.join().unwrap();
    let r = dones.once();
    assert!(
        matches!(
            r,
            Err((ErrorKind::ConnectionReset | ErrorKind::BrokenPipe, false))
        ),
        "{r:?}"
    );
    let (source, conn, dest) = stages.borrow_mut().take().unwrap();
    assert!(source.is_closed() && !source.is_ended());
    assert!(conn.is_closed());
    assert!(dest.is_closed() && !dest.is_finished());
}

#[test]
fn a_missing_source_fails_and_destroys_the_destination() {
    init_log();
    let dst = Tmp::new("missing-dst");
    let dones = Dones::default();
    let dest_closed = Rc::new(Cell::new(false));
    let (d, o, dc) = (dones.clone(), dst.0.clone(), dest_closed.clone());
    evloop::run(move || {
        let dest = create_write_stream(o);
        dest.on_close(move |had_error| dc.set(had_error));
        pipeline(create_read_stream("/no/such/evloop/file"), [], dest, d.cb());
    })
    .unwrap();
    assert_eq!(dones.once(), Err((ErrorKind::NotFound, false)));
    assert!(dest_closed.get(), "destroyed with the error");
}

/// Abort through the signal on the destination's first drain (a user
/// drain listener beside the pipeline's): every stage is destroyed, the
/// child sees its stdin close, `done` gets the AbortError once.
#[test]
fn abort_destroys_every_stage() {
    init_log();
    let data = payload(8 << 20, 6);
    let (src, dst) = (Tmp::with("abort-src", &data), Tmp::new("abort-dst"));
    let dones = Dones::default();
    let stages = Rc::new(RefCell::new(None));
    let (d, s, o, st) = (dones.clone(), src.0.clone(), dst.0.clone(), stages.clone());
    evloop::run(move || {
        let ac = Rc::new(AbortController::new());
        let child = cat();
        let (source, dest) = (create_read_stream(s), create_write_stream(o));
        let ac2 = ac.clone();
        dest.on_drain(move || ac2.abort(None));
        *st.borrow_mut() = Some((source.clone(), dest.clone(), child.stdin.clone().unwrap()));
        pipeline_with_signal(
            source,
            [Duplex::from_child(&child).unwrap()],
            dest,
            &ac.signal(),
            d.cb(),
        );
    })
    .unwrap();
    assert!(dones.once().unwrap_err().1, "an abort error");
    let (source, dest, stdin) = stages.borrow_mut().take().unwrap();
    assert!(source.is_closed() && !source.is_ended());
    assert!(dest.is_closed() && !dest.is_finished());
    assert!(stdin.is_closed());
    assert!(std::fs::metadata(&dst.0).unwrap().len() < data.len() as u64);
}

#[test]
fn already_aborted_signal_fails_at_once() {
    init_log();
    let src = Tmp::with("pre-abort-src", b"abc");
    let dst = Tmp::new("pre-abort-dst");
    let dones = Dones::default();
    let (d, s, o) = (dones.clone(), src.0.clone(), dst.0.clone());
    evloop::run(move || {
        let signal = evloop::abort::AbortSignal::abort(None);
        pipeline_with_signal(
            create_read_stream(s),
            [],
            create_write_stream(o),
            &signal,
            d.cb(),
        );
    })
    .unwrap();
    assert!(dones.once().unwrap_err().1, "an abort error");
}

#[test]
fn promise_form_resolves_and_rejects() {
    init_log();
    let data = payload(1 << 20, 7);
    let (src, dst) = (Tmp::with("prom-src", &data), Tmp::new("prom-dst"));
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l, s, o) = (log.clone(), src.0.clone(), dst.0.clone());
    support::run_strict(move || {
        let l2 = l.clone();
        promises::pipeline(create_read_stream(s), [], create_write_stream(o.clone()))
            .then(move |()| l2.borrow_mut().push("resolved".to_string()));
        promises::pipeline(
            create_read_stream("/no/such/evloop/file"),
            [],
            create_write_stream(o.with_extension("x")),
        )
        .then(|()| panic!("must reject"))
        .catch(move |e| l.borrow_mut().push(format!("rejected: {e}")));
    })
    .unwrap();
    let _ = std::fs::remove_file(dst.0.with_extension("x"));
    let log = log.borrow();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log.contains(&"resolved".to_string()));
    assert!(log.iter().any(|s| s.starts_with("rejected:")), "{log:?}");
    assert_eq!(std::fs::read(&dst.0).unwrap(), data);
}

/// A `net::Stream` stage: a user `on_data` added after `pipeline` is a
/// second listener beside the pipeline's, as in Node: both get the data.
#[test]
fn a_user_on_data_on_a_stream_source_is_a_listener_beside_the_pipelines() {
    init_log();
    let dst = Tmp::new("user-data-dst");
    let dones = Dones::default();
    let seen = Rc::new(Cell::new(0usize));
    let (d, o, sn) = (dones.clone(), dst.0.clone(), seen.clone());
    evloop::run(move || {
        let child = Command::new("printf")
            .arg("hello")
            .stdout(Stdio::Piped)
            .spawn()
            .unwrap();
        let out = child.stdout.clone().unwrap();
        pipeline(out.clone(), [], create_write_stream(o), d.cb());
        out.on_data(move |b| sn.set(sn.get() + b.len()));
    })
    .unwrap();
    assert_eq!(seen.get(), 5, "the user's listener got the data");
    assert_eq!(dones.once(), Ok(()));
    assert_eq!(
        std::fs::read(&dst.0).unwrap(),
        b"hello",
        "and the pipeline too"
    );
}
