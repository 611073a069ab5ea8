//! The I/O-bound workload in every model: `n` requests to a local server
//! that answers each after a delay. Each request is a connection: send
//! `req <i>\n`, read `res <i>\n` and the end.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;

use evloop::net;
use evloop::promise::Promise;

use crate::measure::Outcome;

fn request(i: u64) -> Vec<u8> {
    format!("req {i}\n").into_bytes()
}

fn is_reply(i: u64, bytes: &[u8]) -> bool {
    bytes == format!("res {i}\n").as_bytes()
}

// ---- the server (a process of its own, so its CPU is not counted) ----

/// The delay server: answers each request line after `delay`, then closes.
/// Prints its address on stdout for the parent.
pub fn delay_server(delay: Duration) {
    evloop::run(move || {
        let server = net::TcpListener::bind("127.0.0.1:0", move |conn| {
            let Ok(s) = conn else { return };
            let s2 = s.clone();
            s.on_data(move |bytes| {
                let line = String::from_utf8_lossy(bytes).trim().replace("req", "res");
                let s3 = s2.clone();
                evloop::set_timeout(delay, move || {
                    s3.write(format!("{line}\n").as_bytes());
                    s3.end();
                });
            });
        })
        .expect("listen on loopback");
        println!("{}", server.local_addr());
    })
    .expect("the server loop");
}

// ---- one thread, blocking ----

fn blocking_request(addr: SocketAddr, i: u64) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let mut reply = Vec::new();
    s.write_all(&request(i)).is_ok() && s.read_to_end(&mut reply).is_ok() && is_reply(i, &reply)
}

pub fn sync(addr: SocketAddr, n: u64) -> Outcome {
    Outcome::checked((0..n).all(|i| blocking_request(addr, i)))
}

// ---- callbacks ----

/// Every request at once, each a chain of callbacks.
pub fn callbacks(addr: SocketAddr, range: Range<u64>) -> Outcome {
    let n = range.end - range.start;
    let good = Rc::new(Cell::new(0));
    let g = good.clone();
    evloop::run(move || {
        for i in range {
            let g = g.clone();
            net::connect(addr, move |conn| {
                let Ok(s) = conn else { return };
                let reply = Rc::new(RefCell::new(Vec::new()));
                let r = reply.clone();
                s.on_data(move |bytes| r.borrow_mut().extend_from_slice(bytes));
                s.on_end(move || {
                    if is_reply(i, &reply.borrow()) {
                        g.set(g.get() + 1);
                    }
                });
                s.write(&request(i));
            });
        }
    })
    .expect("the loop");
    Outcome::checked(good.get() == n)
}

// ---- promises ----

/// Reads until the end: a promise loop.
fn read_all(s: net::Stream, mut acc: Vec<u8>) -> Promise<Vec<u8>> {
    net::promises::read(&s).and_then(move |chunk| match chunk {
        Some(bytes) => {
            acc.extend_from_slice(&bytes);
            read_all(s, acc)
        }
        None => Promise::resolve(acc),
    })
}

pub fn promises(addr: SocketAddr, n: u64) -> Outcome {
    let all = Rc::new(RefCell::new(None));
    let a = all.clone();
    evloop::run(move || {
        let each = (0..n).map(|i| {
            net::promises::connect(addr)
                .and_then(move |s| net::promises::write(&s, &request(i)).then(move |()| s))
                .and_then(|s| read_all(s, Vec::new()))
                .then(move |reply| is_reply(i, &reply))
        });
        *a.borrow_mut() = Some(Promise::all(each));
    })
    .expect("the loop");
    let all = all.borrow_mut().take().expect("started");
    let ok = matches!(all.peek(), Some(Ok(v)) if v.len() as u64 == n && v.iter().all(|&b| b));
    Outcome::checked(ok)
}

// ---- async/await ----

pub fn async_await(addr: SocketAddr, n: u64) -> Outcome {
    use evloop::task::net::TcpStream;
    let good = evloop::block_on(async move {
        let tasks: Vec<Promise<bool>> = (0..n)
            .map(|i| {
                evloop::spawn(async move {
                    let Ok(mut s) = TcpStream::connect(addr).await else {
                        return false;
                    };
                    if s.write_all(&request(i)).await.is_err() {
                        return false;
                    }
                    let mut reply = Vec::new();
                    let mut buf = [0u8; 64];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) => break,
                            Ok(k) => reply.extend_from_slice(&buf[..k]),
                            Err(_) => return false,
                        }
                    }
                    is_reply(i, &reply)
                })
            })
            .collect();
        let mut good = 0;
        for t in tasks {
            if matches!(t.await, Ok(true)) {
                good += 1;
            }
        }
        good
    })
    .expect("the loop");
    Outcome::checked(good == n)
}

// ---- threads ----

/// One thread per request, each blocking.
pub fn threads(addr: SocketAddr, n: u64) -> Outcome {
    let ok = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn_scoped(scope, move || blocking_request(addr, i))
                    .expect("spawn a thread")
            })
            .collect();
        handles.into_iter().all(|h| h.join().unwrap_or(false))
    });
    Outcome::checked(ok)
}
