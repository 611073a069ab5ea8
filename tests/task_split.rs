//! Split async streams (`split`, `into_split`, `reunite`) and the copies
//! of `evloop::task::io` (`copy`, `copy_bidirectional`), issue 19.

mod support;

#[allow(dead_code)] // its `main` is the example's
#[path = "../examples/chat_async.rs"]
mod chat;

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use evloop::task::io::{copy, copy_bidirectional};
use evloop::task::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use evloop::task::sleep;
use evloop::{block_on, spawn};

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn sock_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("evloop-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// A connected TCP pair: (client, server side).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(localhost()).await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Polls two futures in one task until both are done.
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Reads to EOF.
async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0; 8192];
    loop {
        match s.read(&mut buf).await.unwrap() {
            0 => return out,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn borrowed_halves_read_parked_while_the_write_half_writes() {
    block_on(async {
        let (mut client, mut server) = tcp_pair().await;
        let echo = spawn(async move {
            let (mut r, mut w) = server.split();
            copy(&mut r, &mut w).await.unwrap()
        });
        let (mut r, mut w) = client.split();
        let parked = Rc::new(Cell::new(0));
        let got = Rc::new(Cell::new(0u8));
        let reader = async {
            for i in 0..50u8 {
                let mut buf = [0; 4];
                // The first poll of each read finds nothing: parked.
                {
                    let mut read = pin!(r.read_exact(&mut buf));
                    let parked_now =
                        poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx).is_pending())).await;
                    if parked_now {
                        parked.set(parked.get() + 1);
                    }
                    read.await.unwrap();
                }
                assert_eq!(buf, [i; 4]);
                got.set(i + 1);
            }
        };
        let writer = async {
            for i in 0..50u8 {
                while got.get() < i {
                    // Lets the loop poll (`yield_now` would not).
                    sleep(Duration::ZERO).await;
                }
                w.write_all(&[i; 4]).await.unwrap();
            }
            w.shutdown().await.unwrap();
        };
        join(reader, writer).await;
        assert_eq!(parked.get(), 50, "every read waited for the writer");
        assert_eq!(read_to_end(&mut client).await, b"");
        assert_eq!(echo.await.unwrap(), 200);
    })
    .unwrap();
}

#[test]
fn owned_halves_ping_pong_in_two_tasks() {
    block_on(async {
        let (client, mut server) = tcp_pair().await;
        let (mut rd, mut wr) = client.into_split();
        let got = Rc::new(Cell::new(0u32));
        let got2 = got.clone();
        let reader = spawn(async move {
            for i in 0..100u32 {
                let mut buf = [0; 4];
                rd.read_exact(&mut buf).await.unwrap();
                assert_eq!(u32::from_be_bytes(buf), i * 2);
                got2.set(i + 1);
            }
            Rc::new(Cell::new(Some(rd)))
        });
        let writer = spawn(async move {
            for i in 0..100u32 {
                // Written while the reader task is parked in its read.
                while got.get() < i {
                    // Lets the loop poll (`yield_now` would not).
                    sleep(Duration::ZERO).await;
                }
                wr.write_all(&i.to_be_bytes()).await.unwrap();
            }
            Rc::new(Cell::new(Some(wr)))
        });
        // The server doubles every number.
        for _ in 0..100 {
            let mut buf = [0; 4];
            server.read_exact(&mut buf).await.unwrap();
            let n = u32::from_be_bytes(buf) * 2;
            server.write_all(&n.to_be_bytes()).await.unwrap();
        }
        let rd = reader.await.unwrap().take().unwrap();
        let wr = writer.await.unwrap().take().unwrap();
        let client = rd.reunite(wr).unwrap();
        assert!(client.peer_addr().is_ok());
    })
    .unwrap();
}

