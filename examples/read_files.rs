//! Reading several files at once through the thread pool.
//!
//! Every `fs::read_file` is a job on the loop's pool (regular files are not
//! pollable, so libuv and Node do the same). The loop thread only starts the
//! reads and runs their callbacks; the reads themselves overlap, so they
//! complete in whatever order the pool finishes them, not the order they
//! were started in.
//!
//! ```sh
//! cargo run --example read_files                  # this crate's src/*.rs
//! cargo run --example read_files -- a.txt b.txt   # your own files
//! EVLOOP_THREADPOOL_SIZE=1 cargo run --example read_files   # one at a time
//! ```

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;

use evloop::fs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let mut paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
        for entry in std::fs::read_dir(&src)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "rs") {
                paths.push(path);
            }
        }
        paths.sort();
        println!("no paths given: reading {}/*.rs", src.display());
        println!("(try `cargo run --example read_files -- FILE...`)\n");
    }

    let completed = Rc::new(Cell::new(0usize));
    let failed = Rc::new(Cell::new(0usize));
    let total = Rc::new(Cell::new(0u64));
    let n = paths.len();
    {
        let (completed, failed, total) = (completed.clone(), failed.clone(), total.clone());
        evloop::run(move || {
            for (started, path) in paths.into_iter().enumerate() {
                let (completed, failed, total) = (completed.clone(), failed.clone(), total.clone());
                let shown = path.display().to_string();
                fs::read_file(&path, move |r| {
                    completed.set(completed.get() + 1);
                    let order = format!("#{:<2} done (started #{started:<2})", completed.get());
                    match r {
                        Ok(bytes) => {
                            total.set(total.get() + bytes.len() as u64);
                            println!("{order} {:>8} bytes  {shown}", bytes.len());
                        }
                        Err(e) => {
                            failed.set(failed.get() + 1);
                            println!("{order}    error  {e}");
                        }
                    }
                });
            }
            println!("started {n} reads; the loop thread is free while they run\n");
        })?;
    }
    println!(
        "\n{} files read ({} bytes), {} failed",
        completed.get() - failed.get(),
        total.get(),
        failed.get()
    );
    Ok(())
}
