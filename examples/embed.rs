//! Embedding: another loop drives evloop, as a GUI toolkit or another
//! runtime would (libuv's `uv_backend_fd` + `UV_RUN_NOWAIT`).
//!
//! The "host" here is a plain `mio::Poll` that knows nothing about evloop.
//! It watches evloop's backend fd (readable when evloop has I/O to
//! dispatch), sleeps at most `backend_timeout()` (evloop's next timer), and
//! calls `run_nowait()` whenever either happens. Meanwhile the host does its
//! own work (here: counting its own wake-ups).
//!
//! `cargo run --example embed`

use std::os::unix::net::UnixStream;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let el = evloop::EventLoop::new()?;
    let (mut peer, ours) = UnixStream::pair()?;
    ours.set_nonblocking(true)?;

    // Work on evloop: a few timers and an I/O watch.
    let _watch = {
        let _g = el.enter();
        for ms in [5u64, 20, 40] {
            let _ = evloop::set_timeout(Duration::from_millis(ms), move || {
                println!("evloop: {ms} ms timer")
            });
        }
        let mut reader = ours.try_clone()?;
        let w = evloop::watch(&ours, evloop::Interest::READABLE, move |_| {
            let mut buf = [0u8; 32];
            while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
                if n == 0 {
                    break;
                }
                println!("evloop: read {:?}", String::from_utf8_lossy(&buf[..n]));
            }
        })?;
        w.unref(); // the socket alone should not keep evloop alive
        let _ = evloop::set_timeout(Duration::from_millis(10), move || {
            std::io::Write::write_all(&mut peer, b"ping").unwrap();
        });
        w
    };

    // The host loop.
    let mut host = Poll::new()?;
    const EVLOOP: Token = Token(0);
    let backend = el.backend_fd();
    host.registry()
        .register(&mut SourceFd(&backend), EVLOOP, Interest::READABLE)?;
    let mut events = Events::with_capacity(16);
    let mut wakeups = 0;
    while el.is_alive() {
        let timeout = el.backend_timeout();
        host.poll(&mut events, timeout)?;
        wakeups += 1;
        for e in events.iter() {
            if e.token() == EVLOOP {
                println!("host: evloop's backend fd {backend} is readable");
            }
        }
        // One non-blocking evloop iteration: due timers, ready I/O.
        let turn = el.run_nowait()?;
        if turn.callbacks() > 0 {
            println!("host: evloop ran {} callbacks", turn.callbacks());
        }
    }
    println!("host: evloop has nothing left; host woke {wakeups} times");
    Ok(())
}
