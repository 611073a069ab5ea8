//! TCP echo round trips on loopback: evloop's async sockets
//! (`evloop::task::net`) side by side with tokio's current-thread runtime
//! (with a `LocalSet`), in the same run.
//!
//! `cargo bench --bench echo` (add `-- --quick` to divide the counts by
//! 10). Each round trip is a 64-byte `write_all` then `read_exact` from the
//! client; the server task echoes what it reads. Server and clients are
//! tasks on one thread in both runtimes. Two rounds are run (evloop then
//! tokio, twice) and both are printed; read the ratios, since the machine is
//! shared and noisy. A watchdog ends the process after 55 s.
//!
//! Besides wall time, the CPU time of the thread (user + system, from
//! `CLOCK_THREAD_CPUTIME_ID`) is measured over the same span: client,
//! server and the runtime all run on that one thread in both runtimes, so
//! it is the work each does per round trip, and unlike wall time it does
//! not count the time another process had the CPU. `--only evloop|tokio`
//! runs one runtime (to profile or count syscalls).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

const MSG: usize = 64;

#[path = "common/cpu.rs"]
mod cpu;
use cpu::thread_cpu;

/// Wall and CPU time of a timed span.
#[derive(Clone, Copy)]
struct Spent {
    wall: Duration,
    cpu: Duration,
}

/// Starts timing; `.elapsed()` on the result ends it.
struct Clock(Instant, Duration);

impl Clock {
    fn start() -> Self {
        Clock(Instant::now(), thread_cpu())
    }
    fn elapsed(&self) -> Spent {
        Spent {
            wall: self.0.elapsed(),
            cpu: thread_cpu().saturating_sub(self.1),
        }
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// evloop: `conns` connections, each doing `trips` round trips at once.
fn evloop_echo(conns: usize, trips: usize) -> Spent {
    use evloop::task::net::{TcpListener, TcpStream};
    evloop::block_on(async move {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = evloop::spawn(async move {
            for _ in 0..conns {
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.set_nodelay(true).unwrap();
                evloop::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = conn.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        conn.write_all(&buf[..n]).await.unwrap();
                    }
                });
            }
        });
        // Connect everything first, so only round trips are timed.
        let mut clients = Vec::with_capacity(conns);
        for _ in 0..conns {
            let c = TcpStream::connect(addr).await.unwrap();
            c.set_nodelay(true).unwrap();
            clients.push(c);
        }
        server.await.unwrap();
        let start = Clock::start();
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                evloop::spawn(async move {
                    let out = [7u8; MSG];
                    let mut back = [0u8; MSG];
                    for _ in 0..trips {
                        c.write_all(&out).await.unwrap();
                        c.read_exact(&mut back).await.unwrap();
                    }
                    assert_eq!(back, out);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
    .unwrap()
}

/// tokio current_thread + `LocalSet`: the same workload.
fn tokio_echo(conns: usize, trips: usize) -> Spent {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::task::spawn_local(async move {
            for _ in 0..conns {
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.set_nodelay(true).unwrap();
                tokio::task::spawn_local(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = conn.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        conn.write_all(&buf[..n]).await.unwrap();
                    }
                });
            }
        });
        let mut clients = Vec::with_capacity(conns);
        for _ in 0..conns {
            let c = TcpStream::connect(addr).await.unwrap();
            c.set_nodelay(true).unwrap();
            clients.push(c);
        }
        server.await.unwrap();
        let start = Clock::start();
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                tokio::task::spawn_local(async move {
                    let out = [7u8; MSG];
                    let mut back = [0u8; MSG];
                    for _ in 0..trips {
                        c.write_all(&out).await.unwrap();
                        c.read_exact(&mut back).await.unwrap();
                    }
                    assert_eq!(back, out);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let div = if quick { 10 } else { 1 };
    // `--only evloop|tokio`: one runtime alone (to profile or count syscalls).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let runs = |who: &str| only.as_deref().map_or(true, |o| o == who);
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(55));
        eprintln!("echo bench: over the 55 s budget, aborting");
        std::process::exit(1);
    });

    let workloads: [(&str, usize, usize); 2] = [
        ("1 conn, sequential", 1, 50_000 / div),
        ("100 conns, concurrent", 100, 2_000 / div),
    ];
    println!("TCP echo, 64-byte round trips on loopback (write_all + read_exact)");
    println!("ns per round trip: wall time, and the thread's CPU time (user + system)");
    // A runtime left out by `--only` shows as 0 (and its ratios as inf or 0).
    let nan = Spent {
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    for round in 1..=2 {
        println!("\nround {round}");
        println!(
            "{:<24} {:>7} {:>11} {:>10} {:>11} {:>10} {:>11} {:>10}",
            "workload", "trips", "evloop wall", "cpu", "tokio wall", "cpu", "tok/ev wall", "cpu"
        );
        for &(name, conns, trips) in &workloads {
            let total = (conns * trips) as f64;
            let ev = if runs("evloop") {
                evloop_echo(conns, trips)
            } else {
                nan
            };
            let tk = if runs("tokio") {
                tokio_echo(conns, trips)
            } else {
                nan
            };
            let per = |d: Duration| d.as_secs_f64() * 1e9 / total;
            println!(
                "{:<24} {:>7} {:>11.0} {:>10.0} {:>11.0} {:>10.0} {:>10.2}x {:>9.2}x",
                name,
                conns * trips,
                per(ev.wall),
                per(ev.cpu),
                per(tk.wall),
                per(tk.cpu),
                per(tk.wall) / per(ev.wall),
                per(tk.cpu) / per(ev.cpu),
            );
        }
    }
}
