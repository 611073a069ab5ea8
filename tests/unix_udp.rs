//! Unix domain stream sockets and UDP.

mod support;

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::rc::Rc;

use evloop::net::{connect_unix, UdpSocket, UnixListener};

#[test]
fn unix_socket_echo_round_trip() {
    support::init_log();
    let path = std::env::temp_dir().join(format!("evloop-unix-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let p = path.clone();
    evloop::run(move || {
        let server = UnixListener::bind(&p, |conn| {
            let s = conn.unwrap();
            let w = s.clone();
            s.on_data(move |b| {
                w.write(b);
            });
        })
        .unwrap();
        connect_unix(&p, move |r| {
            let s = r.unwrap();
            let g2 = g.clone();
            s.on_data(move |b| g2.borrow_mut().extend_from_slice(b));
            s.on_end(move || server.close());
            s.write(b"over a unix socket");
            s.end();
        });
    })
    .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(&*got.borrow(), b"over a unix socket");
}

#[test]
fn unix_connect_to_a_missing_path_is_not_found() {
    support::init_log();
    let kind = Rc::new(Cell::new(None));
    let k = kind.clone();
    evloop::run(move || {
        connect_unix("/nonexistent/evloop.sock", move |r| {
            k.set(Some(r.unwrap_err().kind()))
        });
    })
    .unwrap();
    assert_eq!(kind.get(), Some(ErrorKind::NotFound));
}

#[test]
fn udp_datagrams_round_trip_with_the_sender_address() {
    support::init_log();
    let log = support::Log::new();
    let l = log.clone();
    evloop::run(move || {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        let client_addr = client.local_addr().unwrap();
        let s2 = server.clone();
        let l2 = l.clone();
        server.on_message(move |msg, from| {
            assert_eq!(from, client_addr);
            l2.push(format!("server got {}", String::from_utf8_lossy(msg)));
            let mut reply = b"re: ".to_vec();
            reply.extend_from_slice(msg);
            s2.send_to(&reply, from, |r| assert!(r.is_ok()));
        });
        let (c2, s3, l3) = (client.clone(), server.clone(), l.clone());
        let n = Rc::new(Cell::new(0));
        client.on_message(move |msg, from| {
            assert_eq!(from, server_addr);
            l3.push(String::from_utf8_lossy(msg).into_owned());
            n.set(n.get() + 1);
            if n.get() == 3 {
                c2.close();
                s3.close();
            }
        });
        for i in 0..3 {
            let l4 = l.clone();
            client.send_to(format!("ping {i}").as_bytes(), server_addr, move |r| {
                assert_eq!(r.unwrap(), 6);
                l4.push(format!("sent {i}"));
            });
        }
    })
    .unwrap();
    let mut got = log.take();
    got.sort();
    assert_eq!(
        got,
        [
            "re: ping 0",
            "re: ping 1",
            "re: ping 2",
            "sent 0",
            "sent 1",
            "sent 2",
            "server got ping 0",
            "server got ping 1",
            "server got ping 2"
        ]
    );
}

#[test]
fn udp_bad_input_is_an_error_not_a_panic() {
    support::init_log();
    evloop::run(|| {
        assert_eq!(
            UdpSocket::bind("nonsense").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let taken = a.local_addr().unwrap().to_string();
        assert_eq!(
            UdpSocket::bind(&taken).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
        // An oversized datagram fails in its callback.
        let big = vec![0u8; 70_000];
        let to = a.local_addr().unwrap();
        let a2 = a.clone();
        a.send_to(&big, to, move |r| {
            assert!(r.is_err());
            a2.close();
        });
        a.close(); // closing twice is fine
    })
    .unwrap();
}
