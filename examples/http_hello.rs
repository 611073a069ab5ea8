//! HTTP/1.1 "Hello, World!" in callback style, with keep-alive and
//! pipelining: one loop thread, one `Stream` per connection.
//!
//! `cargo run --release --example http_hello [ADDR]` (or `PORT=8080`;
//! default 127.0.0.1:8080), then `curl http://127.0.0.1:8080/` or load it
//! with `wrk -t1 -c100 -d10s http://127.0.0.1:8080/`.
//! `bash benches/servers/run.sh` measures it against raw mio and tokio.
//!
//! The connection handling is in `common/http_conn.rs` (shared with
//! `cluster_http`); the request framing is the benchmark servers' own
//! (`http_common.rs`), so every server in the comparison does exactly the
//! same work.

#[path = "common/http_conn.rs"]
mod http_conn;

use evloop::net::TcpListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok().map(|p| format!("127.0.0.1:{p}")))
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    evloop::run(move || {
        let server = TcpListener::bind(&addr, |conn| {
            if let Ok(stream) = conn {
                http_conn::serve(&stream);
            }
        });
        match server {
            Ok(s) => println!("http_hello on http://{}/", s.local_addr()),
            Err(e) => eprintln!("cannot listen on {addr}: {e}"),
        }
    })?;
    Ok(())
}
