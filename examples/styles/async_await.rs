//! The style-triplet job with `async`/`await`: read a config, ask a
//! server, retry once after a delay, write the reply to a file; every step
//! can fail. `callbacks.rs` and `promises.rs` do the same job with the same
//! output.
//!
//! ```sh
//! cargo run --example styles_server -- 127.0.0.1:7100 --drop-odd &
//! printf 'server = 127.0.0.1:7100\nrequest = hello\noutput = reply.txt\n' > job.conf
//! cargo run --example styles_async_await -- job.conf
//! ```
//!
//! The job reads top to bottom like blocking code: `?` passes each error
//! up, the retry is a `match` with a `sleep().await` in it, and reading
//! until the end is a `loop`. What it hides is where the task waits:
//! every `.await` is a point where the loop runs other callbacks first.

#[path = "common.rs"]
mod common;

use common::{deadline_message, fail, Config, RETRY_DELAY};
use evloop::abort::AbortSignal;
use evloop::fs::promises as fs;
use evloop::task::{net::TcpStream, sleep};

fn main() {
    let path = common::config_path();
    match evloop::block_on(job(path)) {
        Ok(Ok(())) => {}
        Ok(Err(why)) => fail(why),
        Err(e) => fail(format!("the loop: {e}")),
    }
    std::process::exit(common::exit_code());
}

async fn job(path: String) -> Result<(), String> {
    let text = fs::read_to_string(&path)
        .await
        .map_err(|e| format!("cannot read config: {e}"))?;
    let config = common::parse(&path, &text)?;
    println!(
        "config: ask {} for {:?}, write the reply to {}",
        config.server, config.request, config.output
    );
    // The deadline: the rest of the job races it. When it fires, the
    // job's future is dropped where it waits, and with it the socket or
    // the retry timer it was waiting on.
    let deadline = AbortSignal::timeout(config.deadline);
    match deadline.race(ask_and_save(&config)).await {
        Ok(done) => done,
        Err(_aborted) => Err(deadline_message(&config)),
    }
}

/// Two attempts, then the reply written to the output file.
async fn ask_and_save(config: &Config) -> Result<(), String> {
    let reply = match attempt(1, config).await {
        Ok(reply) => reply,
        Err(why) => {
            println!("attempt 1 failed: {why}; retrying in 100 ms");
            sleep(RETRY_DELAY).await;
            attempt(2, config)
                .await
                .map_err(|why| format!("no reply after 2 attempts: {why}"))?
        }
    };
    let len = reply.len();
    fs::write_file(&config.output, reply)
        .await
        .map_err(|e| format!("cannot write output: {e}"))?;
    println!("wrote {len} bytes to {}", config.output);
    Ok(())
}

/// One try: connect, send the request line, read the reply until the
/// server closes.
async fn attempt(n: u32, config: &Config) -> Result<Vec<u8>, String> {
    let server = config.server;
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| format!("connect {server}: {e}"))?;
    println!("attempt {n}: connected to {server}");
    let request = format!("{}\n", config.request);
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let got = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        if got == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..got]);
    }
    if reply.is_empty() {
        return Err("receive: the server closed the connection without a reply".into());
    }
    println!("attempt {n}: got {} bytes", reply.len());
    Ok(reply)
}
