#!/usr/bin/env bash
# How evloop's cost grows (issue 25): connections, an idle loop, cores, and
# timers/tasks/promises, each measured side by side with its anchors in one
# run, written as tables and SVG charts into BENCHMARKS.md.
#
#   bash benches/servers/scale.sh                 # the full run, ~15-20 min
#   SCALE_QUICK=1 bash benches/servers/scale.sh   # small sizes, ~3 min (checks the harness)
#
# Steps (servers pinned to core 0, load generators to core 1, see lib.sh;
# every step bounded in time; servers and load stopped by PID):
#  1. Idle connections: for each N in IDLE_NS (1k 5k 15k), each server:
#     one warm-up echo, VmRSS; then `scale_load hold` opens N connections,
#     each does one 8-byte echo (one PING for the Redis pair) and stays idle;
#     VmRSS again: (after - before) / N. Servers: examples/echo_server,
#     examples/echo_server_async, mio_echo, tokio_echo, node_echo.js,
#     examples/mini_redis, redis-server.
#  2. Accept rate: `scale_load accept` makes ACCEPT_N (100k) short
#     connections, 64 in flight: connect, one 8-byte echo, close with a RST
#     (SO_LINGER 0). Connections/s and server CPU per connection. The
#     evloop callback server here is benches/servers/idle_echo (echo_server
#     without its per-connection log lines); echo_server_async logs three
#     lines per connection and that is part of its figure.
#  3. CPU per round trip: `echo_load ADDR C RT_SECS 64` for C in RT_CONNS
#     (1 100 1k 10k), every server at one size, then the next size; ROUNDS
#     rounds, medians. Server utime+stime / round trips.
#  4. Idle loop: IDLE_N (10k) idle connections and one timer an hour away
#     (idle_echo; tokio_echo and node_echo.js with SCALE_FAR_TIMER=1;
#     echo_server_async and mio_echo as they are, without a timer): over
#     IDLE_SECS (10 s), context switches of all the server's threads
#     (/proc/PID/task/*/status) and CPU; then, unless STRACE=0, the
#     epoll_wait returns under `strace -c -f` over another IDLE_SECS.
#  5. Cores: wrk -t1 -c100 for CORE_SECS against http_hello (1 process) and
#     cluster_http (2 workers), node_http_hello.js and node_cluster_http.js
#     (2 workers), tokio_http_hello (current thread, and with WORKERS=2
#     on the multi-thread runtime). Unpinned: wrk shares the 2 cores with the servers,
#     so CPU per request is the figure that holds.
#  6. Timers, tasks, promises: `cargo bench --bench scale -- [--quick]` and
#     `node benches/node/scale.js [--quick]` when they exist; their
#     `csv,METRIC,SERIES,X,VALUE` lines become one table and one chart per
#     metric. SCALE_CSV=FILE adds rows from FILE (to test the tables).
#
# Output: the block between <!-- scale:begin --> and <!-- scale:end --> in
# OUT (default BENCHMARKS.md), after <!-- notes --> (appended the first
# time), and the charts in benches/charts/*.svg (python3 chart.py).
# Progress on stderr.
#
# Environment: SCALE_QUICK, OUT, IDLE_NS, ACCEPT_N, RT_CONNS, RT_SECS,
# ROUNDS, IDLE_N, IDLE_SECS, CORE_SECS, STRACE, SECTIONS (default
# "rss accept rt idle cores timers": run only some), PRIO (see lib.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/servers/lib.sh

