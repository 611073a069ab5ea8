#!/usr/bin/env bash
# Miri (undefined-behaviour checker) on the pure core:
#   * every unit test of the library (src/): the timer heap (timers.rs),
#     generation tokens and stale-event lookups (reactor.rs), the await
#     adapter (task/await_promise.rs) and fs error wrapping;
#   * the promise state machine, through the Promises/A+ suite
#     (tests/promise_aplus.rs), which runs on a real loop: Miri models
#     epoll, eventfd and socketpairs, not signals (the loop skips its
#     SIGXFSZ setup under cfg(miri)).
#
# Needs a nightly toolchain with the miri and rust-src components
# (rustup toolchain install nightly --component miri,rust-src); the first
# run builds Miri's sysroot (a couple of minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  rustup +nightly component add miri rust-src
fi
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
cargo +nightly miri test --lib
cargo +nightly miri test --test promise_aplus
