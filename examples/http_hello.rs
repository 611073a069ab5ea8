//! HTTP/1.1 "Hello, World!" in callback style, with keep-alive and
//! pipelining: one loop thread, one `Stream` per connection.
//!
//! `cargo run --release --example http_hello [ADDR]` (or `PORT=8080`;
//! default 127.0.0.1:8080), then `curl http://127.0.0.1:8080/` or load it
//! with `wrk -t1 -c100 -d10s http://127.0.0.1:8080/`.
//! `bash benches/servers/run.sh` measures it against raw mio and tokio.
//!
//! The request framing is the benchmark servers' own (`http_common.rs`),
//! so every server in the comparison does exactly the same work.

#[path = "../benches/servers/http_common.rs"]
mod http_common;

use std::cell::RefCell;
use std::rc::Rc;

use evloop::net::TcpListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok().map(|p| format!("127.0.0.1:{p}")))
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    evloop::run(move || {
        let server = TcpListener::bind(&addr, |conn| {
            let Ok(stream) = conn else { return };
            let _ = stream.set_nodelay(true);
            // Bytes of a request head not complete yet, and the responses
            // of one read, reused across reads.
            let pending = Rc::new(RefCell::new(Vec::new()));
            let out = RefCell::new(Vec::new());
            let s = stream.clone();
            stream.on_data(move |bytes| {
                let mut pending = pending.borrow_mut();
                let mut out = out.borrow_mut();
                out.clear();
                let parsed = if pending.is_empty() {
                    let p = http_common::answer(bytes, &mut out);
                    pending.extend_from_slice(&bytes[p.consumed..]);
                    p
                } else {
                    pending.extend_from_slice(bytes);
                    let p = http_common::answer(&pending, &mut out);
                    pending.drain(..p.consumed);
                    p
                };
                if !out.is_empty() {
                    s.write(&out);
                }
                if parsed.close {
                    s.end();
                } else if pending.len() > http_common::MAX_HEAD {
                    s.destroy();
                }
            });
        });
        match server {
            Ok(s) => println!("http_hello on http://{}/", s.local_addr()),
            Err(e) => eprintln!("cannot listen on {addr}: {e}"),
        }
    })?;
    Ok(())
}