T_START=$(date +%s)
LOAD0=$(cut -d" " -f1-3 /proc/loadavg)
QUICK=${SCALE_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  IDLE_NS=${IDLE_NS:-"200 1000 2000"}
  ACCEPT_N=${ACCEPT_N:-5000}
  RT_CONNS=${RT_CONNS:-"1 100 1000"}
  RT_SECS=${RT_SECS:-1}
  ROUNDS=${ROUNDS:-1}
  IDLE_N=${IDLE_N:-1000}
  IDLE_SECS=${IDLE_SECS:-2}
  CORE_SECS=${CORE_SECS:-2}
else
  IDLE_NS=${IDLE_NS:-"1000 5000 15000"}
  ACCEPT_N=${ACCEPT_N:-100000}
  RT_CONNS=${RT_CONNS:-"1 100 1000 10000"}
  RT_SECS=${RT_SECS:-6}
  ROUNDS=${ROUNDS:-2}
  IDLE_N=${IDLE_N:-10000}
  IDLE_SECS=${IDLE_SECS:-10}
  CORE_SECS=${CORE_SECS:-10}
fi
STRACE=${STRACE:-1}
SETTLE_MAX=${SETTLE_MAX:-30}
OUT=${OUT:-BENCHMARKS.md}
SECTIONS=${SECTIONS:-"rss accept rt idle cores timers"}
CHARTS=benches/charts
MINI_PORT=${MINI_PORT:-6392}
REDIS_PORT=${REDIS_PORT:-6393}
mkdir -p "$CHARTS"
want() { [[ " $SECTIONS " == *" $1 "* ]]; }

HOLDER_PID=
scale_cleanup() {
  if [[ -n $HOLDER_PID ]]; then kill "$HOLDER_PID" 2>/dev/null || true; wait "$HOLDER_PID" 2>/dev/null || true; fi
  lib_cleanup
}
trap scale_cleanup EXIT

command -v cargo >/dev/null 2>&1 || { echo "cargo not found: this benchmark needs a Rust toolchain" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || ensure_tool python3 python3 || { echo "python3 is needed for the charts" >&2; exit 1; }
HAVE_NODE=0
command -v node >/dev/null 2>&1 && HAVE_NODE=1 || log "node not found: its servers are skipped"
HAVE_REDIS=0
ensure_tool redis-server redis-server && HAVE_REDIS=1 || log "no redis-server: skipped"
HAVE_WRK=0
if want cores; then ensure_tool wrk wrk && HAVE_WRK=1 || log "no wrk: the cores section is skipped"; fi
[[ $STRACE == 1 ]] && { ensure_tool strace strace || STRACE=0; }

build_examples scale_load echo_load echo_server echo_server_async mio_echo tokio_echo idle_echo mini_redis
if want cores; then build_examples http_hello cluster_http tokio_http_hello; fi
[[ ${BUILT[scale_load]} == 1 && ${BUILT[echo_load]} == 1 ]] || { echo "the load tools do not build" >&2; exit 1; }

# --- servers ----------------------------------------------------------------
# server_cmd LABEL PORT [idle]: sets the array CMD and READY (probe), or
# returns 1 when the server cannot run here. `idle`: the far-timer variant.
server_cmd() {
  local label=$1 port=$2 idle=${3:-} ex=""
  READY=echo_answers
  case $label in
    evloop) ex=echo_server; [[ -n $idle ]] && ex=idle_echo ;;
    evloop-async) ex=echo_server_async ;;
    mio) ex=mio_echo ;;
    tokio) ex=tokio_echo ;;
    node)
      [[ $HAVE_NODE == 1 ]] || return 1
      CMD=(env "SCALE_FAR_TIMER=${idle:+1}" node benches/servers/node_echo.js "127.0.0.1:$port")
      return 0 ;;
    mini_redis) ex=mini_redis; READY=redis_answers ;;
    redis-server)
      [[ $HAVE_REDIS == 1 ]] || return 1
      READY=redis_answers
      CMD=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no
        --daemonize no --logfile '' --maxclients 19000)
      return 0 ;;
  esac
  [[ ${BUILT[$ex]:-0} == 1 ]] || return 1
  CMD=("$EXAMPLES/$ex" "127.0.0.1:$port")
  [[ $label == tokio && -n $idle ]] && CMD=(env SCALE_FAR_TIMER=1 "${CMD[@]}")
  return 0
}
redis_answers() { # port -> 0 if PING gets +PONG
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "PING\r\n" >&3
    head -c 5 <&3' _ "$1" 2>/dev/null | grep -q '^+PONG'
}
ECHO_SERVERS=(evloop evloop-async mio tokio node)
declare -A PORT=([evloop]=7101 [evloop-async]=7102 [mio]=7103 [tokio]=7104 [node]=7105
  [mini_redis]=$MINI_PORT [redis-server]=$REDIS_PORT)

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
ctxt() { # pid -> voluntary + involuntary context switches, all threads
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }'
}
kv() { tr ' ' '\n' <"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

# hold_start PORT N SECONDS MODE OUTFILE: start the holder (core 1) and wait
# until it has every connection open (bounded); 1 on failure.
hold_start() {
  local port=$1 n=$2 secs=$3 mode=$4 out=$5 i
  "${PIN_LOAD[@]}" "$EXAMPLES/scale_load" hold "127.0.0.1:$port" "$n" "$secs" "$mode" >"$out" 2>&1 &
  HOLDER_PID=$!
  for ((i = 0; i < 1200; i++)); do
    grep -q '^ready' "$out" 2>/dev/null && return 0
    kill -0 "$HOLDER_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "holder failed: $(tail -n 2 "$out")"
  hold_stop
  return 1
}
hold_stop() {
  [[ -n $HOLDER_PID ]] || return 0
  kill "$HOLDER_PID" 2>/dev/null || true
  wait "$HOLDER_PID" 2>/dev/null || true
  HOLDER_PID=
}

# chart NAME TITLE XLABEL YLABEL FLAGS... < rows: writes benches/charts/NAME.svg
chart() {
  local name=$1 title=$2 xl=$3 yl=$4
  shift 4
  python3 benches/servers/chart.py "$CHARTS/$name.svg" --title "$title" --x-label "$xl" --y-label "$yl" "$@" ||
    log "chart $name failed"
}

# table_from_rows XHEADER FORMAT < rows "series,x,y": a Markdown table,
# series as columns (first-seen order), x as rows (numeric order).
table_from_rows() {
  awk -F, -v xh="$1" -v f="$2" '
    NF == 3 {
      if (!($1 in seen)) { seen[$1] = 1; cols[++nc] = $1 }
      if (!($2 in xs)) { xs[$2] = 1; xv[++nx] = $2 }
      v[$1 SUBSEP $2] = $3
    }
    END {
      for (i = 1; i <= nx; i++) for (j = i + 1; j <= nx; j++) if (xv[j] + 0 < xv[i] + 0) { t = xv[i]; xv[i] = xv[j]; xv[j] = t }
      printf "| %s |", xh; for (c = 1; c <= nc; c++) printf " %s |", cols[c]; print ""
      printf "|---|"; for (c = 1; c <= nc; c++) printf "---|"; print ""
      for (i = 1; i <= nx; i++) {
        printf "| %s |", xv[i]
        for (c = 1; c <= nc; c++) { k = cols[c] SUBSEP xv[i]; if (k in v) printf " " f " |", v[k]; else printf " n/a |" }
        print ""
      }
    }'
}

BLOCK=$WORK/block.md
: >"$BLOCK"
TARGETS=$WORK/targets.md
: >"$TARGETS"
emit() { printf '%s\n' "$@" >>"$BLOCK"; }
met() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || a == "nan") print "not measured"; else if (a + 0 <= b + 0) print "**met**"; else print "**not met**" }'; }

