//! One address argument everywhere (issue 19): every `ToAddrs` form binds
//! and connects in each style (callbacks, promises, async), names resolve
//! on the pool, an unresolvable name fails the same way everywhere, and
//! connect falls back to the next address.

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;

use evloop::net::promises as pnet;
use evloop::net::{connect, TcpListener, UdpSocket};
use evloop::promise::Promise;
use evloop::task::net as anet;

type ConnectCb = Box<dyn FnOnce(std::io::Result<evloop::net::Stream>)>;

const BAD: &str = "no-such-host.invalid";

/// A loopback port that refuses connections (bound, then closed).
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Whether `[::1]` can be bound on this machine.
fn ipv6_loopback() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            println!("skipping the IPv6 forms: [::1] does not bind here ({e})");
            false
        }
    }
}

fn is_not_found(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound && e.to_string().contains(BAD)
}

/// Connects to `addr` with every connect form that names it, in the
/// callback style; returns how many connects succeeded.
fn connect_every_form_cb(addr: SocketAddr, ok: Rc<Cell<usize>>, after: impl Fn() + 'static) {
    let port = addr.port();
    let v4 = addr.is_ipv4();
    let left = Rc::new(Cell::new(0usize));
    let after = Rc::new(after);
    let done = {
        let (left, ok, after) = (left.clone(), ok.clone(), after.clone());
        move |r: std::io::Result<evloop::net::Stream>| {
            r.unwrap().destroy();
            ok.set(ok.get() + 1);
            left.set(left.get() - 1);
            if left.get() == 0 {
                after();
            }
        }
    };
    let go = |f: &dyn Fn(ConnectCb)| {
        left.set(left.get() + 1);
        f(Box::new(done.clone()));
    };
    go(&|cb| connect(addr, cb));
    go(&|cb| connect(addr.to_string(), cb));
    go(&|cb| connect(addr.to_string().as_str(), cb));
    go(&|cb| connect((addr.ip(), port), cb));
    go(&|cb| connect(vec![addr], cb));
    go(&|cb| connect(&[addr][..], cb));
    go(&|cb| connect([addr], cb));
    if v4 {
        // /etc/hosts may give "localhost" only 127.0.0.1: name forms only
        // for the IPv4 listener.
        go(&|cb| connect(format!("localhost:{port}"), cb));
        go(&|cb| connect(("localhost", port), cb));
        go(&|cb| connect(("localhost".to_string(), port), cb));
        go(&|cb| connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), cb));
    }
}

#[test]
fn callback_bind_and_connect_take_every_form() {
    let v6 = ipv6_loopback();
    let ok = Rc::new(Cell::new(0));
    let accepted = Rc::new(Cell::new(0));
    let (o, a) = (ok.clone(), accepted.clone());
    evloop::run(move || {
        let mut listeners = vec![
            TcpListener::bind("127.0.0.1:0", counter(&a)).unwrap(),
            TcpListener::bind("localhost:0", counter(&a)).unwrap(),
            TcpListener::bind(("localhost", 0), counter(&a)).unwrap(),
            TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)), counter(&a)).unwrap(),
            TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0), counter(&a)).unwrap(),
            TcpListener::bind(vec![SocketAddr::from(([127, 0, 0, 1], 0))], counter(&a)).unwrap(),
        ];
        if v6 {
            listeners.push(TcpListener::bind("[::1]:0", counter(&a)).unwrap());
        }
        // The name-bound ones are not listening yet.
        assert_eq!(listeners[1].address(), None);
        assert!(listeners[0].address().is_some());
        for l in listeners {
            let (o, l2) = (o.clone(), l.clone());
            l.on_listening(move |addr| {
                assert!(addr.ip().is_loopback(), "{addr}");
                assert_eq!(l2.address(), Some(addr));
                let l3 = l2.clone();
                connect_every_form_cb(addr, o, move || l3.close());
            });
        }
    })
    .unwrap();
    let per_v4 = 11;
    let expect = 6 * per_v4 + if v6 { 7 } else { 0 };
    assert_eq!(ok.get(), expect);
    assert_eq!(accepted.get(), expect);
}

fn counter(n: &Rc<Cell<usize>>) -> impl FnMut(std::io::Result<evloop::net::Stream>) + 'static {
    let n = n.clone();
    move |c| {
        c.unwrap();
        n.set(n.get() + 1);
    }
}

#[test]
fn promise_connect_takes_every_form() {
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    evloop::run(move || {
        let server = TcpListener::bind("localhost:0", |c| c.unwrap().end()).unwrap();
        let s = server.clone();
        server.on_listening(move |addr| {
            let port = addr.port();
            let all = vec![
                pnet::connect(addr),
                pnet::connect(addr.to_string()),
                pnet::connect(format!("localhost:{port}")),
                pnet::connect(("localhost", port)),
                pnet::connect(vec![closed_port(), addr]),
            ];
            Promise::all(all)
                .then(move |streams| {
                    n2.set(streams.len());
                    streams.iter().for_each(|s| s.destroy());
                    s.close();
                })
                .catch(|e| panic!("{e}"));
        });
    })
    .unwrap();
    assert_eq!(n.get(), 5);
}

