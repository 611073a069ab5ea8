//! `read_chunk` (reads into a pooled buffer, none held while waiting),
//! `readable` and `try_read` on the async streams.

use std::cell::Cell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use evloop::task::chunk::{pooled, CHUNK_SIZE};
use evloop::task::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use evloop::task::{sleep, timeout, yield_now};
use evloop::{block_on, spawn};

/// A connected pair: (client, server side).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (conn, _) = listener.accept().await.unwrap();
    (client, conn)
}

#[test]
fn read_chunk_echoes_and_ends_with_an_empty_chunk() {
    block_on(async {
        let (mut client, mut conn) = pair().await;
        let server = spawn(async move {
            loop {
                let chunk = conn.read_chunk().await.unwrap();
                if chunk.is_empty() {
                    break;
                }
                conn.write_all(&chunk).await.unwrap();
            }
        });
        let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut back = Vec::new();
        // Write it all from one task while reading the echo here.
        let (mut rd, mut wr) = client.split();
        let send = async {
            wr.write_all(&msg).await.unwrap();
            wr.shutdown().await.unwrap();
        };
        let recv = async {
            loop {
                let chunk = rd.read_chunk().await.unwrap();
                assert!(chunk.len() <= CHUNK_SIZE);
                if chunk.is_empty() {
                    break;
                }
                back.extend_from_slice(&chunk);
            }
        };
        futures::future::join(send, recv).await;
        assert_eq!(back, msg);
        server.await.unwrap();
    })
    .unwrap();
}

#[test]
fn idle_readers_hold_no_buffer() {
    block_on(async {
        // Warm the pool so that it holds at least one buffer.
        let (mut a, mut b) = pair().await;
        a.write_all(b"x").await.unwrap();
        drop(b.read_chunk().await.unwrap());
        let free = pooled();
        assert!(free >= 1);
        let mut clients = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..50 {
            let (client, mut conn) = pair().await;
            clients.push(client);
            readers.push(spawn(async move {
                let chunk = conn.read_chunk().await.unwrap();
                chunk.to_vec()
            }));
        }
        // Every reader has polled and is waiting for data: each buffer
        // leased for a read that would block went back to the pool.
        yield_now().await;
        assert_eq!(pooled(), free);
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(format!("{i}").as_bytes()).await.unwrap();
        }
        for (i, r) in readers.into_iter().enumerate() {
            assert_eq!(r.await.unwrap(), format!("{i}").into_bytes());
        }
    })
    .unwrap();
}

#[test]
fn a_chunk_held_across_await_is_not_reused() {
    block_on(async {
        let (mut c1, mut s1) = pair().await;
        let (mut c2, mut s2) = pair().await;
        c1.write_all(b"first").await.unwrap();
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let holder = spawn(async move {
            let chunk = s1.read_chunk().await.unwrap();
            // Hold the chunk while the other task reads twice (sleeping:
            // a `yield_now` loop would starve the loop's I/O, as
            // `while (true) await null` does in JavaScript, and hang when
            // the other task's read has to wait for readiness).
            while !d.get() {
                sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(&chunk[..], b"first");
        });
        let other = spawn(async move {
            c2.write_all(b"second").await.unwrap();
            assert_eq!(&s2.read_chunk().await.unwrap()[..], b"second");
            c2.write_all(b"third!").await.unwrap();
            assert_eq!(&s2.read_chunk().await.unwrap()[..], b"third!");
            done.set(true);
        });
        other.await.unwrap();
        holder.await.unwrap();
    })
    .unwrap();
}

#[test]
fn a_cancelled_read_chunk_loses_nothing() {
    block_on(async {
        let (mut client, mut conn) = pair().await;
        assert!(timeout(Duration::from_millis(10), conn.read_chunk())
            .await
            .is_err());
        client.write_all(b"late").await.unwrap();
        assert_eq!(&conn.read_chunk().await.unwrap()[..], b"late");
    })
    .unwrap();
}

#[test]
fn readable_then_try_read() {
    block_on(async {
        let (mut client, conn) = pair().await;
        let mut buf = [0; 64];
        // Nothing there yet: WouldBlock, and the half is now known drained.
        assert_eq!(
            conn.try_read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert!(timeout(Duration::from_millis(10), conn.readable())
            .await
            .is_err());
        client.write_all(b"hello").await.unwrap();
        let got = loop {
            conn.readable().await.unwrap();
            match conn.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..got], b"hello");
        drop(client);
        let eof = loop {
            conn.readable().await.unwrap();
            match conn.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(eof, 0);
    })
    .unwrap();
}

#[test]
fn unix_streams_and_owned_halves_read_chunks() {
    let path = std::env::temp_dir().join(format!("evloop-{}-chunk.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.clone();
    block_on(async move {
        let listener = UnixListener::bind(&p).unwrap();
        let mut client = UnixStream::connect(&p).await.unwrap();
        let (conn, _) = listener.accept().await.unwrap();
        let (mut rd, _wr) = conn.into_split();
        client.write_all(b"over unix").await.unwrap();
        assert_eq!(&rd.read_chunk().await.unwrap()[..], b"over unix");
        drop(client);
        assert!(rd.read_chunk().await.unwrap().is_empty());
    })
    .unwrap();
    let _ = std::fs::remove_file(&path);
}
