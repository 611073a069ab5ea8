#!/usr/bin/env bash
# Redis benchmark: evloop's examples/mini_redis against redis-server under
# redis-benchmark, both measured in the same run.
#
#   bash benches/servers/redis.sh              # -n 200000 per test
#   REQUESTS=50000 ROUNDS=1 bash benches/servers/redis.sh   # quicker
#
# For each server in turn (mini_redis, then redis-server started with
# --save '' --appendonly no), pinned to core 0: wait until it answers PING,
# then for each pipeline depth (-P 1, -P 16) and each test (ping, set, get)
#   taskset -c 1 redis-benchmark -t TEST -n $REQUESTS -c 50 -P DEPTH --csv
# and record the server's CPU time over that run, twice over:
#   - utime+stime from /proc/PID/stat (clock ticks, 10 ms each), and
#   - the nanoseconds on CPU from /proc/PID/task/*/schedstat (the same
#     time, without the 10 ms granularity that makes a -P 16 run of a few
#     hundred milliseconds hard to read from ticks alone).
# CPU per op is either divided by the operations of the run ("ping" runs two
# tests, PING_INLINE and PING_MBULK). The server is stopped by its PID.
# Loopback only; every step is bounded in time.
#
# The servers take turns for ROUNDS rounds and the table shows medians.
#
# Environment: REQUESTS (default 200000), ROUNDS (default 3), CLIENTS (default 50),
# MINI_PORT (default 6390), REDIS_PORT (default 6391).
# Installs redis-server and redis-tools with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUESTS=${REQUESTS:-200000}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-50}
MINI_PORT=${MINI_PORT:-6390}
REDIS_PORT=${REDIS_PORT:-6391}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
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
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1 \
  || ! command -v redis-cli >/dev/null 2>&1; then
  log "redis-server/redis-benchmark not found: installing them with apt-get"
  timeout 300 apt-get update
  timeout 600 apt-get install -y redis-server redis-tools
fi

if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null 2>&1; then
  PIN_SERVER=(taskset -c 0)
  PIN_LOAD=(taskset -c 1)
else
  log "fewer than 2 cores (or no taskset): running unpinned"
  PIN_SERVER=()
  PIN_LOAD=()
fi

log "building example mini_redis (release)"
timeout 900 cargo build --release --quiet --example mini_redis
MINI="$TARGET_DIR/release/examples/mini_redis"

# --- helpers ----------------------------------------------------------------
answers() { timeout 2 redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; }

stat_ticks() { # pid -> utime+stime in clock ticks (fields 14, 15 of stat)
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) } # the command name (field 2) may hold spaces
  awk '{ print $12 + $13 }' <<<"$stat"
}

sched_ns() { # pid -> nanoseconds on CPU, all threads
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

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

# --- run --------------------------------------------------------------------
SERVERS=(mini_redis redis-server)
DEPTHS=(1 16)
TESTS=(ping set get)
# Per round: OPS_S[server,TEST_NAME,depth,round], CPU_*[server,test,depth,round].
declare -A OPS_S CPU_TICK CPU_NS STATUS

run_server() { # server round
  local server=$1 round=$2 port cmd i up depth t t0 t1 n0 n1 out name rps tests_run ops
  if [[ $server == mini_redis ]]; then
    port=$MINI_PORT
    cmd=("$MINI" "127.0.0.1:$port")
  else
    port=$REDIS_PORT
    cmd=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no
      --daemonize no --logfile '')
  fi
  if answers "$port"; then
    log "port $port already answers PING: is another server running? skipping $server"
    STATUS[$server]="skipped: port $port in use"
    return
  fi
  log "round $round, $server: starting on 127.0.0.1:$port (core 0)"
  "${PIN_SERVER[@]}" "${cmd[@]}" >"$WORK/$server.log" 2>&1 &
  SERVER_PID=$!
  up=0
  for ((i = 0; i < 100; i++)); do # up to ~10 s
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if answers "$port"; then up=1; break; fi
    sleep 0.1
  done
  if [[ $up != 1 ]]; then
    log "$server did not answer; its output:"
    sed 's/^/   | /' "$WORK/$server.log" >&2 || true
    STATUS[$server]="failed: did not answer"
    stop_server "$SERVER_PID"
    return
  fi
  for depth in "${DEPTHS[@]}"; do
    for t in "${TESTS[@]}"; do
      log "round $round, $server: redis-benchmark -t $t -n $REQUESTS -c $CLIENTS -P $depth"
      t0=$(stat_ticks "$SERVER_PID")
      n0=$(sched_ns "$SERVER_PID")
      out="$WORK/$server-$t-$depth.csv"
      if ! timeout 300 "${PIN_LOAD[@]}" redis-benchmark -p "$port" -t "$t" -n "$REQUESTS" \
        -c "$CLIENTS" -P "$depth" --csv >"$out" 2>"$WORK/bench.err"; then
        log "redis-benchmark failed or timed out:"
        sed 's/^/   | /' "$WORK/bench.err" >&2 || true
        STATUS[$server]="failed: redis-benchmark -t $t -P $depth"
        continue
      fi
      t1=$(stat_ticks "$SERVER_PID")
      n1=$(sched_ns "$SERVER_PID")
      # One line per test run ("ping" is PING_INLINE and PING_MBULK).
      while IFS=, read -r name rps _; do
        name=${name//\"/} rps=${rps//\"/}
        [[ $name == test || -z $name ]] && continue
        OPS_S[$server,$name,$depth,$round]=$rps
      done <"$out"
      tests_run=$(grep -vc '^"test"' "$out" || true)
      ops=$((tests_run * REQUESTS))
      CPU_TICK[$server,$t,$depth,$round]=$(awk -v d=$((t1 - t0)) -v hz="$TICKS" -v n="$ops" \
        'BEGIN { if (n > 0) printf "%.3f", d / hz * 1e6 / n; else print "nan" }')
      CPU_NS[$server,$t,$depth,$round]=$(awk -v d=$((n1 - n0)) -v n="$ops" \
        'BEGIN { if (n > 0) printf "%.3f", d / 1e3 / n; else print "nan" }')
      log "round $round, $server, $t -P $depth: ${CPU_NS[$server,$t,$depth,$round]} us/op on CPU," \
        "ops/s $(awk -F, 'NR > 1 { gsub(/"/, ""); printf "%s%s=%s", sep, $1, $2; sep = " " }' "$out")"
    done
  done
  stop_server "$SERVER_PID"
}