# --- 1. RSS per idle connection ----------------------------------------------
if want rss; then
  RSS_ROWS=$WORK/rss.csv REDIS_ROWS=$WORK/redis.csv
  : >"$RSS_ROWS"; : >"$REDIS_ROWS"
  declare -A RSS_PER
  for n in $IDLE_NS; do
    for label in "${ECHO_SERVERS[@]}" mini_redis redis-server; do
      port=${PORT[$label]}
      server_cmd "$label" "$port" || { log "$label: not available, skipped"; continue; }
      mode=echo rows=$RSS_ROWS
      [[ $label == mini_redis || $label == redis-server ]] && mode=ping rows=$REDIS_ROWS
      start_server "$label" "$READY" "$port" -- "${CMD[@]}" || continue
      if timeout 20 "$EXAMPLES/scale_load" hold "127.0.0.1:$port" 1 0 "$mode" >/dev/null 2>&1; then
        sleep 0.5
        before=$(rss_kb "$SERVER_PID")
        if hold_start "$port" "$n" 300 "$mode" "$WORK/hold.txt"; then
          sleep 1
          after=$(rss_kb "$SERVER_PID")
          per=$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
          RSS_PER[$label,$n]=$per
          echo "$label,$n,$per" >>"$rows"
          log "$label, $n idle connections: RSS ${before} kB -> ${after} kB: $per B per connection"
          hold_stop
        fi
      else
        log "$label: the warm-up exchange failed"
      fi
      stop_server "$SERVER_PID"
    done
  done
  chart rss_per_idle_connection "RSS per idle connection (one 8-byte echo each)" "open connections" "bytes per connection" --logx --logy <"$RSS_ROWS"
  chart redis_memory_per_client "RSS per idle Redis client (one PING each)" "open clients" "bytes per client" --logx <"$REDIS_ROWS"
  emit "### Memory per idle connection" "" \
    "Each connection did one 8-byte echo (\`scale_load hold\`), then stays idle; (VmRSS with N open - VmRSS after one warm-up connection) / N, in bytes." "" \
    "![RSS per idle connection](benches/charts/rss_per_idle_connection.svg)" ""
  table_from_rows "connections" "%s" <"$RSS_ROWS" >>"$BLOCK"
  emit "" "mini_redis against redis-server (\`--maxclients 19000\`), each client did one PING, bytes per client:" "" \
    "![RSS per Redis client](benches/charts/redis_memory_per_client.svg)" ""
  table_from_rows "clients" "%s" <"$REDIS_ROWS" >>"$BLOCK"
  emit ""
  nmax=$(tr ' ' '\n' <<<"$IDLE_NS" | sort -n | tail -n 1)
  v=${RSS_PER[evloop,$nmax]:-}
  echo "| idle callback connection <= 256 B | ${v:-n/a} B at $nmax | $(met "$v" 256) |" >>"$TARGETS"
  v=${RSS_PER[evloop-async,$nmax]:-}
  echo "| idle async connection <= 1 KiB | ${v:-n/a} B at $nmax | $(met "$v" 1024) |" >>"$TARGETS"
