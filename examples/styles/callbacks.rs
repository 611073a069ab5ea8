//! The style-triplet job with callbacks: read a config, ask a server,
//! retry once after a delay, write the reply to a file; every step can
//! fail. `promises.rs` and `async_await.rs` do the same job with the same
//! output.
//!
//! ```sh
//! cargo run --example styles_server -- 127.0.0.1:7100 --drop-odd &
//! printf 'server = 127.0.0.1:7100\nrequest = hello\noutput = reply.txt\n' > job.conf
//! cargo run --example styles_callbacks -- job.conf
//! ```
//!
//! Each operation takes the function to call with its result. A sequence
//! is a nesting of callbacks, an error must be handled where it arrives
//! (there is no `?` across a callback), a retry needs the step written as a
//! function that calls back, and a step that can end in several ways (data,
//! end, error) must make sure it calls back exactly once.

#[path = "common.rs"]
mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::{deadline_message, fail, Config, RETRY_DELAY};
use evloop::abort::AbortSignal;
use evloop::{fs, net};

type Done = Box<dyn FnOnce(Result<Vec<u8>, String>)>;

fn main() {
    let path = common::config_path();
    let r = evloop::run(move || {
        fs::read_to_string(path.clone(), move |text| {
            let text = match text {
                Ok(text) => text,
                Err(e) => return fail(format!("cannot read config: {e}")),
            };
            let config = match common::parse(&path, &text) {
                Ok(config) => Rc::new(config),
                Err(e) => return fail(e),
            };
            println!(
                "config: ask {} for {:?}, write the reply to {}",
                config.server, config.request, config.output
            );
            // The deadline: every operation below takes it. When it fires,
            // the one in flight stops (the connection is destroyed, the
            // retry timer cleared) and its callback gets the abort error:
            // each callback checks the signal before anything else.
            let deadline = AbortSignal::timeout(config.deadline);
            let (c, d) = (config.clone(), deadline.clone());
            attempt(1, config, &deadline, move |reply| {
                if d.aborted() {
                    return fail(deadline_message(&c));
                }
                match reply {
                    Ok(reply) => save(&c, reply, &d),
                    Err(why) => {
                        println!("attempt 1 failed: {why}; retrying in 100 ms");
                        // Aborted while waiting to retry: the timer is
                        // cleared, so this listener reports it (removed
                        // when the retry starts).
                        let c2 = c.clone();
                        let waiting = Rc::new(d.on_abort(move |_| fail(deadline_message(&c2))));
                        let signal = d.clone();
                        evloop::set_timeout_with_signal(RETRY_DELAY, &d, move || {
                            waiting.remove();
                            let d = signal.clone();
                            attempt(2, c.clone(), &signal, move |reply| {
                                if d.aborted() {
                                    return fail(deadline_message(&c));
                                }
                                match reply {
                                    Ok(reply) => save(&c, reply, &d),
                                    Err(why) => fail(format!("no reply after 2 attempts: {why}")),
                                }
                            });
                        });
                    }
                }
            });
        });
    });
    if let Err(e) = r {
        fail(format!("the loop: {e}"));
    }
    std::process::exit(common::exit_code());
}

/// One try: connect, send the request line, read the reply until the
/// server closes. Calls `done` once, with the reply or why it failed.
fn attempt(
    n: u32,
    config: Rc<Config>,
    deadline: &AbortSignal,
    done: impl FnOnce(Result<Vec<u8>, String>) + 'static,
) {
    let server = config.server;
    // The connection is bound to the deadline: an abort destroys it, and
    // its `on_error` below gets the abort error.
    net::connect_with_signal(server, deadline, move |stream| {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => return done(Err(format!("connect {server}: {e}"))),
        };
        println!("attempt {n}: connected to {server}");
        // The write, the error and the end callbacks can each finish the
        // attempt: whichever comes first takes `done`.
        let done: Rc<Cell<Option<Done>>> = Rc::new(Cell::new(Some(Box::new(done))));
        let reply = Rc::new(RefCell::new(Vec::new()));

        let d = done.clone();
        let request = format!("{}\n", config.request);
        stream.write_with(request.as_bytes(), move |sent| {
            if let Err(e) = sent {
                if let Some(done) = d.take() {
                    done(Err(format!("send: {e}")));
                }
            }
        });
        let r = reply.clone();
        stream.on_data(move |chunk| r.borrow_mut().extend_from_slice(chunk));
        let d = done.clone();
        stream.on_error(move |e| {
            if let Some(done) = d.take() {
                done(Err(format!("receive: {e}")));
            }
        });
        stream.on_end(move || {
            let Some(done) = done.take() else { return };
            let reply = reply.take();
            if reply.is_empty() {
                done(Err(
                    "receive: the server closed the connection without a reply".into(),
                ));
            } else {
                println!("attempt {n}: got {} bytes", reply.len());
                done(Ok(reply));
            }
        });
    });
}

/// The last step: write the reply to the output file.
fn save(config: &Rc<Config>, reply: Vec<u8>, deadline: &AbortSignal) {
    let (output, len) = (config.output.clone(), reply.len());
    let (c, d) = (config.clone(), deadline.clone());
    fs::write_file_with_signal(
        &config.output,
        reply,
        deadline,
        move |written| match written {
            Ok(()) => println!("wrote {len} bytes to {output}"),
            Err(_) if d.aborted() => fail(deadline_message(&c)),
            Err(e) => fail(format!("cannot write output: {e}")),
        },
    );
}
