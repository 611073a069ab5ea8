//! One HTTP/1.1 "Hello, World!" connection in callback style, with
//! keep-alive and pipelining: shared by `http_hello` (one process) and
//! `cluster_http` (N processes).

use std::cell::RefCell;
use std::rc::Rc;

use evloop::net::Stream;

#[path = "../../benches/servers/http_common.rs"]
mod http_common;

/// Answers every request on `stream` until the client closes.
pub fn serve(stream: &Stream) {
    let _ = stream.set_nodelay(true);
    // A client that resets its connection is this connection's business
    // only: without an error listener the error would be uncaught and stop
    // the server (as in Node).
    stream.on_error(|e| log::debug!("connection error: {e}"));
    // Bytes of a request head not complete yet, and the responses of one
    // read, reused across reads.
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
}
