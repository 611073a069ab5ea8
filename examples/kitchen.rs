//! The seeds' kitchen, run for real: one chef (the loop thread) juggles
//! things in the oven (timers) and deliveries at the door (readiness on a
//! pipe), hands chopping to assistant chefs (CPU work on the thread pool)
//! and orders pies from a second kitchen (a worker process, the same
//! executable with its own loop).
//!
//! `cargo run --example kitchen` prints who does what when, on one clock,
//! and ends by itself after about half a second, when nothing is left to
//! wait for. `+12ms` is the time since the kitchen opened; the pids and
//! thread names are the real ones.
//!
//! What to look for: the chef never waits for anything except in one
//! place, when he chops the parsley himself; the soup timer then rings
//! late, because a chef who is busy cannot hear it. The assistants chop at
//! the same time as each other and as the chef (other threads, other
//! cores), but what they chopped only reaches the chef when he is free.
//! Kitchen 2 is another process: its own chef, its own oven, and it talks
//! to us only by messages.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use evloop::process::{parent_channel, worker_entry, Command, Stdio, Worker};

/// When the kitchen opened, as microseconds since the Unix epoch: the one
/// clock every process logs against (passed to kitchen 2 in this variable).
const OPENED_ENV: &str = "KITCHEN_OPENED_US";

fn main() {
    if worker_entry().as_deref() == Some("kitchen 2") {
        return second_kitchen();
    }
    if std::env::args().nth(1).as_deref() == Some("--supplier") {
        return supplier();
    }
    let opened = now_us();
    OPENED.set(opened).unwrap();
    let me = std::process::id();
    log(
        "chef",
        &format!("opens the kitchen (pid {me}, thread main)"),
    );
    let trouble = Rc::new(Cell::new(false));
    let t = trouble.clone();
    let r = evloop::run(move || {
        // Things in the oven: timers. The chef sets them and walks away.
        log("chef", "puts the bread in the oven (timer 500ms)");
        evloop::set_timeout(ms(500), || log("chef", "takes the bread out (timer)"));
        log("chef", "puts the soup on (timer 100ms)");
        let soup_set = Instant::now();
        evloop::set_timeout(ms(100), move || {
            let late = soup_set.elapsed().saturating_sub(ms(100));
            log(
                "chef",
                &format!("stirs the soup (timer, {}ms late)", late.as_millis()),
            );
        });

        // Chopping: CPU work for the assistants, on the pool's threads.
        for (veg, how_long) in [("onions", 120), ("carrots", 60), ("potatoes", 90)] {
            log("chef", &format!("asks an assistant to chop the {veg}"));
            evloop::queue_work(
                move || {
                    log(&assistant(), &format!("chops the {veg} ({how_long}ms)"));
                    busy(ms(how_long));
                    log(&assistant(), &format!("has chopped the {veg}"));
                },
                move |r| match r {
                    Ok(()) => log("chef", &format!("takes the chopped {veg} (pool job done)")),
                    Err(e) => log("chef", &format!("no {veg}: {e}")),
                },
            );
        }

        // A delivery: the supplier (a child process) writes to a pipe; the
        // chef hears the doorbell when the pipe becomes readable.
        let exe = std::env::current_exe().expect("our own executable");
        let supplier = Command::new(&exe)
            .arg("--supplier")
            .stdout(Stdio::Piped)
            .spawn()
            .expect("spawn");
        let pid = supplier.pid();
        log("chef", &format!("phones the supplier (pid {pid}) for fish"));
        let door = supplier.stdout.clone().expect("the supplier's pipe");
        door.on_data(move |bytes| {
            let what = String::from_utf8_lossy(bytes);
            log(
                "chef",
                &format!(
                    "doorbell: \"{}\" from the supplier (readable pipe)",
                    what.trim()
                ),
            );
            log("chef", "puts the fish on the grill (timer 100ms)");
            evloop::set_timeout(ms(100), || log("chef", "serves the grilled fish (timer)"));
        });
        let t2 = t.clone();
        supplier.on_exit(move |status| {
            if !matches!(status, Ok(s) if s.success()) {
                log("chef", &format!("the supplier failed: {status:?}"));
                t2.set(true);
            }
        });

        // More kitchens: a worker process, the same program, its own loop.
        let mut cmd = Command::new(&exe);
        cmd.env(OPENED_ENV, opened.to_string());
        match Worker::spawn_with("kitchen 2", &mut cmd) {
            Ok(kitchen2) => order_pies(kitchen2, t),
            Err(e) => {
                log("chef", &format!("cannot open kitchen 2: {e}"));
                t.set(true);
            }
        }

        // The one thing the chef does himself: while he chops, nothing
        // else reaches him (the loop thread is busy).
        log(
            "chef",
            "chops the parsley himself (120ms: meanwhile he hears nothing)",
        );
        busy(ms(120));
        log("chef", "is done with the parsley; back to listening");
    });
    match r {
        Ok(()) if !trouble.get() => log(
            "chef",
            "nothing left in the oven, with the assistants or at the door: closes (the loop ended)",
        ),
        other => {
            log("chef", &format!("the kitchen closes in trouble: {other:?}"));
            std::process::exit(1);
        }
    }
}