fi

# --- 2. accept rate -------------------------------------------------------------
if want accept; then
  ACC_ROWS=$WORK/accept.csv
  : >"$ACC_ROWS"
  emit "### Accept rate" "" \
    "$ACCEPT_N short connections, 64 in flight (\`scale_load accept\`, core 1): connect, one 8-byte echo, close with a RST (SO_LINGER 0)." \
    "evloop here is \`idle_echo\` (echo_server's callbacks without its per-connection log lines); evloop-async is" \
    "\`echo_server_async\` as it is, which prints three log lines per connection (to a file). The client is one thread on" \
    "one core and the kernel's connect/RST work is on its side, so it bounds connections/s: compare the server's CPU per connection." "" \
    "![accept: server CPU per connection](benches/charts/accept_cpu.svg)" "" \
    "| server | connections/s | server CPU us per connection | errors |" "|---|---|---|---|"
  for label in "${ECHO_SERVERS[@]}"; do
    port=${PORT[$label]}
    server_cmd "$label" "$port" idle || { log "$label: not available, skipped"; continue; }
    start_server "$label" "$READY" "$port" -- "${CMD[@]}" || continue
    out=$WORK/accept-$label.txt
    c0=$(cpu_ticks "$SERVER_PID")
    log "$label: $ACCEPT_N short connections"
    if timeout 200 "${PIN_LOAD[@]}" "$EXAMPLES/scale_load" accept "127.0.0.1:$port" "$ACCEPT_N" 64 150 >"$out" 2>&1; then
      c1=$(cpu_ticks "$SERVER_PID")
      n=$(kv conns "$out") rate=$(kv rate "$out") errs=$(kv errors "$out")
      cpu=$(per_op_us $((c1 - c0)) "$n")
      log "$label: $rate connections/s, $cpu us CPU per connection, $errs errors"
      emit "| $label | $rate | $cpu | $errs |"
      echo "$label,$label,$cpu" >>"$ACC_ROWS"
    else
      log "$label: accept run failed: $(tail -n 2 "$out")"
      emit "| $label | failed: $(tail -n 1 "$out") | | |"
    fi
    stop_server "$SERVER_PID"
  done
  chart accept_cpu "Accept: server CPU per short connection" "server" "CPU us per connection" --bars <"$ACC_ROWS"
  emit ""
fi