# The servers take turns, round after round, so a slow patch of a shared
# machine hits both rather than one.
for ((round = 1; round <= ROUNDS; round++)); do
  for server in "${SERVERS[@]}"; do
    [[ -n ${STATUS[$server]:-} ]] && continue # skipped or failed before
    run_server "$server" "$round"
  done
done

# --- table ------------------------------------------------------------------
median() { # values... (missing ones are skipped) -> median, or nan
  printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2];
      else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
med() { # array-name key-prefix -> median over the rounds
  local -n arr=$1
  local vals=() r
  for ((r = 1; r <= ROUNDS; r++)); do vals+=("${arr[$2,$r]:-}"); done
  median "${vals[@]}"
}

echo
echo "redis-benchmark -n $REQUESTS -c $CLIENTS, server on core 0, load on core 1 ($(nproc) cores),"
echo "median of $ROUNDS rounds, $(date -u +%Y-%m-%d)"
for s in "${SERVERS[@]}"; do
  [[ -n ${STATUS[$s]:-} ]] && echo "$s: ${STATUS[$s]}"
done
printf '%-12s %3s %12s %12s %7s %10s %11s %7s %8s\n' test P "mini ops/s" "redis ops/s" ratio \
  "mini us/op" "redis us/op" ratio "(ticks)"
row() { # label test depth
  local label=$1 t=$2 d=$3
  awk -v l="$label" -v d="$d" \
    -v mo="$(med OPS_S "mini_redis,$label,$d")" -v ro="$(med OPS_S "redis-server,$label,$d")" \
    -v mc="$(med CPU_NS "mini_redis,$t,$d")" -v rc="$(med CPU_NS "redis-server,$t,$d")" \
    -v mt="$(med CPU_TICK "mini_redis,$t,$d")" -v rt="$(med CPU_TICK "redis-server,$t,$d")" \
    'BEGIN {
      r1 = (ro > 0) ? sprintf("%.2fx", mo / ro) : "n/a"
      r2 = (rc > 0) ? sprintf("%.2fx", mc / rc) : "n/a"
      r3 = (rt > 0) ? sprintf("%.2fx", mt / rt) : "n/a"
      printf "%-12s %3s %12.0f %12.0f %7s %10.3f %11.3f %7s %8s\n", l, d, mo, ro, r1, mc, rc, r2, r3 }'
}
for d in "${DEPTHS[@]}"; do
  row PING_INLINE ping "$d"
  row PING_MBULK ping "$d"
  row SET set "$d"
  row GET get "$d"
done
echo "(ops/s: as redis-benchmark reports it; ratio = mini_redis / redis-server, higher is better."
echo " us/op: the server's time on CPU (schedstat, all threads) over the run / operations;"
echo " the two ping rows share one run, hence one figure. ratio = mini_redis / redis-server,"
echo " lower is better; (ticks) is that ratio from utime+stime in /proc/PID/stat, 10 ms granularity.)"
