//! Heap bytes per idle accepted connection of a callback echo server: a
//! count (no time), so a deterministic budget test (issue 25: an idle
//! callback connection in at most 256 bytes of RSS).
//!
//! A counting global allocator keeps the live bytes as glibc's malloc
//! spends them: each allocation of `n` bytes takes a chunk of
//! `max(32, round_up(n + 8, 16))` bytes (its size word included). The
//! server is `examples/echo_server.rs`'s, without the printing: a data
//! listener holding a clone of the stream, an error listener, and a close
//! listener holding the peer's address. A client thread opens a warm-up
//! connection, then `N` more; each sends 8 bytes and reads them back, then
//! stays open and idle. The server counts the live bytes when the warm-up
//! echo arrives and when the last one does (both in the same place: a data
//! listener of a connection echoing its first chunk), and the difference
//! divided by `N` is the cost of one idle connection.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;

use evloop::net::TcpListener;

/// What glibc's malloc takes for a request of `n` bytes (64-bit): the
/// request plus the 8-byte size word, rounded up to 16, at least 32.
fn chunk(n: usize) -> isize {
    (((n + 8 + 15) & !15).max(32)) as isize
}

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// and only adds bookkeeping on atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(chunk(l.size()), SeqCst);
        ALLOCS.fetch_add(1, SeqCst);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(chunk(l.size()), SeqCst);
        ALLOCS.fetch_add(1, SeqCst);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(chunk(l.size()), SeqCst);
        ALLOCS.fetch_sub(1, SeqCst);
        // SAFETY: the caller's pointer and layout, passed on.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(chunk(new) - chunk(l.size()), SeqCst);
        // SAFETY: the caller's pointer, layout and size, passed on.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Idle connections measured (besides the warm-up one).
const N: usize = 1000;

/// The budget: issue 25, item 1 aims at 256 bytes of RSS per idle callback
/// connection, malloc's overhead included, and is not there yet (464
/// bytes here: the stream, the reactor's slot, and the example's two
/// boxed closures and peer string); this keeps what was reached (from
/// 752) from growing back. The reactor's slab is a vector
/// that doubles: its share per connection depends on `N`, and is counted
/// here as it stands at `N` + 1 connections.
const BUDGET: isize = 512;

#[test]
fn an_idle_callback_connection_fits_its_budget() {
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    let echoed = Rc::new(Cell::new(0usize));
    let closed = Rc::new(Cell::new(0usize));
    let marks = Rc::new(Cell::new([(0isize, 0isize); 2]));
    // Written by the client thread: its sockets, allocated before the
    // first mark.
    static STAGE: AtomicUsize = AtomicUsize::new(0);

    let client = std::thread::spawn(move || {
        let port = port_rx.recv().unwrap();
        let mut socks = Vec::with_capacity(N + 1);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let echo = |s: &mut std::net::TcpStream| {
            s.write_all(b"12345678").unwrap();
            let mut got = [0u8; 8];
            s.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"12345678");
        };
        for _ in 0..=N {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            echo(&mut s);
            socks.push(s);
        }
        // Wait until the server has taken its second mark, then close
        // everything (the server then closes each stream and stops).
        while STAGE.load(SeqCst) < 1 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(socks);
    });

    let (e, c, m) = (echoed.clone(), closed.clone(), marks.clone());
    evloop::run(move || {
        let server = Rc::new(Cell::new(None::<TcpListener>));
        let srv = server.clone();
        let listener = TcpListener::bind("127.0.0.1:0", move |conn| {
            let stream = conn.expect("accepted");
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let writer = stream.clone();
            let e = e.clone();
            let m = m.clone();
            stream.on_data(move |bytes| {
                if !writer.write(bytes) {
                    writer.pause();
                    let w = writer.clone();
                    writer.on_drain(move || w.resume());
                }
                e.set(e.get() + 1);
                let mark = (LIVE.load(SeqCst), ALLOCS.load(SeqCst));
                let mut ms = m.get();
                if e.get() == 1 {
                    ms[0] = mark;
                } else if e.get() == N + 1 {
                    ms[1] = mark;
                    STAGE.store(1, SeqCst);
                }
                m.set(ms);
            });
            stream.on_error(|e| panic!("connection error: {e}"));
            let c = c.clone();
            let srv = srv.clone();
            stream.on_close(move |_| {
                assert!(!peer.is_empty());
                c.set(c.get() + 1);
                if c.get() == N + 1 {
                    if let Some(s) = srv.take() {
                        s.close();
                    }
                }
            });
        })
        .expect("bind");
        port_tx.send(listener.local_addr().port()).unwrap();
        server.set(Some(listener));
    })
    .expect("the loop ran");
    client.join().unwrap();

    assert_eq!(echoed.get(), N + 1);
    assert_eq!(closed.get(), N + 1);
    let [(b0, a0), (b1, a1)] = marks.get();
    let bytes = (b1 - b0) / N as isize;
    let allocs = (a1 - a0) as f64 / N as f64;
    eprintln!(
        "idle callback connection: {bytes} heap bytes (glibc chunks), {allocs:.2} allocations, over {N}"
    );
    assert!(
        bytes <= BUDGET,
        "an idle connection takes {bytes} bytes, over the budget of {BUDGET}"
    );
}