# --- 3. CPU per round trip ------------------------------------------------------
if want rt; then
  RT_ROWS=$WORK/rt.csv
  : >"$RT_ROWS"
  declare -A R_CPU R_RTPS
  for c in $RT_CONNS; do
    for ((round = 1; round <= ROUNDS; round++)); do
      for label in "${ECHO_SERVERS[@]}"; do
        port=${PORT[$label]}
        server_cmd "$label" "$port" || continue
        start_server "$label" "$READY" "$port" -- "${CMD[@]}" || continue
        out=$WORK/rt-$label-$c.txt
        c0=$(cpu_ticks "$SERVER_PID")
        log "$label, $c conn(s), round $round: echo_load for ${RT_SECS}s"
        if timeout $((RT_SECS + 120)) "${PIN_LOAD[@]}" "$EXAMPLES/echo_load" "127.0.0.1:$port" "$c" "$RT_SECS" 64 >"$out" 2>&1; then
          c1=$(cpu_ticks "$SERVER_PID")
          cpu=$(per_op_us $((c1 - c0)) "$(kv round_trips "$out")")
          R_CPU[$label,$c]+="$cpu " R_RTPS[$label,$c]+="$(kv rtps "$out") "
          log "$label, $c conn(s): $(kv rtps "$out") round trips/s, $cpu us CPU per round trip"
        else
          log "$label, $c conn(s): echo_load failed: $(tail -n 1 "$out")"
        fi
        stop_server "$SERVER_PID"
      done
    done
  done
  emit "### Server CPU per echo round trip" "" \
    "\`echo_load ADDR C ${RT_SECS} 64\` (core 1) against each server (core 0), C connections each doing 64-byte round trips;" \
    "servers alternate at each size; median of $ROUNDS round(s). Server utime+stime (/proc/PID/stat) / round trips, in us;" \
    "in brackets the ratio to raw mio of this run, then round trips/s." "" \
    "![CPU per round trip](benches/charts/cpu_per_round_trip.svg)" ""
  head="| connections |" sep="|---|"
  for label in "${ECHO_SERVERS[@]}"; do head+=" $label |"; sep+="---|"; done
  emit "$head" "$sep"
  worst="" worst_async=""
  for c in $RT_CONNS; do
    line="| $c |"
    floor=$(median "${R_CPU[mio,$c]:-}")
    for label in "${ECHO_SERVERS[@]}"; do
      v=$(median "${R_CPU[$label,$c]:-}")
      if [[ -z $v ]]; then line+=" n/a |"; continue; fi
      r=$(median "${R_RTPS[$label,$c]}")
      line+=" $v ($(ratio "$v" "$floor"), $(printf '%.0f' "$r")/s) |"
      echo "$label,$c,$v" >>"$RT_ROWS"
      if [[ -n $floor && $label == evloop* ]]; then
        x=$(awk -v a="$v" -v b="$floor" 'BEGIN { printf "%.2f", a / b }')
        if [[ $label == evloop ]]; then
          [[ -z $worst ]] || awk -v a="$x" -v b="${worst%% *}" 'BEGIN { exit !(a > b) }' && worst="$x at $c"
        else
          [[ -z $worst_async ]] || awk -v a="$x" -v b="${worst_async%% *}" 'BEGIN { exit !(a > b) }' && worst_async="$x at $c"
        fi
      fi
    done
    emit "$line"
  done
  emit ""
  chart cpu_per_round_trip "Server CPU per echo round trip" "active connections" "CPU us per round trip" --logx <"$RT_ROWS"
  echo "| CPU per round trip within 1.05x of raw mio at every size (callbacks) | worst ${worst:-n/a} connections | $(met "${worst%% *}" 1.05) |" >>"$TARGETS"
  echo "| the same, async (not a target of the issue, for reference) | worst ${worst_async:-n/a} connections | $(met "${worst_async%% *}" 1.05) |" >>"$TARGETS"
fi

