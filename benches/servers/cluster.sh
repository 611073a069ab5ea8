#!/usr/bin/env bash
# How far processes scale: examples/cluster_http with N workers against
# examples/http_hello in one process, under the same wrk load, in one run.
#
#   bash benches/servers/cluster.sh             # 10 s each, 2 workers
#   DURATION=3 WORKERS=2 bash benches/servers/cluster.sh
#
# Nothing is pinned: the cluster needs every core, and wrk (-t1) competes
# with it for them, as it does with the single process. On a 2-core
# machine the ratio is therefore an honest "what a second process buys
# while the load generator takes its share", not a 2x ceiling.
# Reports req/s, p50/p99 latency and server CPU time per request (all the
# server's processes: the primary and its workers). Installs wrk if
# missing; every run is bounded in time; servers are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10}
WORKERS=${WORKERS:-2}
CONNECTIONS=${CONNECTIONS:-100}
PORT=${PORT:-8090}
EXAMPLES="${CARGO_TARGET_DIR:-target}/release/examples"
TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d)
SERVER_PID=

log() { echo "== $*" >&2; }
stop() {
  [[ -z "$SERVER_PID" ]] && return
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for ((i = 0; i < 80; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}
trap 'stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk"
  timeout 300 apt-get update && timeout 300 apt-get install -y wrk
fi
log "building http_hello and cluster_http (release)"
timeout 900 cargo build --release --quiet --example http_hello --example cluster_http

# utime+stime of a process and all its children (the workers), in ticks.
tree_ticks() {
  local total=0 pid stat
  for pid in "$1" $(pgrep -P "$1" || true); do
    stat=$(<"/proc/$pid/stat") || continue
    stat=${stat##*) }
    total=$((total + $(awk '{ print $12 + $13 }' <<<"$stat")))
  done
  echo "$total"
}
to_us() {
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6; else print n }'
}

declare -A RPS P50 P99 CPU
run() { # label, command...
  local label=$1; shift
  "$@" >"$WORK/$label.log" 2>&1 &
  SERVER_PID=$!
  for ((i = 0; i < 100; i++)); do
    curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 0.5 # let every worker start
  local c0 c1 out="$WORK/wrk-$label.txt"
  c0=$(tree_ticks "$SERVER_PID")
  log "$label: wrk -t1 -c$CONNECTIONS -d${DURATION}s"
  timeout $((DURATION + 30)) wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    "http://127.0.0.1:$PORT/" >"$out"
  c1=$(tree_ticks "$SERVER_PID")
  stop
  RPS[$label]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  P50[$label]=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
  P99[$label]=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
  local n
  n=$(awk '/ requests in / { print $1 }' "$out")
  CPU[$label]=$(awk -v t=$((c1 - c0)) -v hz="$TICKS" -v n="$n" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
}

run single "$EXAMPLES/http_hello" "127.0.0.1:$PORT"
run cluster "$EXAMPLES/cluster_http" "127.0.0.1:$PORT" "$WORKERS"

echo
echo "http_hello: 1 process vs cluster_http with $WORKERS workers; wrk -t1 -c$CONNECTIONS -d${DURATION}s; $(nproc) cores, unpinned"
printf '%-9s %11s %9s %9s %11s\n' server req/s "p50 us" "p99 us" "CPU us/req"
for l in single cluster; do
  printf '%-9s %11s %9s %9s %11s\n' "$l" "${RPS[$l]}" "${P50[$l]}" "${P99[$l]}" "${CPU[$l]}"
done
awk -v a="${RPS[cluster]}" -v b="${RPS[single]}" 'BEGIN { printf "cluster/single req/s: %.2fx\n", a / b }'
