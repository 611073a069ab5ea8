#!/usr/bin/env bash
# Server benchmark: HTTP/1.1 hello world under wrk, evloop against a raw mio
# floor, a tokio current-thread anchor and Node's `http` module, all
# measured in the same run.
#
#   bash benches/servers/run.sh            # 10 s per server
#   DURATION=3 bash benches/servers/run.sh # quicker
#
# For each server in turn (evloop's examples/http_hello and http_hello_async
# if they build, benches/servers/mio_http_hello, tokio_http_hello, and
# node_http_hello.js when `node` is installed): start it pinned to core 0,
# wait until it answers, run
#   taskset -c 1 wrk -t1 -c100 -d${DURATION}s --latency http://127.0.0.1:PORT/
# and record req/s, p50/p99 latency, the server's peak RSS (VmHWM) and its
# CPU time (utime+stime) over the wrk run, hence CPU microseconds per
# request. Then, unless STRACE=0, the same server process is loaded once
# more for STRACE_SECS (default 3) under `strace -c -f -p PID` to count its
# syscalls per request (strace slows the server down; only the counts are
# used). Then the server is stopped by its PID. Loopback only.
#
# Prints progress on stderr and a Markdown table on stdout (all.sh puts it
# in BENCHMARKS.md).
#
# ROUNDS (default 1) repeats the whole sequence of servers that many times,
# alternating them, and reports each figure's median over the rounds (one
# run on a shared machine swings by +-20%; 3 rounds or more settle it).
#
# Environment: DURATION (seconds, default 10), CONNECTIONS (default 100),
# ROUNDS (default 1), STRACE (default 1), STRACE_SECS (default 3), PRIO (rt:
# server and wrk under SCHED_FIFO, see lib.sh; recommended on a shared
# machine).
# Installs wrk (and strace) with apt-get when missing. Every step is bounded
# in time.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/servers/lib.sh

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-100}
STRACE=${STRACE:-1}
ROUNDS=${ROUNDS:-1}

ensure_tool wrk wrk || { echo "wrk is needed" >&2; exit 1; }
[[ $STRACE == 1 ]] && { ensure_tool strace strace || STRACE=0; }
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: this benchmark needs a Rust toolchain" >&2; exit 1; }

# label port how (example:NAME or node:FILE)
SERVERS=(
  "evloop 8080 example:http_hello"
  "evloop-async 8083 example:http_hello_async"
  "mio 8081 example:mio_http_hello"
  "tokio 8082 example:tokio_http_hello"
  "node-http 8084 node:benches/servers/node_http_hello.js"
)
FLOOR=mio
build_examples http_hello http_hello_async mio_http_hello tokio_http_hello

wrk_cmd() { # port seconds -> sets LOAD, the wrk command line (pinned to core 1)
  LOAD=("${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency "http://127.0.0.1:$1/")
}

declare -A RPS P50 P99 RSS CPU BUSY SYS SYSB STATUS
# Per-round figures, space-separated, for the medians.
declare -A R_RPS R_P50 R_P99 R_RSS R_CPU
for ((round = 1; round <= ROUNDS; round++)); do
[[ $ROUNDS -gt 1 ]] && log "round $round of $ROUNDS"
for s in "${SERVERS[@]}"; do
  read -r label port how <<<"$s"
  case $how in
    example:*)
      name=${how#example:}
      if [[ ${BUILT[$name]} != 1 ]]; then STATUS[$label]="skipped: $name does not build"; continue; fi
      cmd=("$EXAMPLES/$name" "127.0.0.1:$port")
      ;;
    node:*)
      if ! command -v node >/dev/null 2>&1; then STATUS[$label]="skipped: no node"; continue; fi
      cmd=(node "${how#node:}" "127.0.0.1:$port")
      ;;
  esac
  if ! start_server "$label" http_answers "$port" -- "${cmd[@]}"; then
    STATUS[$label]="failed: did not answer on port $port (or port busy)"
    continue
  fi

  out="$WORK/wrk-$label.txt"
  cpu0=$(cpu_ticks "$SERVER_PID")
  log "$label: wrk -t1 -c$CONNECTIONS -d${DURATION}s"
  wrk_cmd "$port" "$DURATION"
  if ! timeout $((DURATION + 30)) "${LOAD[@]}" >"$out" 2>&1; then
    STATUS[$label]="failed: wrk did not finish"
    cat "$out" >&2
    stop_server "$SERVER_PID"
    continue
  fi
  cpu1=$(cpu_ticks "$SERVER_PID")
  RSS[$label]=$(peak_rss_kb "$SERVER_PID")
  RPS[$label]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  requests=$(awk '/ requests in / { print $1 }' "$out")
  P50[$label]=$(to_us "$(awk '$1 == "50%" { print $2 }' "$out")")
  P99[$label]=$(to_us "$(awk '$1 == "99%" { print $2 }' "$out")")
  CPU[$label]=$(per_op_us $((cpu1 - cpu0)) "$requests")
  BUSY[$label]=$(awk -v c="${CPU[$label]}" -v r="${RPS[$label]}" 'BEGIN { printf "%.0f%%", c * r / 1e4 }')
  STATUS[$label]=ok
  if grep -Eq 'Socket errors|Non-2xx' "$out"; then
    log "$label: wrk reported errors:"
    grep -E 'Socket errors|Non-2xx' "$out" | sed 's/^/   | /' >&2
    STATUS[$label]="ok, but wrk reported errors"
  fi
  log "$label: ${RPS[$label]} req/s, ${CPU[$label]} us CPU/req"
  R_RPS[$label]+="${RPS[$label]} "
  R_P50[$label]+="${P50[$label]} "
  R_P99[$label]+="${P99[$label]} "
  R_RSS[$label]+="${RSS[$label]} "
  R_CPU[$label]+="${CPU[$label]} "

  # Syscalls are counted once: they do not vary between rounds.
  if [[ $STRACE == 1 && $round == 1 ]]; then
    log "$label: once more under strace -c -f for ${STRACE_SECS}s"
    wrk_cmd "$port" "$STRACE_SECS"
    res=$(strace_run "$SERVER_PID" "$WORK/wrk-strace-$label.txt" "${LOAD[@]}")
    n=$(awk '/ requests in / { print $1 }' "$WORK/wrk-strace-$label.txt")
    if [[ -n $res && ${n:-0} -gt 0 ]]; then
      SYS[$label]=$(awk -v t="${res%% *}" -v n="$n" 'BEGIN { printf "%.2f", t / n }')
      SYSB[$label]=$(per_req_breakdown "${res#* }" "$n")
      log "$label: ${SYS[$label]} syscalls/req (${SYSB[$label]})"
    fi
  fi
  stop_server "$SERVER_PID"
