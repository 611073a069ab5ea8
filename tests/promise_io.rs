//! The promise forms of the I/O operations: the same data and the same
//! errors as their callback forms.

mod support;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

type Seen = Rc<RefCell<Vec<(io::ErrorKind, Option<i32>)>>>;

use evloop::fs::promises as pfs;
use evloop::net::promises as pnet;
use evloop::net::TcpListener;
use evloop::promise::{Promise, Rejection};

/// Reads from `stream` until `want` bytes (or the end) have arrived.
fn read_until(stream: evloop::net::Stream, mut got: Vec<u8>, want: usize) -> Promise<Vec<u8>> {
    pnet::read(&stream).and_then(move |chunk| match chunk {
        Some(bytes) => {
            got.extend_from_slice(&bytes);
            if got.len() >= want {
                Promise::resolve(got)
            } else {
                read_until(stream, got, want)
            }
        }
        None => Promise::resolve(got),
    })
}

#[test]
fn connect_write_and_read_through_promises_against_an_echo_server() {
    support::init_log();
    type Echo = (Vec<u8>, Option<Vec<u8>>);
    let out: Rc<RefCell<Option<Result<Echo, Rejection>>>> = Rc::default();
    let o = out.clone();
    support::run_strict(move || {
        let server = TcpListener::bind("127.0.0.1:0", |conn| {
            let stream = conn.unwrap();
            let s = stream.clone();
            stream.on_data(move |bytes| {
                s.write(bytes);
            });
            let s = stream.clone();
            stream.on_end(move || s.end());
        })
        .unwrap();
        let addr = server.local_addr();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expect = big.clone();
        pnet::connect(addr)
            .and_then(move |stream| {
                let s = stream.clone();
                pnet::write(&stream, &big)
                    .and_then(move |()| read_until(s.clone(), Vec::new(), expect.len()))
                    .and_then(move |echoed| {
                        stream.end();
                        pnet::read(&stream).then(move |after_end| (echoed, after_end))
                    })
            })
            .then_or_else(
                move |r| {
                    *o.borrow_mut() = Some(Ok(r));
                    server.close();
                    Ok::<_, Rejection>(())
                },
                Err,
            );
    })
    .unwrap();
    let (echoed, after_end) = out.borrow_mut().take().expect("settled").unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(echoed.len(), big.len());
    assert!(echoed == big, "echoed bytes differ");
    assert_eq!(after_end, None, "a read after the peer ended gives None");
}

#[test]
fn a_refused_connection_rejects_with_the_callbacks_error() {
    support::init_log();
    // A port that was just free: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let got: Seen = Rc::default();
    let g = got.clone();
    support::run_strict(move || {
        let g2 = g.clone();
        evloop::net::connect(&addr, move |r| {
            let e = r.expect_err("refused");
            g2.borrow_mut().push((e.kind(), e.raw_os_error()));
        });
        pnet::connect(&addr).then_or_else(
            |_| -> Result<(), Rejection> { panic!("connected to a closed port") },
            move |e| {
                g.borrow_mut().push((e.kind(), e.raw_os_error()));
                Ok(())
            },
        );
    })
    .unwrap();
    let got = got.borrow();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], got[1], "callback and promise see the same error");
    assert_eq!(got[0].0, io::ErrorKind::ConnectionRefused);
}

#[test]
fn fs_promises_round_trip_and_report_errors_as_the_callbacks_do() {
    support::init_log();
    let dir = std::env::temp_dir().join(format!("evloop-promise-io-{}", std::process::id()));
    let file = dir.join("a.txt");
    let log = support::Log::new();
    let l = log.clone();
    let missing = dir.join("missing");
    let both: Rc<RefCell<Option<Seen>>> = Rc::default();
    let b = both.clone();
    support::run_strict(move || {
        let (f1, f2, f3) = (file.clone(), file.clone(), file.clone());
        let d = dir.clone();
        let l2 = l.clone();
        pfs::create_dir_all(&dir)
            .and_then(move |()| pfs::write_file(f1, "one"))
            .and_then(move |()| pfs::append_file(f2, " two"))
            .and_then(move |()| pfs::read_to_string(f3))
            .then(move |text| l.push(text))
            .and_then(move |()| pfs::open(file, "r"))
            .and_then(|f| f.read_promise(4, 3).then(move |b| (f, b)))
            .and_then(move |(f, bytes)| {
                l2.push(String::from_utf8(bytes).unwrap());
                f.close_promise()
            })
            .finally_with(move || pfs::remove_dir_all(d))
            .catch(|e| panic!("{e}"));

        *b.borrow_mut() = Some(log_missing(&missing));
    })
    .unwrap();
    assert_eq!(log.take(), ["one two", "two"]);
    let both = both.borrow_mut().take().unwrap();
    assert_eq!(both.borrow().len(), 2, "both reads reported");
}

/// Reads a missing file both ways and asserts the errors agree, whichever
/// of the two reads finishes first (they run on different pool threads).
fn log_missing(path: &std::path::Path) -> Seen {
    let seen: Seen = Rc::default();
    let (s1, s2) = (seen.clone(), seen.clone());
    let check = |s: &Seen| {
        let s = s.borrow();
        if s.len() == 2 {
            assert_eq!(s[0], s[1]);
            assert_eq!(s[0], (io::ErrorKind::NotFound, Some(libc::ENOENT)));
        }
    };
    evloop::fs::read_file(path, move |r| {
        let e = r.unwrap_err();
        s1.borrow_mut()
            .push((e.kind(), evloop::fs::raw_os_error(&e)));
        check(&s1);
    });
    pfs::read_file(path).then_or_else(
        |_| -> Result<(), Rejection> { panic!("read a missing file") },
        move |e| {
            s2.borrow_mut().push((e.kind(), e.raw_os_error()));
            let back = io::Error::from(e);
            assert_eq!(back.kind(), io::ErrorKind::NotFound);
            check(&s2);
            Ok(())
        },
    );
    seen
}