#[test]
fn async_bind_and_connect_take_every_form() {
    let v6 = ipv6_loopback();
    evloop::block_on(async move {
        let mut listeners = vec![
            anet::TcpListener::bind("127.0.0.1:0").await?,
            anet::TcpListener::bind("localhost:0").await?,
            anet::TcpListener::bind(("localhost", 0)).await?,
            anet::TcpListener::bind(String::from("localhost:0")).await?,
            anet::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?,
        ];
        if v6 {
            listeners.push(anet::TcpListener::bind("[::1]:0").await?);
        }
        for l in &listeners {
            let addr = l.local_addr()?;
            let port = addr.port();
            let mut clients = vec![
                anet::TcpStream::connect(addr).await?,
                anet::TcpStream::connect(addr.to_string()).await?,
                anet::TcpStream::connect([addr]).await?,
            ];
            if addr.is_ipv4() {
                clients.push(anet::TcpStream::connect(("localhost", port)).await?);
                clients.push(anet::TcpStream::connect(format!("localhost:{port}")).await?);
            }
            for c in clients {
                let (conn, _) = l.accept().await?;
                assert_eq!(conn.peer_addr()?, c.local_addr()?);
            }
        }
        // UDP, each form, a datagram between two of them.
        let a = anet::UdpSocket::bind("localhost:0").await?;
        let b = anet::UdpSocket::bind(("127.0.0.1", 0)).await?;
        let _c = anet::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        b.send_to(b"hi", a.local_addr()?).await?;
        let mut buf = [0; 8];
        let (n, from) = a.recv_from(&mut buf).await?;
        assert_eq!((&buf[..n], from), (&b"hi"[..], b.local_addr()?));
        // A datagram's destination by name, looked up on the pool first.
        let port = a.local_addr()?.port();
        b.send_to(b"by name", ("localhost", port)).await?;
        b.send_to(b"by str", format!("127.0.0.1:{port}")).await?;
        for want in [&b"by name"[..], b"by str"] {
            let (n, _) = a.recv_from(&mut buf).await?;
            assert_eq!(&buf[..n], want);
        }
        let e = b.send_to(b"x", (BAD, port)).await.unwrap_err();
        assert!(is_not_found(&e), "{e}");
        Ok::<_, std::io::Error>(())
    })
    .unwrap()
    .unwrap();
}

#[test]
fn callback_udp_bind_takes_every_form() {
    let got = Rc::new(RefCell::new(vec![]));
    let g = got.clone();
    evloop::run(move || {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let senders = [
            UdpSocket::bind("localhost:0").unwrap(),
            UdpSocket::bind(("localhost", 0)).unwrap(),
            UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap(),
        ];
        // Not bound yet: no address, but sends are queued.
        assert_eq!(
            senders[0].local_addr().unwrap_err().kind(),
            ErrorKind::NotConnected
        );
        for (i, s) in senders.iter().enumerate() {
            s.send_to(&[i as u8], to, |r| assert_eq!(r.unwrap(), 1));
            let s2 = s.clone();
            s.on_listening(move |r| {
                assert!(r.unwrap().ip().is_loopback());
                s2.close();
            });
        }
        let rx2 = rx.clone();
        rx.on_message(move |m, _| {
            g.borrow_mut().push(m[0]);
            if g.borrow().len() == 3 {
                rx2.close();
            }
        });
    })
    .unwrap();
    got.borrow_mut().sort();
    assert_eq!(*got.borrow(), [0, 1, 2]);
}

/// The callback socket's per-datagram calls (`send_to`, `connect`) are
/// synchronous and ordered, so they take the literal forms only; a name
/// is `InvalidInput` pointing at `dns::lookup`.
#[test]
fn callback_udp_send_to_and_connect_take_the_literal_forms() {
    let got = Rc::new(RefCell::new(vec![]));
    let errors = Rc::new(RefCell::new(vec![]));
    let (g, errs) = (got.clone(), errors.clone());
    evloop::run(move || {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"a", format!("127.0.0.1:{port}"), |r| {
            assert_eq!(r.unwrap(), 1)
        });
        tx.send_to(b"b", (Ipv4Addr::LOCALHOST, port), |r| {
            assert_eq!(r.unwrap(), 1)
        });
        let e = errs.clone();
        tx.send_to(b"x", ("localhost", port), move |r| {
            e.borrow_mut().push(r.unwrap_err())
        });
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        errs.borrow_mut()
            .push(c.connect(("localhost", port)).unwrap_err());
        c.connect(("127.0.0.1", port)).unwrap();
        c.send(b"c", |r| assert_eq!(r.unwrap(), 1));
        let (rx2, tx2, c2) = (rx.clone(), tx.clone(), c.clone());
        rx.on_message(move |m, _| {
            g.borrow_mut().push(m.to_vec());
            if g.borrow().len() == 3 {
                rx2.close();
                tx2.close();
                c2.close();
            }
        });
    })
    .unwrap();
    got.borrow_mut().sort();
    assert_eq!(*got.borrow(), [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    for e in errors.borrow().iter() {
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("dns::lookup"), "{e}");
    }
    assert_eq!(errors.borrow().len(), 2);
}

