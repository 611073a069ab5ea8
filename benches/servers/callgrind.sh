#!/usr/bin/env bash
# Instructions per operation under callgrind: a deterministic counterpart to
# the wall-clock CPU figures of redis.sh and run.sh, which swing by +-20% on
# a shared machine. Counts user-space instructions only (Ir); the kernel's
# share is the syscalls, counted separately (strace -c in run.sh, or
# SYSCALLS=1 here).
#
#   bash benches/servers/callgrind.sh                 # redis, http and echo
#   WHAT=redis bash benches/servers/callgrind.sh      # mini_redis vs redis-server
#   WHAT=http bash benches/servers/callgrind.sh       # http_hello(_async) vs mio
#   WHAT=echo bash benches/servers/callgrind.sh       # echo servers: evloop, async, mio, tokio
#   ANNOTATE=1 bash benches/servers/callgrind.sh      # + top functions of each
#
# Each server runs under `valgrind --tool=callgrind` (loopback only). After it
# answers, a short warm-up load runs; then, for each measured load, the
# counters are zeroed (callgrind_control -z), the load runs, and the counters
# are dumped (callgrind_control -d): Ir of the dump / operations = Ir/op.
#   redis: redis-benchmark -n $REQUESTS -c $CLIENTS -P DEPTH -t TEST for
#          DEPTH in 1 16, TEST in ping set get ("ping" is two tests,
#          PING_INLINE and PING_MBULK: 2 x REQUESTS operations);
#   http:  wrk -t1 -c$CONNECTIONS -d${HTTP_SECS}s; operations = the requests
#          wrk counted;
#   echo:  echo_load with $ECHO_CONNS connections, 64-byte messages, for
#          $ECHO_SECS s; operations = the round trips it counted.
# The server under valgrind is 20-50x slower than native, so the load
# generators wait on it and every epoll_wait returns many events: the
# per-wakeup share of the cost is smaller than in a native run. The figures
# compare servers measured the same way; they are not native CPU time.
#
# With SYSCALLS=1, each server (natively this time) is also loaded once
# under `strace -c -f` (REQUESTS operations at -P 1) for syscalls per op.
#
# Environment: WHAT (redis, http, echo or all; default all), REQUESTS (default
# 20000), CLIENTS (default 50), WARMUP (default 2000), CONNECTIONS (default
# 100), HTTP_SECS (default 5), ECHO_CONNS (default 100), ECHO_SECS (default 5), ANNOTATE (0), SYSCALLS (0), TOP (default 15),
# KEEP (a directory to keep the callgrind dumps in, LABEL-CASE.callgrind, for
# callgrind_annotate; none by default).
# Needs valgrind (apt-get install valgrind), redis-server/redis-tools and
# wrk; every step is bounded in time and servers are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/servers/lib.sh

WHAT=${WHAT:-all}
REQUESTS=${REQUESTS:-20000}
CLIENTS=${CLIENTS:-50}
WARMUP=${WARMUP:-2000}
CONNECTIONS=${CONNECTIONS:-100}
HTTP_SECS=${HTTP_SECS:-5}
ECHO_CONNS=${ECHO_CONNS:-100}
ECHO_SECS=${ECHO_SECS:-5}
ANNOTATE=${ANNOTATE:-0}
SYSCALLS=${SYSCALLS:-0}
TOP=${TOP:-15}
KEEP=${KEEP:-}
[[ -n $KEEP ]] && mkdir -p "$KEEP"
MINI_PORT=${MINI_PORT:-6392}
REDIS_PORT=${REDIS_PORT:-6393}

ensure_tool valgrind valgrind || { echo "valgrind is needed" >&2; exit 1; }
ensure_tool callgrind_control valgrind || { echo "callgrind_control is needed" >&2; exit 1; }

# No pinning: instruction counts do not depend on the core, and a server
# 30x slower than native should not fight its load generator for one core.
PIN_SERVER=()

answers_redis() { timeout 2 redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; }

# cg_start LABEL READY PORT COMMAND...: start COMMAND under callgrind (up to
# 60 s to answer, valgrind starts slowly). Sets SERVER_PID (valgrind's).
cg_start() {
  local label=$1 ready=$2 port=$3
  shift 3
  local -a PIN_SERVER=(valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-$label.out"
    --dump-instr=no --compress-strings=no)
  log "$label: under callgrind"
  START_TRIES=120 START_PAUSE=0.5 start_server "$label" "$ready" "$port" -- "$@"
}

