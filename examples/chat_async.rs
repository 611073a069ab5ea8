//! An async broadcast chat (issue 19): every line a client sends reaches
//! all the other clients. Each connection is split with `into_split`: one
//! task reads the client, and a writer task owns the write half and sends
//! what the other clients' readers queued in its outbox. Dropping the
//! write half at the end shuts its side down, so a leaving client reads
//! EOF.
//!
//! `cargo run --example chat_async` runs the server and three bot clients
//! in one loop and ends by itself; `tests/task_split.rs` runs the same code.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use evloop::task::net::{OwnedWriteHalf, TcpListener, TcpStream};

/// One client's queue of lines to send, drained by its writer task.
#[derive(Default)]
struct Outbox {
    queue: RefCell<VecDeque<Rc<[u8]>>>,
    waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
}

impl Outbox {
    fn push(&self, line: Rc<[u8]>) {
        self.queue.borrow_mut().push_back(line);
        self.wake();
    }

    fn close(&self) {
        self.closed.set(true);
        self.wake();
    }

    fn wake(&self) {
        let w = self.waker.borrow_mut().take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// The next line to send; `None` once closed and drained.
    async fn next(&self) -> Option<Rc<[u8]>> {
        poll_fn(|cx| {
            if let Some(line) = self.queue.borrow_mut().pop_front() {
                Poll::Ready(Some(line))
            } else if self.closed.get() {
                Poll::Ready(None)
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// The clients in the room: their number and outbox.
type Room = Rc<RefCell<Vec<(usize, Rc<Outbox>)>>>;

/// Serves chat clients on `listener` until `max_clients` clients have
/// connected and left (a demo that ends by itself; a real server loops
/// forever). Each client is greeted with `welcome <n>` once it is in the
/// room; each line it sends goes to the others as `<n>: <line>`.
pub async fn serve(listener: TcpListener, max_clients: usize) -> io::Result<()> {
    let room: Room = Rc::default();
    let mut sessions = Vec::new();
    for id in 0..max_clients {
        let (conn, _) = listener.accept().await?;
        sessions.push(evloop::spawn(session(id, conn, room.clone())));
    }
    for s in sessions {
        // A session's errors end only that session; a panic is reported.
        s.await.map_err(io::Error::other)?;
    }
    Ok(())
}

async fn session(id: usize, conn: TcpStream, room: Room) {
    let (mut rd, wr) = conn.into_split();
    let outbox = Rc::new(Outbox::default());
    outbox.push(format!("welcome {id}\n").into_bytes().into());
    room.borrow_mut().push((id, outbox.clone()));
    let writer = evloop::spawn(write_out(wr, outbox.clone()));

    let mut buf = [0; 4096];
    let mut line = Vec::new();
    // Until EOF or an error: either way the client is gone.
    while let Ok(n @ 1..) = rd.read(&mut buf).await {
        for &b in &buf[..n] {
            line.push(b);
            if b == b'\n' {
                broadcast(&room, id, &line);
                line.clear();
            }
        }
    }
    room.borrow_mut().retain(|(i, _)| *i != id);
    outbox.close();
    let _ = writer.await;
}

/// Sends the outbox's lines until it closes; then drops the write half,
/// which shuts the writing side down: the client reads EOF.
async fn write_out(mut wr: OwnedWriteHalf, outbox: Rc<Outbox>) {
    while let Some(line) = outbox.next().await {
        if wr.write_all(&line).await.is_err() {
            break;
        }
    }
}

fn broadcast(room: &Room, from: usize, line: &[u8]) {
    let mut msg = format!("{from}: ").into_bytes();
    msg.extend_from_slice(line);
    // One allocation shared by every outbox.
    let msg: Rc<[u8]> = msg.into();
    for (id, outbox) in room.borrow().iter() {
        if *id != from {
            outbox.push(msg.clone());
        }
    }
}

/// A client reading whole lines.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects to the chat at `addr` and waits for its greeting.
    pub async fn join(addr: SocketAddr) -> io::Result<Client> {
        let mut c = Client {
            stream: TcpStream::connect(addr).await?,
            buf: Vec::new(),
        };
        c.next_line().await?;
        Ok(c)
    }

    /// The next line without its `\n`; `None` at EOF.
    pub async fn next_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..i]).into_owned()));
            }
            let mut chunk = [0; 1024];
            match self.stream.read(&mut chunk).await? {
                0 => return Ok(None),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// `n` bots join, each says hello, reads the others' `n - 1` hellos,
/// leaves, and reads to EOF. Returns what each bot received.
pub async fn run_bots(addr: SocketAddr, n: usize) -> io::Result<Vec<Vec<String>>> {
    let mut bots = Vec::new();
    // One after the other: each is in the room once greeted, so every
    // hello below reaches all the bots.
    for _ in 0..n {
        bots.push(Client::join(addr).await?);
    }
    for (i, bot) in bots.iter_mut().enumerate() {
        bot.stream
            .write_all(format!("hello from bot {i}\n").as_bytes())
            .await?;
    }
    let mut heard = Vec::new();
    for bot in &mut bots {
        let mut lines = Vec::new();
        for _ in 1..n {
            match bot.next_line().await? {
                Some(l) => lines.push(l),
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
        bot.stream.shutdown().await?;
        // The server's writer drops its half after our EOF: we read EOF.
        if let Some(extra) = bot.next_line().await? {
            return Err(io::Error::other(format!("unexpected line {extra:?}")));
        }
        heard.push(lines);
    }
    Ok(heard)
}

fn main() -> io::Result<()> {
    evloop::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = evloop::spawn(async move { serve(listener, 3).await.map_err(Rc::new) });
        for (i, lines) in run_bots(addr, 3).await?.iter().enumerate() {
            println!("bot {i} heard {lines:?}");
        }
        server
            .await
            .map_err(io::Error::other)?
            .map_err(|e| io::Error::new(e.kind(), e.to_string()))
    })
    .map_err(io::Error::other)?
}