#[test]
fn reunite_mismatched_halves_gives_both_back() {
    block_on(async {
        let (a, _a_peer) = tcp_pair().await;
        let (b, _b_peer) = tcp_pair().await;
        let (ar, aw) = a.into_split();
        let (br, bw) = b.into_split();
        let err = ar.reunite(bw).unwrap_err();
        assert!(err.to_string().contains("not from the same stream"));
        let (ar, bw) = (err.0, err.1);
        let a = aw.reunite(ar).unwrap();
        let b = br.reunite(bw).unwrap();
        assert_ne!(a.local_addr().unwrap(), b.local_addr().unwrap());
    })
    .unwrap();
}

#[test]
fn dropping_the_owned_write_half_shuts_the_writing_side_down() {
    block_on(async {
        let (client, mut server) = tcp_pair().await;
        let (mut rd, wr) = client.into_split();
        drop(wr);
        // The peer reads EOF at once, though the read half lives on...
        assert_eq!(read_to_end(&mut server).await, b"");
        // ...and still reads.
        server.write_all(b"still here").await.unwrap();
        let mut buf = [0; 10];
        rd.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still here");

        // `forget` drops it without the shutdown: no EOF until the read
        // half goes too.
        let (client, mut server) = tcp_pair().await;
        let (rd, wr) = client.into_split();
        wr.forget();
        let mut buf = [0; 1];
        let r = evloop::task::timeout(std::time::Duration::from_millis(30), server.read(&mut buf))
            .await;
        assert!(r.is_err(), "no EOF while the read half is alive");
        drop(rd);
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);

        // A borrowed write half does nothing on drop.
        let (mut client, mut server) = tcp_pair().await;
        {
            let (_r, _w) = client.split();
        }
        client.write_all(b"x").await.unwrap();
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"x");
    })
    .unwrap();
}

#[test]
fn copy_one_mib_through_a_loopback_pair_exactly() {
    block_on(async {
        let (mut client, server) = tcp_pair().await;
        let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        // Server: echo with copy (bounded: one 16 KiB buffer).
        let echo = spawn(async move {
            let (mut r, mut w) = server.into_split();
            copy(&mut r, &mut w).await.unwrap()
        });
        let (mut cr, mut cw) = client.split();
        let send = data.clone();
        let (sent, back) = join(
            async {
                let mut src: &[u8] = &send;
                // Copy from a plain reader too: a slice through the trait.
                let n = copy(&mut SliceReader(&mut src), &mut cw).await.unwrap();
                cw.shutdown().await.unwrap();
                n
            },
            async {
                let mut out = Vec::new();
                let n = copy(&mut cr, &mut VecWriter(&mut out)).await.unwrap();
                assert_eq!(n as usize, out.len());
                out
            },
        )
        .await;
        assert_eq!(sent, 1 << 20);
        assert!(back == data, "the bytes came back unchanged, in order");
        assert_eq!(echo.await.unwrap(), 1 << 20);
        let _ = &mut client;
    })
    .unwrap();
}

/// A byte slice as an `AsyncRead`.
struct SliceReader<'a, 'b>(&'a mut &'b [u8]);

impl evloop::task::io::AsyncRead for SliceReader<'_, '_> {
    fn poll_read(
        &mut self,
        _: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        *self.0 = &self.0[n..];
        Poll::Ready(Ok(n))
    }
}