DUMPS=0
# cg_measure LABEL CASE LOAD_COMMAND...: zero, run the load (stdout to
# $WORK/load-LABEL-CASE.txt), dump; prints the Ir of that dump.
cg_measure() {
  local label=$1 case=$2 before file
  shift 2
  timeout 30 callgrind_control -z "$SERVER_PID" >/dev/null
  timeout 600 "$@" >"$WORK/load-$label-$case.txt" 2>&1 || log "load $case failed"
  before=$(ls "$WORK"/cg-"$label".out.* 2>/dev/null | wc -l)
  timeout 30 callgrind_control -d "$SERVER_PID" >/dev/null
  for ((i = 0; i < 100; i++)); do
    [[ $(ls "$WORK"/cg-"$label".out.* 2>/dev/null | wc -l) -gt $before ]] && break
    sleep 0.1
  done
  file=$(ls -t "$WORK"/cg-"$label".out.* | head -n 1)
  sleep 0.2 # the dump is written in one go; let it finish
  cp "$file" "$WORK/dump-$label-$case"
  [[ -n $KEEP ]] && cp "$file" "$KEEP/$label-$case.callgrind"
  awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

top_functions() { # dump file -> the TOP functions by inclusive-free (self) Ir
  callgrind_annotate --threshold=100 "$1" 2>/dev/null |
    awk -v top="$TOP" '/^-+$/ { sec++; next } sec >= 3 && NF > 1 && n < top { print "    " $0; n++ }'
}

declare -A IR OPS

# --- redis ---------------------------------------------------------------------
# record NAME CASE IR OPS OPS_LABEL PER_LABEL: keep a server's figures, log
# them, show its top functions (ANNOTATE=1), and stop it.
record() {
  local name=$1 case=$2 ir=$3 n=${4:-0} ops_label=$5 per_label=$6
  IR[$name]=$ir
  OPS[$name]=$n
  log "$name: $ir Ir / $n $ops_label = $(per_op "$ir" "$n") $per_label"
  if [[ $ANNOTATE == 1 ]]; then
    echo "$name, top functions (self Ir over $n $ops_label):" >&2
    top_functions "$WORK/dump-$name-$case" >&2
  fi
  stop_server "$SERVER_PID"
}

# ir_table FLOOR OPS_LABEL PER_LABEL NAME...: the markdown table of Ir per
# operation of each NAME, and its ratio to FLOOR's.
ir_table() {
  local floor_name=$1 ops_label=$2 per_label=$3 floor name v
  shift 3
  floor=$(per_op "${IR[$floor_name]:-}" "${OPS[$floor_name]:-0}")
  echo "| server | $ops_label | $per_label | vs mio |"
  echo "|---|---|---|---|"
  for name in "$@"; do
    v=$(per_op "${IR[$name]:-}" "${OPS[$name]:-0}")
    echo "| $name | ${OPS[$name]:-n/a} | $v | $(rat "$v" "$floor") |"
  done
}

redis_server() { # label
  local label=$1 port cmd depth t ir n csv
  redis_cmd "$label"
  cg_start "$label" answers_redis "$port" "${cmd[@]}" || return 0
  timeout 300 redis-benchmark -p "$port" -t ping,set,get -n "$WARMUP" -c "$CLIENTS" -q \
    >/dev/null 2>&1 || true
  for depth in 1 16; do
    for t in ping set get; do
      ir=$(cg_measure "$label" "$t-P$depth" redis-benchmark -p "$port" -t "$t" \
        -n "$REQUESTS" -c "$CLIENTS" -P "$depth" --csv)
      csv="$WORK/load-$label-$t-P$depth.txt"
      n=$(($(grep -c '^"[A-Z]' "$csv" || true) * REQUESTS))
      IR[$label,$t,$depth]=$ir
      OPS[$label,$t,$depth]=$n
      log "$label $t -P $depth: $ir Ir / $n ops = $(awk -v a="$ir" -v b="$n" 'BEGIN { printf "%.0f", a / b }') Ir/op"
      if [[ $ANNOTATE == 1 ]]; then
        echo "$label, $t -P $depth, top functions (self Ir over $n ops):" >&2
        top_functions "$WORK/dump-$label-$t-P$depth" >&2
      fi
    done
  done
  stop_server "$SERVER_PID"
}

per_op() { awk -v a="${1:-}" -v b="${2:-0}" 'BEGIN { if (a == "" || b == 0) print "n/a"; else printf "%.0f", a / b }'; }
rat() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2fx", a / b }'; }

syscalls_redis() { # label -> "total/op (top ones)" at -P 1, natively
  local label=$1 port cmd res n
  redis_cmd "$label"
  start_server "$label" answers_redis "$port" -- "${cmd[@]}" || return 0
  STRACE_SECS=60
  res=$(strace_run "$SERVER_PID" "$WORK/strace-load-$label.txt" redis-benchmark -p "$port" \
    -t ping,set,get -n "$REQUESTS" -c "$CLIENTS" -P 1 --csv)
  n=$((4 * REQUESTS))
  if [[ -n $res ]]; then
    SYSC[$label]="$(awk -v t="${res%% *}" -v n="$n" 'BEGIN { printf "%.2f", t / n }') ($(per_req_breakdown "${res#* }" "$n"))"
  fi
  stop_server "$SERVER_PID"
}
declare -A SYSC

if [[ $WHAT == redis || $WHAT == all ]]; then
  ensure_tool redis-server redis-server redis-tools || { echo "redis-server is needed" >&2; exit 1; }
  ensure_tool redis-benchmark redis-tools || { echo "redis-benchmark is needed" >&2; exit 1; }
  ensure_tool redis-cli redis-tools || { echo "redis-cli is needed" >&2; exit 1; }
  log "building example mini_redis (release)"
  timeout 900 cargo build --release --quiet --example mini_redis
  redis_server mini_redis
  redis_server redis-server
  if [[ $SYSCALLS == 1 ]]; then
    syscalls_redis mini_redis
    syscalls_redis redis-server
  fi
  echo "User-space instructions per operation under callgrind (valgrind $(valgrind --version | sed 's/valgrind-//')),"
  echo "\`redis-benchmark -n $REQUESTS -c $CLIENTS -P DEPTH -t TEST\` after a warm-up of $WARMUP per test."
  echo
  echo "| test | -P | mini_redis Ir/op | redis-server Ir/op | ratio |"
  echo "|---|---|---|---|---|"
  for depth in 1 16; do
    for t in ping set get; do
      m=$(per_op "${IR[mini_redis,$t,$depth]:-}" "${OPS[mini_redis,$t,$depth]:-0}")
      r=$(per_op "${IR[redis-server,$t,$depth]:-}" "${OPS[redis-server,$t,$depth]:-0}")
      echo "| $t | $depth | $m | $r | $(rat "$m" "$r") |"
    done
  done
  echo
  if [[ $SYSCALLS == 1 ]]; then
    echo "Syscalls per operation (native, strace -c -f, redis-benchmark -t ping,set,get -n $REQUESTS -c $CLIENTS -P 1):"
    echo
    for s in mini_redis redis-server; do echo "- $s: ${SYSC[$s]:-n/a}"; done
    echo
  fi
fi

# --- http ----------------------------------------------------------------------
if [[ $WHAT == http || $WHAT == all ]]; then
  ensure_tool wrk wrk || { echo "wrk is needed" >&2; exit 1; }
  build_examples http_hello http_hello_async mio_http_hello
  HTTP=(
    "http_hello 8090"
    "http_hello_async 8091"
    "mio_http_hello 8092"
  )
  for s in "${HTTP[@]}"; do
    read -r name port <<<"$s"
    [[ ${BUILT[$name]} == 1 ]] || continue
    cg_start "$name" http_answers "$port" "$EXAMPLES/$name" "127.0.0.1:$port" || continue
    timeout 60 wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
    ir=$(cg_measure "$name" wrk timeout $((HTTP_SECS + 30)) wrk -t1 -c"$CONNECTIONS" \
      -d"${HTTP_SECS}s" "http://127.0.0.1:$port/")
    n=$(awk '/ requests in / { print $1 }' "$WORK/load-$name-wrk.txt")
    record "$name" wrk "$ir" "$n" requests Ir/req
  done
  echo "User-space instructions per request under callgrind, \`wrk -t1 -c$CONNECTIONS -d${HTTP_SECS}s\` after a 1 s warm-up:"
  echo
  ir_table mio_http_hello requests Ir/req "${HTTP[@]%% *}"
  echo
fi

# --- echo ----------------------------------------------------------------------
if [[ $WHAT == echo || $WHAT == all ]]; then
  build_examples echo_load echo_server echo_server_async mio_echo tokio_echo
  ECHO=(
    "echo_server 7090"
    "echo_server_async 7091"
    "mio_echo 7092"
    "tokio_echo 7093"
  )
  for s in "${ECHO[@]}"; do
    read -r name port <<<"$s"
    [[ ${BUILT[$name]} == 1 && ${BUILT[echo_load]} == 1 ]] || continue
    cg_start "$name" echo_answers "$port" "$EXAMPLES/$name" "127.0.0.1:$port" || continue
    timeout 60 "$EXAMPLES/echo_load" "127.0.0.1:$port" "$ECHO_CONNS" 1 64 >/dev/null 2>&1 || true
    ir=$(cg_measure "$name" echo timeout $((ECHO_SECS + 30)) "$EXAMPLES/echo_load" \
      "127.0.0.1:$port" "$ECHO_CONNS" "$ECHO_SECS" 64)
    n=$(tr ' ' '\n' <"$WORK/load-$name-echo.txt" | awk -F= '$1 == "round_trips" { print $2 }')
    record "$name" echo "$ir" "$n" "round trips" "Ir/round trip"
  done
  echo "User-space instructions per round trip under callgrind, \`echo_load\` with $ECHO_CONNS connections and 64-byte messages for ${ECHO_SECS}s after a 1 s warm-up:"
  echo
  ir_table mio_echo "round trips" "Ir/round trip" "${ECHO[@]%% *}"
  echo
fi