# --- 4. idle loop -----------------------------------------------------------------
if want idle; then
  emit "### Idle loop: $IDLE_N idle connections and one far timer" "" \
    "Each server holds $IDLE_N idle connections (one 8-byte echo each) and, where it can, one timer an hour away" \
    "(evloop: \`idle_echo\`; tokio and node: SCALE_FAR_TIMER=1; evloop-async and mio: no timer). Over ${IDLE_SECS}s:" \
    "context switches of all the server's threads (/proc/PID/task/*/status, voluntary + involuntary) and CPU;" \
    "then, over another ${IDLE_SECS}s under \`strace -c -f\`, the epoll_wait/epoll_pwait calls that returned." \
    "The window starts once the server has had one second without a context switch (at most ${SETTLE_MAX}s after the connections are up)." "" \
    "| server | wakeups/s (context switches) | CPU ms over ${IDLE_SECS}s | epoll_wait returns/s (strace) |" "|---|---|---|---|"
  IDLE_ROWS=$WORK/idle.csv
  : >"$IDLE_ROWS"
  for label in "${ECHO_SERVERS[@]}"; do
    port=${PORT[$label]}
    server_cmd "$label" "$port" idle || continue
    start_server "$label" "$READY" "$port" -- "${CMD[@]}" || continue
    if hold_start "$port" "$IDLE_N" 600 echo "$WORK/hold.txt"; then
      # Let the connection burst's work settle: wait (up to SETTLE_MAX s)
      # for a second without a context switch; a loop that never settles
      # is measured anyway.
      settle=0 x0=$(ctxt "$SERVER_PID")
      while ((settle < SETTLE_MAX)); do
        sleep 1
        settle=$((settle + 1))
        x1=$(ctxt "$SERVER_PID")
        [[ $x1 == "$x0" ]] && break
        x0=$x1
      done
      ((settle > 1)) && log "$label: settled after ${settle}s"
      x0=$(ctxt "$SERVER_PID") c0=$(cpu_ticks "$SERVER_PID")
      sleep "$IDLE_SECS"
      x1=$(ctxt "$SERVER_PID") c1=$(cpu_ticks "$SERVER_PID")
      wps=$(awk -v a="$x0" -v b="$x1" -v s="$IDLE_SECS" 'BEGIN { printf "%.1f", (b - a) / s }')
      cms=$(awk -v t=$((c1 - c0)) -v hz="$TICKS" 'BEGIN { printf "%.0f", t * 1000 / hz }')
      eps=n/a
      if [[ $STRACE == 1 ]]; then
        timeout -s INT "$IDLE_SECS" strace -c -f -p "$SERVER_PID" -o "$WORK/idle-strace.txt" 2>/dev/null || true
        eps=$(awk -v s="$IDLE_SECS" '$NF ~ /^epoll_(p)?wait$/ && $4 ~ /^[0-9]+$/ { n += $4 } END { printf "%.1f", n / s }' "$WORK/idle-strace.txt" 2>/dev/null || echo n/a)
      fi
      log "$label idle: $wps context switches/s, $cms ms CPU in ${IDLE_SECS}s, $eps epoll_wait/s"
      emit "| $label | $wps | $cms | $eps |"
      echo "context switches/s,$label,$wps" >>"$IDLE_ROWS"
      [[ $eps != n/a ]] && echo "epoll_wait returns/s,$label,$eps" >>"$IDLE_ROWS"
      [[ $label == evloop ]] && echo "| idle loop: zero wakeups ($IDLE_N connections + a far timer) | $wps context switches/s, $eps epoll_wait/s, $cms ms CPU in ${IDLE_SECS}s | $(met "$wps" 0) |" >>"$TARGETS"
      hold_stop
    fi
    stop_server "$SERVER_PID"
  done
  emit "" "![idle loop: wakeups](benches/charts/idle_wakeups.svg)" ""
  chart idle_wakeups "Idle loop: $IDLE_N idle connections + a far timer" "server" "per second" --bars <"$IDLE_ROWS"
fi

