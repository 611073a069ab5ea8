#!/usr/bin/env bash
# Server benchmark: HTTP/1.1 hello world under wrk, evloop against a raw mio
# floor and a tokio current-thread anchor, all measured in the same run.
#
#   bash benches/servers/run.sh            # 10 s per server
#   DURATION=3 bash benches/servers/run.sh # quicker
#
# For each server in turn (evloop's examples/http_hello and http_hello_async
# if they build, then benches/servers/mio_http_hello, then
# benches/servers/tokio_http_hello):
# start it pinned to core 0, wait until it answers, run
#   taskset -c 1 wrk -t1 -c100 -d${DURATION}s --latency http://127.0.0.1:PORT/
# and record req/s, p50/p99 latency, the server's peak RSS (VmHWM) and its
# CPU time (utime+stime) over the wrk run, hence CPU microseconds per
# request. Then the server is stopped by its PID. Loopback only.
#
# Environment: DURATION (seconds, default 10), CONNECTIONS (default 100).
# Installs wrk with apt-get when it is missing. Every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-100}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
EXAMPLES="$TARGET_DIR/release/examples"
TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d)

SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then stop_server "$SERVER_PID"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# --- tools ------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  log "wrk not found: installing it with apt-get"
  timeout 300 apt-get update
  timeout 300 apt-get install -y wrk
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: this benchmark needs a Rust toolchain" >&2
  exit 1
fi

# Server on core 0, wrk on core 1; without a second core, no pinning (the
# figures are then much less meaningful).
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null 2>&1; then
  PIN_SERVER=(taskset -c 0)
  PIN_LOAD=(taskset -c 1)
else
  log "fewer than 2 cores (or no taskset): running unpinned"
  PIN_SERVER=()
  PIN_LOAD=()
fi

# --- build ------------------------------------------------------------------
# name, port, label; the evloop server is optional (skipped if it fails to build).
SERVERS=(
  "http_hello 8080 evloop"
  "http_hello_async 8083 evloop-async"
  "mio_http_hello 8081 mio(floor)"
  "tokio_http_hello 8082 tokio"
)
declare -A BUILT
for s in "${SERVERS[@]}"; do
  read -r name _ _ <<<"$s"
  log "building example $name (release)"
  if timeout 900 cargo build --release --quiet --example "$name" >"$WORK/build-$name.log" 2>&1; then
    BUILT[$name]=1
  else
    BUILT[$name]=0
    log "example $name does not build: skipped (first lines of the error below)"
    head -n 5 "$WORK/build-$name.log" | sed 's/^/   | /' >&2
  fi
done

# --- helpers ----------------------------------------------------------------
port_answers() { # port -> 0 if an HTTP 200 comes back
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
    head -c 15 <&3' _ "$1" 2>/dev/null | grep -q '^HTTP/1.1 200'
}

cpu_ticks() { # pid -> utime+stime in clock ticks (fields 14, 15 of stat)
  # The command name (field 2) may hold spaces: count fields after ") ".
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  awk '{ print $12 + $13 }' <<<"$stat"
}

peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

stop_server() { # pid: TERM, up to 5 s, then KILL; always reaped
  local pid=$1 i
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "server $pid ignored SIGTERM: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  SERVER_PID=
}

to_us() { # wrk latency ("812.00us", "1.23ms", "2.01s") -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000;
    else if (v ~ /m$/) print n * 60e6; else if (v ~ /s$/) print n * 1e6; else print n }'
}

fmt_lat() { # microseconds -> short human form
  awk -v u="$1" 'BEGIN { if (u >= 1000) printf "%.2fms", u / 1000; else printf "%.0fus", u }'
}

