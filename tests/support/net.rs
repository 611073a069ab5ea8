//! Peers and probes on plain (blocking) std sockets, outside any loop.

use std::time::Duration;

/// Whether a client the server never wrote to is still connected
/// (`Some(true)`: accepted and held), or was closed by the server
/// (`Some(false)`: EOF or reset); `None` if it unexpectedly got data.
pub fn still_connected(c: &std::net::TcpStream) -> Option<bool> {
    use std::io::{ErrorKind, Read};
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    match (&*c).read(&mut b) {
        Ok(0) => Some(false),
        Ok(_) => None,
        Err(e) if e.kind() == ErrorKind::WouldBlock => Some(true),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(false),
        Err(e) => panic!("client read: {e}"),
    }
}

/// Waits (up to `within`) until the server process `child` answers on
/// 127.0.0.1:`port`. False if it exited first (the port was taken) or never
/// answered. A probe that connected to itself (TCP simultaneous open: the
/// port is in the ephemeral range and the kernel can pick it as the source
/// port) proves nothing; nor does one answered while our server is exiting
/// because another process holds the port.
pub fn wait_listening(child: &mut std::process::Child, port: u16, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(probe) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let self_connect = probe.local_addr().ok() == probe.peer_addr().ok();
            if !self_connect && matches!(child.try_wait(), Ok(None)) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A loopback echo server on its own OS thread (blocking std sockets), so
/// that round trips measured from a loop do not depend on that loop. Each
/// connection is served by one thread; the server thread exits with the
/// test process.
pub fn echo_thread_server() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}
