//! `cat` in async/await style: the twin of `cat.rs`. Standard input to
//! standard output, one chunk at a time; each write finishes before the next
//! read, which is the backpressure.
//!
//!   cat big_file | cargo run --release --example cat_async | wc -c

use std::io::ErrorKind;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    evloop::block_on(async {
        let mut input = evloop::task::stdin()?;
        let mut output = evloop::task::stdout()?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                return output.end();
            }
            match output.write_all(&buf[..n]).await {
                // A reader that went away (`| head`) ends the copy quietly.
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
                r => r?,
            }
        }
    })??;
    Ok(())
}
