//! The old name of the shared test helpers, now in `tests/support/`: kept
//! so that a test file written before the move (`tests/emfile.rs`, another
//! session's) and branches in flight still build with `mod util;` and
//! `util::init_log()`, `util::fd_count()`, `util::cpu_time()`,
//! `util::still_connected()`, ... New tests say `mod support;`. Delete this
//! file once no test says `mod util;`.
#![allow(unused_imports)]

#[path = "../support/mod.rs"]
mod support;

pub use support::cpu::cpu_time;
pub use support::fds::fd_count;
pub use support::net::{still_connected, wait_listening};
pub use support::*;
