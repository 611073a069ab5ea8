//! The style-triplet job with promises: read a config, ask a server,
//! retry once after a delay, write the reply to a file; every step can
//! fail. `callbacks.rs` and `async_await.rs` do the same job with the same
//! output.
//!
//! ```sh
//! cargo run --example styles_server -- 127.0.0.1:7100 --drop-odd &
//! printf 'server = 127.0.0.1:7100\nrequest = hello\noutput = reply.txt\n' > job.conf
//! cargo run --example styles_promises -- job.conf
//! ```
//!
//! Each operation returns a `Promise`; `and_then` chains the next step and
//! a rejection skips every step up to the next `or_else`/`catch`, so the
//! error plumbing is one handler per kind of failure instead of one per
//! callback. Values needed by a later step must be carried along
//! (captured or passed on), and a loop (read until the end) becomes a
//! function that chains a call to itself.

#[path = "common.rs"]
mod common;

use std::rc::Rc;

use common::{deadline_message, fail, Config, RETRY_DELAY};
use evloop::abort::AbortSignal;
use evloop::fs;
use evloop::net::{promises as net, Stream};
use evloop::promise::{delay_with_signal, Promise, Rejection};

fn main() {
    let path = common::config_path();
    let r = evloop::run(move || {
        fs::promises::read_to_string(&path)
            .or_else(|e| Err(Rejection::msg(format!("cannot read config: {e}"))))
            .and_then(move |text| {
                common::parse(&path, &text)
                    .map(Rc::new)
                    .map_err(Rejection::msg)
            })
            .and_then(|config| {
                println!(
                    "config: ask {} for {:?}, write the reply to {}",
                    config.server, config.request, config.output
                );
                // The deadline: every operation below takes it, so when it
                // fires the one in flight rejects with the abort error
                // (the connection is destroyed, the retry timer cleared),
                // and the chain skips to the `catch` at the end.
                let deadline = AbortSignal::timeout(config.deadline);
                let (c, d) = (config.clone(), deadline.clone());
                let (c2, d2) = (config.clone(), deadline.clone());
                let (c3, d3) = (config.clone(), deadline.clone());
                attempt(1, config.clone(), &deadline)
                    .or_else(move |why| {
                        if d.aborted() {
                            return Promise::reject(why);
                        }
                        println!("attempt 1 failed: {why}; retrying in 100 ms");
                        delay_with_signal(RETRY_DELAY, &d).and_then(move |()| attempt(2, c, &d))
                    })
                    .or_else(move |why| {
                        if d2.aborted() {
                            return Err(why);
                        }
                        Err(Rejection::msg(format!("no reply after 2 attempts: {why}")))
                    })
                    .and_then(move |reply| save(&c2, reply, &d3))
                    .or_else(move |why| {
                        if deadline.aborted() {
                            return Err(Rejection::msg(deadline_message(&c3)));
                        }
                        Err(why)
                    })
            })
            .catch(fail);
    });
    if let Err(e) = r {
        fail(format!("the loop: {e}"));
    }
    std::process::exit(common::exit_code());
}

/// One try: connect, send the request line, read the reply until the
/// server closes.
fn attempt(n: u32, config: Rc<Config>, deadline: &AbortSignal) -> Promise<Vec<u8>> {
    let server = config.server;
    // The connection is bound to the deadline: an abort destroys it, and
    // the read or write waiting on it rejects.
    net::connect_with_signal(server, deadline)
        .or_else(move |e| Err(Rejection::msg(format!("connect {server}: {e}"))))
        .and_then(move |stream| {
            println!("attempt {n}: connected to {server}");
            let request = format!("{}\n", config.request);
            net::write(&stream, request.as_bytes())
                .or_else(|e| Err(Rejection::msg(format!("send: {e}"))))
                .and_then(move |()| read_to_end(stream, Vec::new()))
        })
        .and_then(move |reply| {
            if reply.is_empty() {
                return Err(Rejection::msg(
                    "receive: the server closed the connection without a reply",
                ));
            }
            println!("attempt {n}: got {} bytes", reply.len());
            Ok(reply)
        })
}

/// Reads chunks until the peer ends: a loop, written as a chain that
/// extends itself.
fn read_to_end(stream: Stream, mut reply: Vec<u8>) -> Promise<Vec<u8>> {
    net::read(&stream)
        .or_else(|e| Err(Rejection::msg(format!("receive: {e}"))))
        .and_then(move |chunk| match chunk {
            Some(bytes) => {
                reply.extend_from_slice(&bytes);
                read_to_end(stream, reply)
            }
            None => Promise::resolve(reply),
        })
}

/// The last step: write the reply to the output file.
fn save(config: &Config, reply: Vec<u8>, deadline: &AbortSignal) -> Promise<()> {
    let (output, len) = (config.output.clone(), reply.len());
    fs::promises::write_file_with_signal(&config.output, reply, deadline)
        .or_else(|e| Err(Rejection::msg(format!("cannot write output: {e}"))))
        .then(move |()| println!("wrote {len} bytes to {output}"))
}