#[test]
fn an_unresolvable_name_fails_alike_in_every_style() {
    let errors = Rc::new(RefCell::new(Vec::<String>::new()));
    let e = errors.clone();
    evloop::run(move || {
        let push = |e: &Rc<RefCell<Vec<String>>>, what: &str, err: &std::io::Error| {
            assert!(is_not_found(err), "{what}: {err:?}");
            e.borrow_mut().push(what.to_string());
        };
        let e1 = e.clone();
        connect((BAD, 80), move |r| {
            push(&e1, "callback connect", &r.unwrap_err())
        });
        let e2 = e.clone();
        pnet::connect(format!("{BAD}:80"))
            .then(drop)
            .catch(move |r| {
                let err = std::io::Error::from(r);
                push(&e2, "promise connect", &err);
            });
        let e3 = e.clone();
        let l = TcpListener::bind((BAD, 0), move |r| {
            push(&e3, "callback bind", &r.unwrap_err())
        })
        .unwrap();
        l.on_listening(|_| panic!("never listens"));
        let e4 = e.clone();
        let u = UdpSocket::bind(format!("{BAD}:0")).unwrap();
        u.on_listening(move |r| push(&e4, "callback udp bind", &r.unwrap_err()));
        let e5 = e.clone();
        evloop::spawn(async move {
            let err = anet::TcpStream::connect((BAD, 1)).await.unwrap_err();
            push(&e5, "async connect", &err);
            let err = anet::TcpListener::bind((BAD, 0)).await.unwrap_err();
            push(&e5, "async bind", &err);
            let err = anet::UdpSocket::bind((BAD, 0)).await.unwrap_err();
            push(&e5, "async udp bind", &err);
        });
    })
    .unwrap();
    let mut got = errors.borrow().clone();
    got.sort();
    assert_eq!(
        got,
        [
            "async bind",
            "async connect",
            "async udp bind",
            "callback bind",
            "callback connect",
            "callback udp bind",
            "promise connect"
        ]
    );
}

#[test]
fn bad_input_is_invalid_input_in_every_style() {
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    evloop::run(move || {
        let empty: Vec<SocketAddr> = vec![];
        for bad in ["no port", "::1:80", ":80", "localhost:99999"] {
            let e = TcpListener::bind(bad, |_| {}).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}");
            assert_eq!(
                UdpSocket::bind(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
        }
        let e = TcpListener::bind(empty.clone(), |_| {}).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let n3 = n2.clone();
        connect(empty.clone(), move |r| {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput);
            n3.set(n3.get() + 1);
        });
        let n4 = n2.clone();
        evloop::spawn(async move {
            let e = anet::TcpStream::connect(empty).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            let e = anet::TcpListener::bind("nope").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            n4.set(n4.get() + 1);
        });
    })
    .unwrap();
    assert_eq!(n.get(), 2);
}

#[test]
fn connect_falls_back_to_the_next_address_in_every_style() {
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    evloop::run(move || {
        // Closes itself after the three connections of the three styles.
        let accepted = Rc::new(Cell::new(0));
        let me: Rc<RefCell<Option<TcpListener>>> = Rc::default();
        let m = me.clone();
        let server = TcpListener::bind("127.0.0.1:0", move |c| {
            c.unwrap().end();
            accepted.set(accepted.get() + 1);
            if accepted.get() == 3 {
                m.borrow().as_ref().unwrap().close();
            }
        })
        .unwrap();
        *me.borrow_mut() = Some(server.clone());
        let list = vec![closed_port(), server.local_addr()];
        let (n3, want) = (n2.clone(), server.local_addr());
        connect(list.clone(), move |r| {
            let s = r.unwrap();
            assert_eq!(s.peer_addr().unwrap(), want);
            s.destroy();
            n3.set(n3.get() + 1);
        });
        let n4 = n2.clone();
        pnet::connect(list.clone()).then(move |s| {
            s.destroy();
            n4.set(n4.get() + 1)
        });
        let n5 = n2.clone();
        evloop::spawn(async move {
            anet::TcpStream::connect(list).await.unwrap();
            n5.set(n5.get() + 1);
            // Every address refusing: the last one's error.
            let e = anet::TcpStream::connect([closed_port(), closed_port()])
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        });
    })
    .unwrap();
    assert_eq!(n.get(), 3);
}

#[test]
fn a_listener_closed_while_resolving_never_listens() {
    evloop::run(|| {
        let l = TcpListener::bind("localhost:0", |_| panic!("no connection")).unwrap();
        l.on_listening(|_| panic!("closed first"));
        l.close();
        let u = UdpSocket::bind("localhost:0").unwrap();
        u.on_listening(|_| panic!("closed first"));
        u.close();
    })
    .unwrap();
}