/// Orders pies from kitchen 2 and, once they come, closes its channel,
/// which tells it to close too.
fn order_pies(kitchen2: Worker, trouble: Rc<Cell<bool>>) {
    let name = format!("kitchen 2 (pid {})", kitchen2.child().pid());
    log("chef", &format!("opens {name} and orders 2 pies"));
    let _ = kitchen2.send(b"2 apple pies");
    let k = kitchen2.clone();
    let n = name.clone();
    kitchen2.on_message(move |msg| {
        let what = String::from_utf8_lossy(msg);
        log("chef", &format!("receives {what} from {n} (message)"));
        k.channel().close();
    });
    kitchen2.child().on_exit(move |status| match status {
        Ok(s) if s.success() => log("chef", &format!("sees {name} close (process exited)")),
        other => {
            log("chef", &format!("{name} failed: {other:?}"));
            trouble.set(true);
        }
    });
}

/// Kitchen 2: another process with its own chef (loop). It takes an order,
/// kneads (CPU on its own core), bakes (its own timer), and sends the
/// pies back; its loop ends when the first kitchen closes the channel.
fn second_kitchen() {
    let opened = std::env::var(OPENED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(now_us);
    OPENED.set(opened).unwrap();
    let me = format!("kitchen 2 (pid {})", std::process::id());
    let r = evloop::run(move || {
        let parent = parent_channel().expect("the channel to the first kitchen");
        let p = parent.clone();
        parent.on_message(move |order| {
            let order = String::from_utf8_lossy(order).into_owned();
            log(&me, &format!("gets an order for {order} (message)"));
            log(&me, "kneads the dough (80ms, its own core)");
            busy(ms(80));
            log(&me, "puts the pies in its own oven (timer 150ms)");
            let (p, me) = (p.clone(), me.clone());
            evloop::set_timeout(ms(150), move || {
                log(&me, &format!("sends the {order} back"));
                let _ = p.send(order.as_bytes());
            });
        });
    });
    if let Err(e) = r {
        eprintln!("kitchen 2: {e}");
        std::process::exit(1);
    }
}

/// The supplier: a plain child process that drives for 200ms and hands
/// the fish over its stdout, a pipe to the chef.
fn supplier() {
    std::thread::sleep(ms(200));
    println!("3 fresh fish");
}

static OPENED: OnceLock<u64> = OnceLock::new();

fn now_us() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    since.as_micros() as u64
}

/// One line of the log: time since the kitchen opened, who, what.
fn log(who: &str, what: &str) {
    let opened = OPENED.get().copied().unwrap_or_else(now_us);
    let ms = now_us().saturating_sub(opened) / 1000;
    println!("{:>6} {who}: {what}", format!("+{ms}ms"));
}

/// Which assistant is running this: the pool thread's name, numbered
/// from 1 as the seeds number their assistant chefs.
fn assistant() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("?");
    let n = name
        .rsplit('-')
        .next()
        .and_then(|i| i.parse::<u32>().ok())
        .map_or(0, |i| i + 1);
    format!("assistant {n} (thread {name})")
}

/// Work that keeps a core busy for `d` (chopping, kneading): the thread
/// cannot do anything else meanwhile.
fn busy(d: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        for i in 0..1000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
    }
    std::hint::black_box(x);
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