# --- 5. cores ---------------------------------------------------------------------
if want cores && [[ $HAVE_WRK == 1 ]]; then
  tree_ticks() { # utime+stime of a process and its children (cluster workers)
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
      [[ -r /proc/$pid/stat ]] || continue
      total=$((total + $(cpu_ticks "$pid" 2>/dev/null || echo 0)))
    done
    echo "$total"
  }
  CORE_ROWS_RPS=$WORK/cores-rps.csv CORE_ROWS_CPU=$WORK/cores-cpu.csv
  : >"$CORE_ROWS_RPS"; : >"$CORE_ROWS_CPU"
  emit "### Cores: 2 workers against one" "" \
    "\`wrk -t1 -c100 -d${CORE_SECS}s\` against each HTTP hello-world server, unpinned: on this $(nproc)-core machine wrk shares" \
    "the cores with the servers, so requests/s cannot double; CPU per request (all the server's processes and threads) is the figure that holds." "" \
    "![cores: requests/s](benches/charts/cores_rps.svg)" "" \
    "![cores: CPU per request](benches/charts/cores_cpu.svg)" "" \
    "| server | family | shape | requests/s | CPU us/request |" "|---|---|---|---|---|"
  CORES=(
    "evloop|1 process|8111|$EXAMPLES/http_hello 127.0.0.1:8111|http_hello"
    "evloop|2 workers|8112|$EXAMPLES/cluster_http 127.0.0.1:8112 2|cluster_http"
    "node|1 process|8113|node benches/servers/node_http_hello.js 127.0.0.1:8113|node"
    "node|2 workers|8114|node benches/servers/node_cluster_http.js 127.0.0.1:8114 2|node"
    "tokio|1 thread|8115|$EXAMPLES/tokio_http_hello 127.0.0.1:8115|tokio_http_hello"
    "tokio|2 workers|8116|$EXAMPLES/tokio_http_hello 127.0.0.1:8116 2|tokio_http_hello"
  )
  for entry in "${CORES[@]}"; do
    IFS='|' read -r fam shape port cmdline need <<<"$entry"
    if [[ $need == node ]]; then [[ $HAVE_NODE == 1 ]] || continue
    elif [[ ${BUILT[$need]:-0} != 1 ]]; then continue; fi
    read -ra cmd <<<"$cmdline"
    name=${cmd[0]##*/}
    [[ $name == node ]] && name=${cmd[1]##*/}
    saved=("${PIN_SERVER[@]}")
    PIN_SERVER=()
    started=1
    start_server "$fam-$shape" http_answers "$port" -- "${cmd[@]}" || started=0
    PIN_SERVER=("${saved[@]}")
    [[ $started == 1 ]] || continue
    # Every worker up and past its start-up work before CPU is counted.
    if [[ $shape == "2 workers" ]]; then sleep 2; else sleep 0.5; fi
    out=$WORK/wrk-$port.txt
    c0=$(tree_ticks "$SERVER_PID")
    log "$fam $shape: wrk -t1 -c100 -d${CORE_SECS}s"
    if timeout $((CORE_SECS + 30)) wrk -t1 -c100 -d"${CORE_SECS}s" "http://127.0.0.1:$port/" >"$out" 2>&1; then
      c1=$(tree_ticks "$SERVER_PID")
      rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
      n=$(awk '/ requests in / { print $1 }' "$out")
      cpu=$(per_op_us $((c1 - c0)) "$n")
      log "$fam $shape: $rps req/s, $cpu us CPU per request"
      emit "| $name | $fam | $shape | $rps | $cpu |"
      echo "$shape,$fam,$rps" >>"$CORE_ROWS_RPS"
      echo "$shape,$fam,$cpu" >>"$CORE_ROWS_CPU"
    else
      emit "| $name | $fam | $shape | failed | |"
    fi
    stop_server "$SERVER_PID"
  done
  # One legend entry per shape: "1 process"/"1 thread" are the same column.
  sed -i 's/^1 thread,/1 process,/' "$CORE_ROWS_RPS" "$CORE_ROWS_CPU"
  chart cores_rps "Requests/s: one process (thread) against 2 workers" "server" "requests/s" --bars <"$CORE_ROWS_RPS"
  chart cores_cpu "CPU per request: one process (thread) against 2 workers" "server" "CPU us per request" --bars <"$CORE_ROWS_CPU"
  emit ""
fi

# --- 6. timers, tasks, promises -------------------------------------------------
if want timers; then
  CSV=$WORK/timers.csv
  : >"$CSV"
  q=()
  [[ $QUICK == 1 ]] && q=(--quick)
  if [[ -f benches/scale.rs ]] && grep -q '^name = "scale"' Cargo.toml; then
    log "cargo bench --bench scale -- ${q[*]}"
    timeout 1200 cargo bench --quiet --bench scale -- "${q[@]}" 2>"$WORK/bench-scale.err" | grep '^csv,' >>"$CSV" ||
      log "cargo bench --bench scale failed or printed no rows: $(tail -n 3 "$WORK/bench-scale.err")"
  else
    log "benches/scale.rs not here yet: the Rust timer/task/promise rows are skipped"
  fi
  if [[ -f benches/node/scale.js && $HAVE_NODE == 1 ]]; then
    log "node benches/node/scale.js ${q[*]}"
    timeout 600 node benches/node/scale.js "${q[@]}" 2>"$WORK/node-scale.err" | grep '^csv,' >>"$CSV" ||
      log "node benches/node/scale.js failed or printed no rows"
  else
    log "benches/node/scale.js not here: the Node timer/task/promise rows are skipped"
  fi
  [[ -n ${SCALE_CSV:-} && -f ${SCALE_CSV:-} ]] && grep '^csv,' "$SCALE_CSV" >>"$CSV"
  emit "### Timers, tasks and promises" ""
  if [[ ! -s $CSV ]]; then
    emit "No rows: \`cargo bench --bench scale\` and \`benches/node/scale.js\` were not found or printed nothing." ""
  else
    emit "From \`cargo bench --bench scale\` and \`node benches/node/scale.js\` (${q[*]:-full}); X = the number pending." ""
    for metric in $(cut -d, -f2 "$CSV" | awk '!seen[$0]++'); do
      rows=$WORK/m-$metric.csv
      awk -F, -v m="$metric" '$2 == m { print $3 "," $4 "," $5 }' "$CSV" >"$rows"
      unit="ns per operation" ylog=()
      [[ $metric == *_bytes ]] && unit="bytes per pending item"
      # A log y axis when the series lie more than 20x apart.
      awk -F, 'NR == 1 || $3 < lo { lo = $3 } NR == 1 || $3 > hi { hi = $3 } END { exit !(lo > 0 && hi / lo > 20) }' "$rows" && ylog=(--logy)
      chart "$metric" "$metric" "pending" "$unit" --logx "${ylog[@]}" <"$rows"
      emit "**$metric** ($unit)" "" "![$metric](benches/charts/$metric.svg)" ""
      table_from_rows "pending" "%s" <"$rows" >>"$BLOCK"
      emit ""
    done
  fi
fi

# --- BENCHMARKS.md -----------------------------------------------------------------
T_END=$(date +%s)
MIN=$(awk -v s=$((T_END - T_START)) 'BEGIN { printf "%d min %d s", s / 60, s % 60 }')
FULL=$WORK/full.md
{
  echo "<!-- scale:begin -->"
  echo "## Scaling (issue 25): \`bash benches/servers/scale.sh\`"
  echo
  echo "Written by \`$( [[ $QUICK == 1 ]] && echo "SCALE_QUICK=1 ")bash benches/servers/scale.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)'); the run took $MIN."
  echo "Machine: $(nproc) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr);"
  echo "load average at the start: $LOAD0. Servers on core 0, load generators on core 1$PRIO_NOTE, except the cores section (unpinned)."
  echo
  if [[ -s $TARGETS ]]; then
    echo "### Targets"
    echo
    echo "| target | measured | |"
    echo "|---|---|---|"
    cat "$TARGETS"
    echo
  fi
  cat "$BLOCK"
  echo "<!-- scale:end -->"
} >"$FULL"
[[ -f $OUT ]] || : >"$OUT"
python3 - "$OUT" "$FULL" <<'EOF'
import sys
out, block = sys.argv[1], open(sys.argv[2]).read()
text = open(out).read()
b, e = "<!-- scale:begin -->", "<!-- scale:end -->"
if b in text and e in text:
    i, j = text.index(b), text.index(e) + len(e)
    text = text[:i] + block.rstrip("\n") + text[j:]
else:
    if "<!-- notes -->" not in text:
        text = text.rstrip("\n") + "\n\n<!-- notes -->\n"
    text = text.rstrip("\n") + "\n\n" + block
open(out, "w").write(text)
EOF
log "wrote the scale block to $OUT and the charts to $CHARTS/ ($MIN)"
cat "$FULL"
