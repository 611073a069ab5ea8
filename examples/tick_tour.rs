//! A guided tour of one program through the loop's phases.
//!
//! Run it with `cargo run --example tick_tour`, and again with
//! `RUST_LOG=evloop=trace` to see every phase and dispatch. Set a
//! breakpoint in `EventLoop::run_once` (or on any closure below) and step.
//!
//! The loop is driven with `run_once`, one iteration per step, so after each
//! one the tour prints what ran (`Turn`) and what is still active.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use evloop::{
    next_tick, queue_microtask, set_immediate, set_interval, set_timeout, watch, EventLoop,
    Interest,
};

fn main() -> Result<(), evloop::Error> {
    env_logger::init();
    let el = EventLoop::new()?;
    // A step counter so each line says which iteration printed it.
    let step = Rc::new(Cell::new(0u32));
    let say = {
        let step = step.clone();
        move |what: &str| println!("  [iteration {}] {what}", step.get())
    };

    println!("main script, then its next_ticks and microtasks (run_main):");
    el.run_main(|| {
        let s = say.clone();
        let _ = set_timeout(Duration::from_millis(30), move || {
            s("timers: 30 ms timeout")
        });
        let s = say.clone();
        let _ = set_immediate(move || {
            s("check: immediate queued by main");
            let s2 = s.clone();
            let _ = set_immediate(move || {
                s2("check: immediate queued by an immediate (next iteration)")
            });
            let s3 = s.clone();
            next_tick(move || s3("  next_tick right after that immediate"));
        });
        let s = say.clone();
        queue_microtask(move || s("microtask queued by main (after the next_tick)"));
        let s = say.clone();
        next_tick(move || s("next_tick queued by main (first of all)"));

        // An interval that stops itself after three runs.
        let s = say.clone();
        let count = Rc::new(Cell::new(0));
        let slot: Rc<Cell<Option<evloop::Interval>>> = Rc::new(Cell::new(None));
        let slot2 = slot.clone();
        slot.set(Some(set_interval(Duration::from_millis(10), move || {
            count.set(count.get() + 1);
            s(&format!("timers: interval run {}", count.get()));
            if count.get() == 3 {
                if let Some(i) = slot2.take() {
                    i.clear();
                }
            }
        })));

        // I/O: a socket pair; the peer writes after 15 ms.
        let (mut peer, ours) = UnixStream::pair().expect("socketpair");
        ours.set_nonblocking(true).expect("nonblocking");
        let s = say.clone();
        let watch_slot: Rc<Cell<Option<evloop::Watch>>> = Rc::new(Cell::new(None));
        let ws = watch_slot.clone();
        let mut ours_reader = ours.try_clone().expect("clone");
        let w = watch(&ours, Interest::READABLE, move |ready| {
            let mut buf = [0u8; 64];
            // Edge-triggered: read until WouldBlock.
            loop {
                match ours_reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => s(&format!(
                        "poll: read {:?} ({ready:?})",
                        String::from_utf8_lossy(&buf[..n])
                    )),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            let s2 = s.clone();
            let _ =
                set_immediate(move || s2("check: immediate queued from I/O (before any timer)"));
            let s3 = s.clone();
            let _ = set_timeout(Duration::ZERO, move || {
                s3("timers: 0 ms timeout queued from I/O")
            });
            drop(ws.take()); // close the watch: nothing else keeps it
        })
        .expect("watch");
        watch_slot.set(Some(w));
        let s = say.clone();
        let _ = set_timeout(Duration::from_millis(15), move || {
            s("timers: 15 ms timeout; the peer writes \"hello\"");
            peer.write_all(b"hello").expect("write");
            drop(ours);
        });
    })?;
    println!("  loop state: {el:?}");

    println!("  active handles before the loop starts:");
    for h in el.active_handles() {
        println!("    {h}");
    }

    println!("\nthe loop, one run_once() per step:");
    loop {
        step.set(step.get() + 1);
        let turn = el.run_once()?;
        println!(
            "  -> iteration {}: {} timers, {} io, {} immediates, {} microtasks; alive: {}",
            step.get(),
            turn.timers,
            turn.io,
            turn.immediates,
            turn.microtasks,
            turn.alive
        );
        if !turn.alive {
            break;
        }
    }
    println!(
        "\nnothing keeps the loop alive: done after {} iterations",
        el.iterations()
    );
    Ok(())
}
