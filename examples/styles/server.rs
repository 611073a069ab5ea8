//! The server the style examples talk to: it reads one request line per
//! connection, answers `echo: <line>` and closes.
//!
//! `cargo run --example styles_server -- [ADDR] [--drop-odd] [--silent]`
//! (default address `127.0.0.1:7100`; port 0 picks a free one). It prints
//! `listening on ADDR` once it is ready. With `--drop-odd` it closes the
//! 1st, 3rd, 5th... connection after reading the request, without
//! answering, so that each client run fails once and then succeeds on its
//! retry. With `--silent` it reads the request and never answers nor
//! closes (for the clients' deadline). It runs until killed (Ctrl-C).

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;

use evloop::net::TcpListener;

fn main() {
    let mut addr = "127.0.0.1:7100".to_string();
    let mut drop_odd = false;
    let mut silent = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--drop-odd" => drop_odd = true,
            "--silent" => silent = true,
            other => addr = other.to_string(),
        }
    }
    let r = evloop::run(move || {
        let count = Rc::new(Cell::new(0u64));
        let server = TcpListener::bind(&addr, move |conn| {
            let stream = match conn {
                Ok(s) => s,
                Err(e) => return eprintln!("styles_server: accept: {e}"),
            };
            count.set(count.get() + 1);
            let answer = !(drop_odd && count.get() % 2 == 1);
            let line = Rc::new(RefCell::new(Vec::new()));
            let s = stream.clone();
            stream.on_data(move |bytes| {
                let mut line = line.borrow_mut();
                line.extend_from_slice(bytes);
                if let Some(end) = line.iter().position(|&b| b == b'\n') {
                    if silent {
                        return; // keep the connection open, say nothing
                    }
                    if answer {
                        let request = String::from_utf8_lossy(&line[..end]);
                        s.write(format!("echo: {request}\n").as_bytes());
                    }
                    s.end();
                }
            });
            stream.on_error(|e| eprintln!("styles_server: {e}"));
        });
        match server {
            Ok(server) => {
                println!("listening on {}", server.local_addr());
                let _ = std::io::stdout().flush();
            }
            Err(e) => {
                eprintln!("styles_server: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
    });
    if let Err(e) = r {
        eprintln!("styles_server: {e}");
        std::process::exit(1);
    }
}