# --- run --------------------------------------------------------------------
declare -A RPS P50 P99 RSS CPU STATUS
for s in "${SERVERS[@]}"; do
  read -r name port label <<<"$s"
  if [[ ${BUILT[$name]} != 1 ]]; then
    STATUS[$label]="skipped: examples/$name.rs does not build"
    continue
  fi
  if port_answers "$port"; then
    STATUS[$label]="skipped: port $port already in use"
    log "port $port already answers: is another server running? skipping $label"
    continue
  fi
  log "$label: starting $EXAMPLES/$name on 127.0.0.1:$port"
  "${PIN_SERVER[@]}" "$EXAMPLES/$name" "127.0.0.1:$port" 2>"$WORK/server-$name.log" &
  SERVER_PID=$!
  up=0
  for ((i = 0; i < 100; i++)); do # up to ~10 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    if port_answers "$port"; then up=1; break; fi
    sleep 0.1
  done
  if [[ $up != 1 ]]; then
    STATUS[$label]="failed: did not answer on port $port"
    log "$label did not answer; its stderr:"
    sed 's/^/   | /' "$WORK/server-$name.log" >&2 || true
    stop_server "$SERVER_PID"
    continue
  fi

  cpu0=$(cpu_ticks "$SERVER_PID")
  log "$label: wrk -t1 -c$CONNECTIONS -d${DURATION}s"
  if ! timeout $((DURATION + 30)) "${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
    --latency "http://127.0.0.1:$port/" >"$WORK/wrk-$name.txt" 2>&1; then
    STATUS[$label]="failed: wrk did not finish"
    cat "$WORK/wrk-$name.txt" >&2
    stop_server "$SERVER_PID"
    continue
  fi
  cpu1=$(cpu_ticks "$SERVER_PID")
  RSS[$label]=$(peak_rss_kb "$SERVER_PID")
  stop_server "$SERVER_PID"

  out="$WORK/wrk-$name.txt"
  RPS[$label]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  requests=$(awk '/ requests in / { print $1 }' "$out")
  P50[$label]=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
  P99[$label]=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
  CPU[$label]=$(awk -v t=$((cpu1 - cpu0)) -v hz="$TICKS" -v n="$requests" \
    'BEGIN { if (n > 0) printf "%.3f", t / hz * 1e6 / n; else print "nan" }')
  STATUS[$label]=ok
  if grep -Eq 'Socket errors|Non-2xx' "$out"; then
    log "$label: wrk reported errors:"
    grep -E 'Socket errors|Non-2xx' "$out" | sed 's/^/   | /' >&2
    STATUS[$label]="ok (wrk reported errors, see above)"
  fi
done

# --- table ------------------------------------------------------------------
FLOOR="mio(floor)"
echo
echo "HTTP/1.1 hello world, wrk -t1 -c$CONNECTIONS -d${DURATION}s, server on core 0, wrk on core 1 ($(nproc) cores)"
printf '%-11s %11s %9s %9s %10s %10s %12s %14s\n' \
  server req/s p50 p99 "peak RSS" "CPU us/req" "req/s vs mio" "CPU/req vs mio"
for s in "${SERVERS[@]}"; do
  read -r _ _ label <<<"$s"
  if [[ ${STATUS[$label]} != ok* ]]; then
    printf '%-11s %s\n' "$label" "${STATUS[$label]}"
    continue
  fi
  if [[ ${STATUS[$FLOOR]:-} == ok* ]]; then
    r_rps=$(awk -v a="${RPS[$label]}" -v b="${RPS[$FLOOR]}" 'BEGIN { printf "%.2fx", a / b }')
    r_cpu=$(awk -v a="${CPU[$label]}" -v b="${CPU[$FLOOR]}" \
      'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')
  else
    r_rps=n/a r_cpu=n/a
  fi
  printf '%-11s %11.0f %9s %9s %7.1f MB %10.2f %12s %14s\n' "$label" "${RPS[$label]}" \
    "$(fmt_lat "${P50[$label]}")" "$(fmt_lat "${P99[$label]}")" \
    "$(awk -v k="${RSS[$label]}" 'BEGIN { print k / 1024 }')" "${CPU[$label]}" "$r_rps" "$r_cpu"
done
echo "(CPU us/req: the server's utime+stime over the wrk run / requests completed;"
echo " ratios are against the raw mio floor measured in this run: req/s higher is"
echo " better, CPU/req lower is better.)"
