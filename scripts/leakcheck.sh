#!/usr/bin/env bash
# Leak check: runs a selection of the integration tests under valgrind's
# memcheck and fails on memory that is definitely or indirectly lost (a
# leak), or on any memcheck error (invalid read/write, use of
# uninitialised memory). "Still reachable" memory (process-wide statics
# such as the signal thread's state) is not a leak and is not counted.
#
#   scripts/leakcheck.sh              # the default selection (~5-10 min)
#   scripts/leakcheck.sh reactor pool # just these test files
#
# Needs valgrind (apt-get install -y valgrind; installed here if missing
# and apt-get is usable). Debug build; each test file runs with
# --test-threads=1 under a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y valgrind >/dev/null || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }
  else
    echo "valgrind not found and apt-get unavailable" >&2
    exit 1
  fi
fi

default=(reactor order idle reentrancy panic promise_api promise_aplus pool fs tcp unix_udp task task_net task_time rel_pool_fs)
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("${default[@]}")

args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
# Build, and find each test binary's path.
mapfile -t bins < <(cargo test --no-run --message-format=json "${args[@]}" 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"] + " " + m["executable"])
')

status=0
for entry in "${bins[@]}"; do
  name="${entry%% *}"
  bin="${entry#* }"
  log="target/leakcheck-$name.log"
  start=$(date +%s)
  # Exit 99 is valgrind's (a leak or a memory error: fails the check).
  # Valgrind runs code 20-50x slower, so a test that measures time may fail
  # its own assertion (exit 101): that is reported, but only valgrind's
  # findings fail the leak check. t28 (100,000 fs ops) is too slow here.
  rc=0
  timeout --kill-after=10 1200 valgrind --quiet --error-exitcode=99 \
    --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect \
    --log-file="$log" \
    "$bin" --test-threads=1 --skip t28_completion_storm >"$log.out" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  case $rc in
    0) echo "leakcheck $name: clean (${took} s)" ;;
    99) echo "leakcheck $name: LEAK or memory error (${took} s); see $log"; status=1 ;;
    101) echo "leakcheck $name: clean, but some tests failed at valgrind's speed (${took} s): $(grep -c '\.\.\. FAILED' "$log.out") failed; see $log.out" ;;
    *) echo "leakcheck $name: exit $rc (timeout or crash) (${took} s); see $log $log.out"; status=1 ;;
  esac
done
exit $status
