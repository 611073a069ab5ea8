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

use common::{fail, Config, RETRY_DELAY};
use evloop::fs;
use evloop::net::{promises as net, Stream};
use evloop::promise::{delay, Promise, Rejection};

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
                let c = config.clone();
                attempt(1, config.clone())
                    .or_else(move |why| {
                        println!("attempt 1 failed: {why}; retrying in 100 ms");
                        delay(RETRY_DELAY).and_then(move |()| attempt(2, c))
                    })
                    .or_else(|why| Err(Rejection::msg(format!("no reply after 2 attempts: {why}"))))
                    .and_then(move |reply| save(&config, reply))
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
fn attempt(n: u32, config: Rc<Config>) -> Promise<Vec<u8>> {
    let server = config.server;
    net::connect_addr(server)
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
fn save(config: &Config, reply: Vec<u8>) -> Promise<()> {
    let (output, len) = (config.output.clone(), reply.len());
    fs::promises::write_file(&config.output, reply)
        .or_else(|e| Err(Rejection::msg(format!("cannot write output: {e}"))))
        .then(move |()| println!("wrote {len} bytes to {output}"))
}
