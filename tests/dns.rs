//! `dns::lookup` (Node's `dns.lookup`) in the three styles.

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use evloop::abort::{is_abort_error, AbortController};
use evloop::dns::{self, Family, LookupOptions};

const V4: LookupOptions = LookupOptions {
    family: Family::Ipv4,
    all: false,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn localhost_family_4_is_127_0_0_1_in_every_style() {
    let got = Rc::new(RefCell::new(vec![]));
    let g = got.clone();
    evloop::run(move || {
        let g1 = g.clone();
        dns::lookup("localhost", V4, move |r| g1.borrow_mut().push(r.unwrap()));
        let g2 = g.clone();
        dns::promises::lookup("localhost", V4).then(move |r| g2.borrow_mut().push(r));
        let g3 = g.clone();
        evloop::spawn(async move {
            let r = dns::promises::lookup("localhost", V4).await.unwrap();
            g3.borrow_mut().push(r);
        });
    })
    .unwrap();
    assert_eq!(*got.borrow(), vec![vec![ip("127.0.0.1")]; 3]);
}

#[test]
fn all_gives_every_address_of_the_family() {
    let got = evloop::block_on(async {
        let all = dns::promises::lookup("localhost", LookupOptions::all()).await;
        let v4 = LookupOptions { all: true, ..V4 };
        (
            all.unwrap(),
            dns::promises::lookup("localhost", v4).await.unwrap(),
        )
    })
    .unwrap();
    assert!(
        !got.0.is_empty() && got.0.iter().all(IpAddr::is_loopback),
        "{got:?}"
    );
    assert!(got.1.contains(&ip("127.0.0.1")) && got.1.iter().all(IpAddr::is_ipv4));
}

#[test]
fn ip_literals_and_bad_names() {
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    evloop::run(move || {
        // A literal is answered as it is, whatever the family (as Node).
        let v6 = LookupOptions {
            family: Family::Ipv6,
            all: false,
        };
        let a = n2.clone();
        dns::lookup("127.0.0.1", v6, move |r| {
            assert_eq!(r.unwrap(), [ip("127.0.0.1")]);
            a.set(a.get() + 1);
        });
        let b = n2.clone();
        dns::lookup("no-such-host.invalid", LookupOptions::default(), move |r| {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
            b.set(b.get() + 1);
        });
        let c = n2.clone();
        evloop::spawn(async move {
            let e = dns::promises::lookup("no-such-host.invalid", V4)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            let e = dns::promises::lookup("", V4).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            c.set(c.get() + 1);
        });
    })
    .unwrap();
    assert_eq!(n.get(), 3);
}

#[test]
fn lookups_are_abortable() {
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    evloop::run(move || {
        let c = AbortController::new();
        let a = n2.clone();
        dns::lookup_with_signal("localhost", V4, &c.signal(), move |r| {
            assert!(is_abort_error(&r.unwrap_err()));
            a.set(a.get() + 1);
        });
        let b = n2.clone();
        dns::promises::lookup_with_signal("localhost", V4, &c.signal())
            .then(|_| unreachable!())
            .catch(move |e| {
                assert!(e.is_aborted());
                b.set(b.get() + 1);
            });
        c.abort(None);
        // Not aborted: answers as usual.
        let c2 = AbortController::new();
        let d = n2.clone();
        dns::lookup_with_signal("localhost", V4, &c2.signal(), move |r| {
            assert_eq!(r.unwrap(), [ip("127.0.0.1")]);
            d.set(d.get() + 1);
        });
    })
    .unwrap();
    assert_eq!(n.get(), 3);
}

/// Resolution runs on the pool: the loop keeps turning meanwhile (a timer
/// keeps firing while lookups are in flight), and every callback runs on
/// the loop thread. (That the blocking call itself runs on a pool thread
/// is checked by the unit test `dns::tests::resolution_runs_on_the_pool`.)
#[test]
fn the_loop_keeps_turning_during_lookups() {
    let loop_thread = std::thread::current().id();
    let ticks = Rc::new(Cell::new(0u32));
    let answers = Rc::new(Cell::new(0u32));
    let (t, a) = (ticks.clone(), answers.clone());
    evloop::run(move || {
        let t2 = t.clone();
        let interval = Rc::new(evloop::set_interval(Duration::from_millis(1), move || {
            t2.set(t2.get() + 1)
        }));
        for _ in 0..16 {
            let (a, interval) = (a.clone(), interval.clone());
            dns::lookup("localhost", LookupOptions::all(), move |r| {
                assert!(r.is_ok());
                assert_eq!(std::thread::current().id(), loop_thread);
                a.set(a.get() + 1);
                if a.get() == 16 {
                    interval.clear();
                }
            });
        }
    })
    .unwrap();
    assert_eq!(answers.get(), 16);
}
