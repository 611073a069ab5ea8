//! Step through a small program one loop iteration at a time, and watch the
//! loop's state change between iterations.
//!
//! `cargo run --example step` runs to the end, printing each step.
//! `cargo run --example step -- --wait` waits for Enter before each step, so
//! you can read along or switch to another terminal and poke the program
//! (`nc 127.0.0.1 <port>` and type a line: the echo shows up in a later
//! step's poll phase).
//!
//! With a debugger: `rust-gdb --args target/debug/examples/step`, then
//! `break evloop::event_loop::Inner::run_check` (or `run_timers`,
//! `run_pending`, `poll`, `run_closing`, `checkpoint`), `run`, and `bt` /
//! `finish` / `next` from there; or break on any closure below by its line.
//!
//! The program: two timers, an interval that stops itself, an immediate,
//! `next_tick` and a microtask, a promise chain, a job on the thread pool,
//! and a TCP echo server that a client in the same program talks to. Each
//! callback prints the phase it runs in (`evloop::current_phase()`).

use std::cell::Cell;
use std::io::BufRead;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{self, TcpListener};
use evloop::promise::delay;
use evloop::{current_phase, EventLoop, Turn};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let wait = std::env::args().any(|a| a == "--wait");
    let el = EventLoop::new()?;

    println!("== step 0: the main script (run_main) ==");
    el.run_main(program)?;
    show_state(&el);

    let mut step = 1;
    while el.is_alive() {
        if wait {
            println!("-- press Enter for step {step} --");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
        }
        println!("\n== step {step}: run_once() ==");
        let turn = el.run_once()?;
        show_turn(&turn);
        show_state(&el);
        step += 1;
    }
    println!(
        "\nnothing keeps the loop alive: the program is over after {} iterations",
        el.iterations()
    );
    Ok(())
}

/// Prints what happened, from inside a callback, with the phase it runs in.
fn say(what: &str) {
    println!("   [{:?}] {what}", current_phase());
}

fn program() {
    say("main: schedules everything");
    evloop::set_timeout(Duration::from_millis(20), || say("timer: 20 ms"));
    evloop::set_timeout(Duration::from_millis(5), || {
        say("timer: 5 ms; queues an immediate and a next_tick");
        evloop::set_immediate(|| say("immediate queued by the 5 ms timer"));
        evloop::next_tick(|| say("next_tick queued by the 5 ms timer (runs right after it)"));
    });
    let ticks = Rc::new(Cell::new(0));
    let interval: Rc<Cell<Option<evloop::Interval>>> = Rc::new(Cell::new(None));
    let i2 = interval.clone();
    interval.set(Some(evloop::set_interval(
        Duration::from_millis(8),
        move || {
            ticks.set(ticks.get() + 1);
            say(&format!("interval: tick {}", ticks.get()));
            if ticks.get() == 2 {
                if let Some(i) = i2.take() {
                    i.clear();
                }
            }
        },
    )));
    evloop::set_immediate(|| say("immediate queued by main"));
    evloop::queue_microtask(|| say("microtask queued by main"));
    evloop::next_tick(|| say("next_tick queued by main (before any microtask)"));
    delay(Duration::from_millis(12))
        .then(|()| say("promise: delay(12 ms) fulfilled; its reaction is a microtask"));
    evloop::queue_work(
        || std::thread::sleep(Duration::from_millis(3)), // on a pool thread
        |_| say("pool job done: its callback runs in the pending phase"),
    );
    // An echo server and a client: readiness in the poll phase.
    let server = TcpListener::bind("127.0.0.1:0", |conn| {
        let Ok(s) = conn else { return };
        say("server: accepted a connection");
        let s2 = s.clone();
        s.on_data(move |b| {
            say(&format!(
                "server: got {:?}, echoes it",
                String::from_utf8_lossy(b)
            ));
            s2.write(b);
        });
    })
    .expect("listen on loopback");
    let addr = server.local_addr();
    say(&format!("main: echo server on {addr}"));
    net::connect(addr, move |r| {
        let c = r.expect("connect");
        say("client: connected, sends \"hi\"");
        c.write(b"hi");
        let c2 = c.clone();
        let server = server.clone();
        c.on_data(move |b| {
            say(&format!(
                "client: got {:?} back; closes",
                String::from_utf8_lossy(b)
            ));
            c2.end();
            server.close();
        });
    });
}

fn show_turn(t: &Turn) {
    println!(
        "   ran: {} timers, {} pending, {} I/O, {} immediates, {} closes, {} microtasks/ticks",
        t.timers, t.pending, t.io, t.immediates, t.closes, t.microtasks
    );
}

/// The loop between iterations: its counters, then each active handle.
fn show_state(el: &EventLoop) {
    println!("   state: {el:?}");
    match el.backend_timeout() {
        Some(d) => println!("   the next poll may block for {d:?}"),
        None => println!("   the next poll may block indefinitely"),
    }
    for h in el.active_handles() {
        println!("     {h}");
    }
}
