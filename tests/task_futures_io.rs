//! The `futures-io` traits on evloop's async streams (cargo feature
//! `futures-io`): `futures::io` utilities drive them.
#![cfg(feature = "futures-io")]

use futures::io::{AsyncReadExt, AsyncWriteExt};

use evloop::task::net::{TcpListener, TcpStream};

#[test]
fn futures_io_copy_and_read_to_end_over_evloop_streams() {
    let got = evloop::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Echo with futures::io::copy from the read half to the write half.
        let server = evloop::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = conn.split();
            let n = futures::io::copy(&mut r, &mut w).await.unwrap();
            w.close().await.unwrap();
            n
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut cr, mut cw) = client.split();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        // Write and read at once, so neither side's buffers can fill up.
        let to_send = data.clone();
        let writer = evloop::spawn(async move {
            cw.write_all(&to_send).await.unwrap();
            cw.close().await.unwrap();
        });
        let mut back = Vec::new();
        cr.read_to_end(&mut back).await.unwrap();
        writer.await.unwrap();
        let copied = server.await.unwrap();
        (data, back, copied)
    })
    .unwrap();
    let (data, back, copied) = got;
    assert_eq!(copied, data.len() as u64);
    assert!(back == data, "echoed bytes differ");
}
