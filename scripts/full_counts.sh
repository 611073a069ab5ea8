#!/usr/bin/env bash
# The reliability tests whose default counts are smaller than the catalogue's
# (RELIABILITY.md, "Figures smaller than the spec"), at the catalogue's
# counts, in a release build. Run before a release, like scripts/soak.sh;
# T17's 10,000 sequences take the longest (tens of minutes on a loaded
# 2-core VM).
#
#   scripts/full_counts.sh
#
# Every run is bounded by `timeout`, so the script always stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
run() { # timeout-seconds, then the cargo test arguments
  local secs="$1" rc=0
  shift
  echo "== $* (at most ${secs}s)"
  timeout --kill-after=10 "$secs" cargo test --release "$@" -- --nocapture >"$out" 2>&1 || rc=$?
  grep -E "^FIGURE|test result|panicked|FAILED" "$out" || true
  if [ "$rc" -ne 0 ]; then
    tail -30 "$out"
    echo "FAILED (exit $rc): $*" >&2
    exit "$rc"
  fi
}
# T02's 8-bit generations are a test-only cfg flag: the same flags and
# target dir as `.ci/run`'s cfg build (the flags change every crate's build).
cfg_test() {
  RUSTFLAGS="--cfg evloop_fault_injection --cfg evloop_narrow_generation" \
    CARGO_TARGET_DIR=target/cfg-test "$@"
}
cargo test --release --no-run --test rel_reactor --test rel_callbacks
cfg_test cargo test --release --no-run --test rel_reactor
# T03: 100 repeats of the edge-triggered drain (default 5).
EVLOOP_REL_SCALE=20 run 600 --test rel_reactor t03
# T07: 50 repeats (default 5).
EVLOOP_REL_SCALE=10 run 600 --test rel_reactor t07
# T17: 10,000 random API sequences from inside callbacks (default 250).
EVLOOP_T17_CASES=10000 run 2700 --test rel_callbacks t17
# T02: 200,000 connect/close cycles with 8-bit generations (also in CI).
cfg_test run 600 --test rel_reactor t02
echo "full counts: all passed"
