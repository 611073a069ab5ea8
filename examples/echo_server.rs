//! A TCP echo server in callback style.
//!
//! `cargo run --example echo_server [ADDR]` (default 127.0.0.1:7000), then
//! in another terminal: `nc 127.0.0.1 7000` and type; every line comes back.
//! Ctrl-C stops it.

use evloop::net::TcpListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    evloop::run(move || {
        let server = TcpListener::bind(&addr, |conn| {
            let stream = match conn {
                Ok(s) => s,
                Err(e) => return eprintln!("accept failed: {e}"),
            };
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            println!("{peer} connected");
            let writer = stream.clone();
            stream.on_data(move |bytes| {
                // Backpressure: if the peer reads slower than it sends,
                // stop reading until our queued echo has drained.
                if !writer.write(bytes) {
                    writer.pause();
                    let w = writer.clone();
                    writer.on_drain(move || w.resume());
                }
            });
            stream.on_error(|e| eprintln!("connection error: {e}"));
            stream.on_close(move |_| println!("{peer} disconnected"));
        });
        match server {
            Ok(s) => println!(
                "echo server on {} (try: nc {} {})",
                s.local_addr(),
                s.local_addr().ip(),
                s.local_addr().port()
            ),
            Err(e) => eprintln!("cannot listen on {addr}: {e}"),
        }
    })?;
    Ok(())
}
