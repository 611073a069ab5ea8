//! `cat` through the loop: standard input to standard output, with
//! backpressure (reading pauses while the output queue is full).
//!
//! Try it:
//!   cat big_file | cargo run --release --example cat | wc -c
//!   cargo run --release --example cat < big_file > copy
//!   cargo run --example cat            # type lines; Ctrl-D ends
//!
//! Pipes are watched by the reactor, a file on stdin is pumped by a helper
//! thread, a terminal is reopened non-blocking; see `evloop::stdio`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let result = std::rc::Rc::new(std::cell::RefCell::new(None::<std::io::Error>));
    let r = result.clone();
    evloop::run(move || {
        let (input, output) = match (evloop::stdio::stdin(), evloop::stdio::stdout()) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => {
                *r.borrow_mut() = Some(e);
                return;
            }
        };
        let (out, inp) = (output.clone(), input.clone());
        input.on_data(move |bytes| {
            if !out.write(bytes) {
                inp.pause();
                let inp = inp.clone();
                out.on_drain(move || inp.resume());
            }
        });
        let out = output.clone();
        input.on_end(move || out.end());
        // If the output closes first (`| head`), stop reading too.
        let inp = input.clone();
        output.on_close(move |_| inp.destroy());
        let r2 = r.clone();
        output.on_error(move |e| {
            // A closed pipe downstream (`| head`) ends the copy quietly.
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                *r2.borrow_mut() = Some(e);
            }
        });
    })?;
    let failed = result.borrow_mut().take();
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
