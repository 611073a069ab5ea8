//! The idle-loop subject of the scaling benchmark
//! (`benches/servers/scale.sh`): `examples/echo_server.rs`'s callback echo,
//! without its per-connection logging, plus one far timer (an hour away), so
//! that the loop holds a pending timer while every connection is idle. A
//! loop that computes its poll timeout from the timer heap must then sleep
//! in `epoll_wait` until I/O or that deadline: zero wakeups while idle.
//!
//! `cargo run --release --example idle_echo [ADDR]` (default
//! 127.0.0.1:7010).

use std::time::Duration;

use evloop::net::TcpListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7010".into());
    evloop::run(move || {
        // The far timer: it keeps the loop alive and must not wake it.
        let _far = evloop::set_timeout(Duration::from_secs(3600), || {
            eprintln!("idle_echo: the far timer fired (an hour passed)")
        });
        let server = TcpListener::bind(&addr, |conn| {
            let Ok(stream) = conn else { return };
            let writer = stream.clone();
            stream.on_data(move |bytes| {
                if !writer.write(bytes) {
                    writer.pause();
                    let w = writer.clone();
                    writer.on_drain(move || w.resume());
                }
            });
            stream.on_error(|_| {});
        });
        match server {
            Ok(s) => eprintln!("idle_echo on {} (one timer, 1 h away)", s.local_addr()),
            Err(e) => eprintln!("cannot listen on {addr}: {e}"),
        }
    })?;
    Ok(())
}