done
done

for s in "${SERVERS[@]}"; do
  read -r label _ _ <<<"$s"
  [[ -z ${R_CPU[$label]:-} ]] && continue
  RPS[$label]=$(median "${R_RPS[$label]}")
  P50[$label]=$(median "${R_P50[$label]}")
  P99[$label]=$(median "${R_P99[$label]}")
  RSS[$label]=$(median "${R_RSS[$label]}")
  CPU[$label]=$(median "${R_CPU[$label]}")
  BUSY[$label]=$(awk -v c="${CPU[$label]}" -v r="${RPS[$label]}" 'BEGIN { printf "%.0f%%", c * r / 1e4 }')
  # The last round's status may be a failure although earlier rounds ran.
  [[ ${STATUS[$label]} == ok* ]] || STATUS[$label]="ok (a round failed; median of the others)"
  if [[ $ROUNDS -gt 1 ]]; then
    log "$label CPU us/req by round: ${R_CPU[$label]}-> median ${CPU[$label]}"
  fi
done

# --- table (Markdown) ---------------------------------------------------------
echo "HTTP/1.1 hello world, \`wrk -t1 -c$CONNECTIONS -d${DURATION}s\`, server on core 0, wrk on core 1 ($(nproc) cores$PRIO_NOTE); medians of $ROUNDS round(s), servers alternating."
echo "Each cell: the figure (its ratio to the raw mio floor of this run)."
echo
echo "| server | req/s | p50 | p99 | peak RSS | CPU us/req | server core busy | syscalls/req |"
echo "|---|---|---|---|---|---|---|---|"
for s in "${SERVERS[@]}"; do
  read -r label _ _ <<<"$s"
  if [[ ${STATUS[$label]} != ok* ]]; then
    echo "| $label | ${STATUS[$label]} | | | | | | |"
    continue
  fi
  f=$FLOOR
  printf '| %s | %s | %s (%s) | %s (%s) | %s | %s | %s | %s |\n' "$label" \
    "$(cell "${RPS[$label]}" "${RPS[$f]:-}" '%.0f')" \
    "$(fmt_lat "${P50[$label]}")" "$(ratio "${P50[$label]}" "${P50[$f]:-}")" \
    "$(fmt_lat "${P99[$label]}")" "$(ratio "${P99[$label]}" "${P99[$f]:-}")" \
    "$(cell "$(awk -v k="${RSS[$label]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
      "$(awk -v k="${RSS[$f]:-0}" 'BEGIN { printf "%.1f", k / 1024 }')" '%s MB')" \
    "$(cell "${CPU[$label]}" "${CPU[$f]:-}" '%.2f')" "${BUSY[$label]}" \
    "$(cell "${SYS[$label]:-}" "${SYS[$f]:-}" '%s')"
done
echo
echo "Syscalls per request under strace (${STRACE_SECS}s of the same wrk load, the five most frequent):"
echo
for s in "${SERVERS[@]}"; do
  read -r label _ _ <<<"$s"
  [[ -n ${SYSB[$label]:-} ]] && echo "- $label: ${SYSB[$label]}"
done
echo
echo "CPU us/req: the server's utime+stime (/proc/PID/stat, all threads) over the wrk run"
echo "divided by the requests completed; server core busy = CPU us/req x req/s (near 100%:"
echo "server-bound; well under: wrk was the bottleneck). Higher is better for req/s; lower"
echo "for latency, RSS, CPU and syscalls."
