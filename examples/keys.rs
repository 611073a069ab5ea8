//! Keys in raw mode: each key you press is printed by name (arrows, enter,
//! ctrl-x, printable characters), under a progress bar that fills on a
//! timer and redraws to the terminal's width when the window is resized.
//! `q` quits.
//!
//! ```text
//! cargo run --example keys
//! ```
//!
//! With stdin not a terminal (`cargo run --example keys < /dev/null`), it
//! says so and exits 0. `tests/tty.rs` runs it in a pseudo-terminal.
//!
//! What it shows: [`tty::RawMode`] (the terminal comes back even if this
//! panics), [`tty::window_size`] and [`tty::on_resize`] (Node's
//! `process.stdout.columns` and `'resize'`), and
//! [`stdio::stdin`](evloop::stdio::stdin) read as a loop stream.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use evloop::{stdio, tty};

fn main() {
    if !tty::stdin_is_tty() {
        println!("keys: stdin is not a terminal; run me in one to see keys by name");
        return;
    }
    evloop::run(|| {
        let raw = tty::RawMode::enable(0).expect("stdin is a terminal");
        let ui = Rc::new(Ui {
            size: Cell::new(tty::window_size(1).unwrap_or((80, 24))),
            progress: Cell::new(0),
            last: RefCell::new(String::from("(none yet)")),
        });
        say("keys: press keys, q quits");
        ui.draw();

        let u = ui.clone();
        let tick = evloop::set_interval(Duration::from_millis(100), move || {
            u.progress.set((u.progress.get() + 1) % 101);
            u.draw();
        });

        let u = ui.clone();
        let resize = tty::on_resize(1, move |cols, rows| {
            u.size.set((cols, rows));
            clear_line();
            say(&format!("resized to {cols}x{rows}"));
            u.draw();
        })
        .ok();

        let stdin = stdio::stdin().expect("stdin");
        let raw = RefCell::new(Some(raw));
        let input = stdin.clone();
        stdin.on_data(move |bytes| {
            for key in key_names(bytes) {
                if key == "q" {
                    evloop::clear_interval(&tick);
                    if let Some(h) = &resize {
                        h.close();
                    }
                    input.destroy();
                    clear_line();
                    // Dropping the guard puts the terminal back.
                    drop(raw.borrow_mut().take());
                    println!("bye");
                    return;
                }
                clear_line();
                say(&format!("key: {key}"));
                *ui.last.borrow_mut() = key;
                ui.draw();
            }
        });
    })
    .expect("keys");
}

struct Ui {
    size: Cell<(u16, u16)>,
    progress: Cell<u16>,
    last: RefCell<String>,
}

impl Ui {
    /// The bottom line: `[#####.....]  42%  last: up`, as wide as the
    /// terminal.
    fn draw(&self) {
        let cols = usize::from(self.size.get().0.max(20));
        let tail = format!(" {:3}%  last: {}", self.progress.get(), self.last.borrow());
        let width = cols.saturating_sub(tail.chars().count() + 3).max(5);
        let done = width * usize::from(self.progress.get()) / 100;
        let mut line = format!("[{}{}]{tail}", "#".repeat(done), ".".repeat(width - done));
        line.truncate(cols - 1);
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K{line}");
        let _ = out.flush();
    }
}

/// A line above the bar. Raw mode keeps output processing on, so `\n`
/// still starts a line; `\r` first returns to its start.
fn say(text: &str) {
    print!("\r{text}\n");
}

fn clear_line() {
    print!("\r\x1b[2K");
}

/// The keys in one read of raw input, by name: escape sequences for the
/// arrows and friends, control bytes as `ctrl-x`, the rest as typed.
fn key_names(mut bytes: &[u8]) -> Vec<String> {
    let mut keys = Vec::new();
    while let Some(&b) = bytes.first() {
        let (name, used): (String, usize) = match b {
            0x1b => escape(bytes),
            b'\r' | b'\n' => ("enter".into(), 1),
            b'\t' => ("tab".into(), 1),
            0x7f | 0x08 => ("backspace".into(), 1),
            b' ' => ("space".into(), 1),
            0x00 => ("ctrl-space".into(), 1),
            0x01..=0x1a => (format!("ctrl-{}", char::from(b'a' + b - 1)), 1),
            0x1c..=0x1f => (format!("ctrl-{}", char::from(b'\\' + b - 0x1c)), 1),
            0x21..=0x7e => (char::from(b).to_string(), 1),
            _ => utf8(bytes),
        };
        keys.push(name);
        bytes = &bytes[used..];
    }
    keys
}

/// `ESC [ A` and the like (CSI and SS3 forms); a lone ESC is the escape
/// key, and `ESC x` is alt-x.
fn escape(bytes: &[u8]) -> (String, usize) {
    let named = |c: u8| match c {
        b'A' => Some("up"),
        b'B' => Some("down"),
        b'C' => Some("right"),
        b'D' => Some("left"),
        b'H' => Some("home"),
        b'F' => Some("end"),
        _ => None,
    };
    match bytes.get(1) {
        None => ("escape".into(), 1),
        Some(b'[') | Some(b'O') => {
            // Parameters (digits, ';') then one final byte.
            let rest = &bytes[2..];
            let params = rest
                .iter()
                .take_while(|c| c.is_ascii_digit() || **c == b';')
                .count();
            let Some(&last) = rest.get(params) else {
                return ("escape".into(), 1);
            };
            let used = 2 + params + 1;
            let name = match (named(last), last, &rest[..params]) {
                (Some(n), _, _) => n.to_string(),
                (None, b'~', b"2") => "insert".into(),
                (None, b'~', b"3") => "delete".into(),
                (None, b'~', b"5") => "pageup".into(),
                (None, b'~', b"6") => "pagedown".into(),
                _ => format!(
                    "escape-sequence {:?}",
                    String::from_utf8_lossy(&bytes[..used])
                ),
            };
            (name, used)
        }
        Some(&c) if (0x21..=0x7e).contains(&c) => (format!("alt-{}", char::from(c)), 2),
        Some(_) => ("escape".into(), 1),
    }
}

/// One UTF-8 character, or one byte shown in hex if it is not valid.
fn utf8(bytes: &[u8]) -> (String, usize) {
    let len = match bytes[0] {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    };
    match bytes.get(..len).map(std::str::from_utf8) {
        Some(Ok(s)) => (s.to_string(), len),
        _ => (format!("0x{:02x}", bytes[0]), 1),
    }
}
