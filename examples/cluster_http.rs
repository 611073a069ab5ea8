//! `http_hello` across N processes sharing one port: Node's `cluster`.
//!
//! `cargo run --release --example cluster_http [ADDR] [WORKERS]` (default
//! 127.0.0.1:8080 and one worker per core), then
//! `wrk -t1 -c100 -d10s http://127.0.0.1:8080/`. Ctrl-C or `kill -TERM`
//! stops every process; kill one worker (`kill -9 PID`) and the primary
//! starts another.
//!
//! The same executable is the primary and the workers: `main` checks
//! whether it was started as a worker (`worker_entry()`), and a worker
//! serves the listening socket it inherited (see `evloop::process::cluster`
//! for how the port is shared, restarts and shutdown).

#[path = "common/http_conn.rs"]
mod http_conn;

use std::cell::RefCell;
use std::rc::Rc;

use evloop::process::{worker_entry, Cluster, ClusterEvent, ClusterWorker};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    if worker_entry().as_deref() == Some("http") {
        return worker();
    }
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let workers = match args.next() {
        Some(n) => n.parse()?,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    evloop::run(move || {
        let cluster = match Cluster::start(&addr, "http", workers) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cannot start the cluster on {addr}: {e}");
                std::process::exit(1);
            }
        };
        println!(
            "cluster_http on http://{}/ with {workers} workers (primary pid {})",
            cluster.local_addr(),
            std::process::id()
        );
        cluster.on_event(|e| match e {
            ClusterEvent::Started { index, pid } => println!("worker {index} started: pid {pid}"),
            ClusterEvent::Exited { index, pid, status } => {
                println!("worker {index} (pid {pid:?}) exited: {status:?}")
            }
            ClusterEvent::Restarting { index, delay } => {
                println!("worker {index} restarts in {delay:?}")
            }
            ClusterEvent::ShuttingDown => println!("shutting down"),
            ClusterEvent::Stopped => println!("all workers stopped"),
            _ => {}
        });
    })?;
    Ok(())
}

/// A worker: `http_hello` on the shared socket; on shutdown, stop
/// accepting and end the open connections (each finishes its writes).
fn worker() -> Result<(), Box<dyn std::error::Error>> {
    evloop::run(|| {
        let open: Rc<RefCell<slab::Slab<evloop::net::Stream>>> = Rc::default();
        let o = open.clone();
        let worker = ClusterWorker::listen(move |conn| {
            let Ok(stream) = conn else { return };
            http_conn::serve(&stream);
            let key = o.borrow_mut().insert(stream.clone());
            let o = o.clone();
            stream.on_close(move |_| {
                o.borrow_mut().try_remove(key);
            });
        });
        match worker {
            Ok(w) => {
                w.on_shutdown(move || {
                    let streams: Vec<_> = open.borrow().iter().map(|(_, s)| s.clone()).collect();
                    for s in streams {
                        s.end();
                    }
                });
            }
            Err(e) => {
                eprintln!("worker {}: {e}", std::process::id());
                std::process::exit(1);
            }
        }
    })?;
    Ok(())
}