/// A `Vec` as an `AsyncWrite`.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl evloop::task::io::AsyncWrite for VecWriter<'_> {
    fn poll_write(
        &mut self,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_shutdown(&mut self, _: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn copy_bidirectional_proxies_an_echo_with_byte_counts() {
    block_on(async {
        let echo = TcpListener::bind(localhost()).await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        let echo_task = spawn(async move {
            let (conn, _) = echo.accept().await.unwrap();
            let (mut r, mut w) = conn.into_split();
            copy(&mut r, &mut w).await.unwrap()
            // `w` dropped: EOF back through the proxy.
        });
        let proxy = TcpListener::bind(localhost()).await.unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let proxied = spawn(async move {
            let (mut inbound, _) = proxy.accept().await.unwrap();
            let mut outbound = TcpStream::connect(echo_addr).await.unwrap();
            copy_bidirectional(&mut inbound, &mut outbound)
                .await
                .unwrap()
        });
        let mut client = TcpStream::connect(proxy_addr).await.unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let (mut cr, mut cw) = client.split();
        let (_, back) = join(
            async {
                cw.write_all(&data).await.unwrap();
                cw.shutdown().await.unwrap();
            },
            async {
                let mut out = Vec::new();
                let mut buf = [0; 8192];
                loop {
                    match cr.read(&mut buf).await.unwrap() {
                        0 => return out,
                        n => out.extend_from_slice(&buf[..n]),
                    }
                }
            },
        )
        .await;
        assert!(back == data);
        assert_eq!(proxied.await.unwrap(), (200_000, 200_000));
        assert_eq!(echo_task.await.unwrap(), 200_000);
    })
    .unwrap();
}

#[test]
fn copy_bidirectional_reports_an_error() {
    block_on(async {
        let (mut a, a_peer) = tcp_pair().await;
        let (mut b, b_peer) = tcp_pair().await;
        // A reset on one side: RST from a peer that closes with unread
        // data is a read error (ECONNRESET) on `a`.
        let mut a_peer = a_peer;
        a.write_all(b"unread").await.unwrap();
        let mut one = [0; 1];
        a_peer.read_exact(&mut one).await.unwrap();
        drop(a_peer); // five bytes unread: RST
        let r = copy_bidirectional(&mut a, &mut b).await;
        let e = r.unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::NotConnected
            ),
            "{e:?}"
        );
        drop(b_peer);
    })
    .unwrap();
}

#[test]
fn unix_stream_splits_too() {
    let path = sock_path("split");
    let p = path.clone();
    block_on(async move {
        let listener = UnixListener::bind(&p).unwrap();
        let client = UnixStream::connect(&p).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let (mut rd, mut wr) = client.into_split();
        let reader = spawn(async move {
            let mut buf = [0; 3];
            rd.read_exact(&mut buf).await.unwrap();
            (buf, Rc::new(Cell::new(Some(rd))))
        });
        wr.write_all(b"abc").await.unwrap();
        let mut buf = [0; 3];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(&buf).await.unwrap();
        let (got, rd) = reader.await.unwrap();
        let rd = rd.take().unwrap();
        assert_eq!(&got, b"abc");
        let mut client = rd.reunite(wr).unwrap();
        let (mut r, mut w) = client.split();
        w.write_all(b"xy").await.unwrap();
        let mut two = [0; 2];
        server.read_exact(&mut two).await.unwrap();
        server.write_all(&two).await.unwrap();
        r.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"xy");
    })
    .unwrap();
    let _ = std::fs::remove_file(path);
}

#[test]
fn broadcast_chat_with_three_clients_ends_by_itself() {
    let heard = block_on(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move { chat::serve(listener, 3).await.map_err(Rc::new) });
        let heard = chat::run_bots(addr, 3).await.unwrap();
        server.await.unwrap().unwrap();
        heard
    })
    .unwrap();
    assert_eq!(
        heard,
        vec![
            vec!["1: hello from bot 1", "2: hello from bot 2"],
            vec!["0: hello from bot 0", "2: hello from bot 2"],
            vec!["0: hello from bot 0", "1: hello from bot 1"],
        ]
    );
}

#[cfg(feature = "futures-io")]
#[test]
fn futures_io_traits_on_the_halves() {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    block_on(async {
        let (client, server) = tcp_pair().await;
        let echo = spawn(async move {
            let (mut r, mut w) = server.into_split();
            let n = futures::io::copy(&mut r, &mut w).await.unwrap();
            w.close().await.unwrap();
            n
        });
        let (mut rd, mut wr) = client.into_split();
        let writer = spawn(async move {
            AsyncWriteExt::write_all(&mut wr, b"through futures-io")
                .await
                .unwrap();
            wr.close().await.unwrap();
        });
        let mut back = Vec::new();
        AsyncReadExt::read_to_end(&mut rd, &mut back).await.unwrap();
        assert_eq!(back, b"through futures-io");
        writer.await.unwrap();
        assert_eq!(echo.await.unwrap(), 18);
    })
    .unwrap();
}
