#!/usr/bin/env bash
# TCP echo benchmark: evloop's callback and async echo servers against a
# raw mio floor and a tokio current-thread anchor, under this repository's
# own load generator (benches/servers/echo_load.rs), in the same run.
#
#   bash benches/servers/echo.sh              # 10 s per server and setting
#   DURATION=3 bash benches/servers/echo.sh   # quicker
#
# For each number of connections (CONNS, default "1 100") and each server
# (examples/echo_server, examples/echo_server_async, benches/servers/mio_echo,
# benches/servers/tokio_echo): start it pinned to core 0, wait until it
# echoes, run
#   taskset -c 1 echo_load 127.0.0.1:PORT CONNS DURATION 64
# (every connection does 64-byte round trips one after the other) and
# record round trips/s, p50/p99 latency, the server's peak RSS and its CPU
# time (utime+stime) per round trip. Then, unless STRACE=0, the same
# process is loaded once more for STRACE_SECS under `strace -c -f -p PID`
# for its syscalls per round trip. The server is stopped by its PID.
# Loopback only; every step is bounded in time.
#
# Prints progress on stderr and Markdown tables on stdout.
#
# ROUNDS (default 1) repeats the servers that many times, alternating
# them, and reports each figure's median over the rounds (one round here
# can swing by more than the differences between servers).
#
# Environment: DURATION (default 10), CONNS (default "1 100"), SIZE
# (default 64), ROUNDS (default 1), STRACE (default 1), STRACE_SECS
# (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/servers/lib.sh

DURATION=${DURATION:-10}
CONNS=${CONNS:-"1 100"}
SIZE=${SIZE:-64}
STRACE=${STRACE:-1}
ROUNDS=${ROUNDS:-1}

[[ $STRACE == 1 ]] && { ensure_tool strace strace || STRACE=0; }
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: this benchmark needs a Rust toolchain" >&2; exit 1; }

# label port example
SERVERS=(
  "evloop 7001 echo_server"
  "evloop-async 7002 echo_server_async"
  "mio 7003 mio_echo"
  "tokio 7004 tokio_echo"
)
FLOOR=mio
build_examples echo_load echo_server echo_server_async mio_echo tokio_echo
[[ ${BUILT[echo_load]} == 1 ]] || { echo "the load generator does not build" >&2; exit 1; }

kv() { # key file -> value of key=value in echo_load's output line
  tr ' ' '\n' <"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}

declare -A RTPS P50 P99 RSS CPU BUSY SYS SYSB STATUS
# Per-round figures, space-separated, for the medians.
declare -A R_RTPS R_P50 R_P99 R_RSS R_CPU
for c in $CONNS; do
  for ((round = 1; round <= ROUNDS; round++)); do
  [[ $ROUNDS -gt 1 ]] && log "$c conn(s): round $round of $ROUNDS"
  for s in "${SERVERS[@]}"; do
    read -r label port name <<<"$s"
    key="$label,$c"
    if [[ ${BUILT[$name]} != 1 ]]; then STATUS[$key]="skipped: $name does not build"; continue; fi
    if ! start_server "$label" echo_answers "$port" -- "$EXAMPLES/$name" "127.0.0.1:$port"; then
      STATUS[$key]="failed: did not echo on port $port (or port busy)"
      continue
    fi
    out="$WORK/load-$label-$c.txt"
    load=("${PIN_LOAD[@]}" "$EXAMPLES/echo_load" "127.0.0.1:$port" "$c" "$DURATION" "$SIZE")
    cpu0=$(cpu_ticks "$SERVER_PID")
    log "$label, $c conn(s): echo_load for ${DURATION}s, $SIZE-byte messages"
    if ! timeout $((DURATION + 30)) "${load[@]}" >"$out" 2>&1; then
      STATUS[$key]="failed: $(tail -n 1 "$out")"
      stop_server "$SERVER_PID"
      continue
    fi
    cpu1=$(cpu_ticks "$SERVER_PID")
    RSS[$key]=$(peak_rss_kb "$SERVER_PID")
    RTPS[$key]=$(kv rtps "$out")
    P50[$key]=$(kv p50_us "$out")
    P99[$key]=$(kv p99_us "$out")
    CPU[$key]=$(per_op_us $((cpu1 - cpu0)) "$(kv round_trips "$out")")
    BUSY[$key]=$(awk -v c="${CPU[$key]}" -v r="${RTPS[$key]}" 'BEGIN { printf "%.0f%%", c * r / 1e4 }')
    STATUS[$key]=ok
    log "$label, $c conn(s): ${RTPS[$key]} round trips/s, ${CPU[$key]} us CPU per round trip"
    R_RTPS[$key]+="${RTPS[$key]} "
    R_P50[$key]+="${P50[$key]} "
    R_P99[$key]+="${P99[$key]} "
    R_RSS[$key]+="${RSS[$key]} "
    R_CPU[$key]+="${CPU[$key]} "

    # Syscalls are counted once: they do not vary between rounds.
    if [[ $STRACE == 1 && $round == 1 ]]; then
      log "$label, $c conn(s): once more under strace -c -f for ${STRACE_SECS}s"
      load=("${PIN_LOAD[@]}" "$EXAMPLES/echo_load" "127.0.0.1:$port" "$c" "$STRACE_SECS" "$SIZE")
      res=$(strace_run "$SERVER_PID" "$WORK/strace-load.txt" "${load[@]}")
      n=$(kv round_trips "$WORK/strace-load.txt")
      if [[ -n $res && ${n:-0} -gt 0 ]]; then
        SYS[$key]=$(awk -v t="${res%% *}" -v n="$n" 'BEGIN { printf "%.2f", t / n }')
        SYSB[$key]=$(per_req_breakdown "${res#* }" "$n")
        log "$label, $c conn(s): ${SYS[$key]} syscalls per round trip (${SYSB[$key]})"
      fi
    fi
    stop_server "$SERVER_PID"
  done
  done
  for s in "${SERVERS[@]}"; do
    read -r label _ _ <<<"$s"
    key="$label,$c"
    [[ -z ${R_CPU[$key]:-} ]] && continue
    RTPS[$key]=$(median "${R_RTPS[$key]}")
    P50[$key]=$(median "${R_P50[$key]}")
    P99[$key]=$(median "${R_P99[$key]}")
    RSS[$key]=$(median "${R_RSS[$key]}")
    CPU[$key]=$(median "${R_CPU[$key]}")
    BUSY[$key]=$(awk -v c="${CPU[$key]}" -v r="${RTPS[$key]}" 'BEGIN { printf "%.0f%%", c * r / 1e4 }')
    [[ ${STATUS[$key]} == ok* ]] || STATUS[$key]="ok (a round failed; median of the others)"
    if [[ $ROUNDS -gt 1 ]]; then
      log "$label, $c conn(s): round trips/s by round: ${R_RTPS[$key]}-> median ${RTPS[$key]}"
    fi
  done
done

# --- tables (Markdown) --------------------------------------------------------
for c in $CONNS; do
  echo "TCP echo, $c connection(s), $SIZE-byte round trips for ${DURATION}s (\`echo_load\`), medians of $ROUNDS round(s), servers alternating,"
  echo "server on core 0, load on core 1. Each cell: the figure (its ratio to the raw mio floor of this run)."
  echo
  echo "| server | round trips/s | p50 | p99 | peak RSS | CPU us/round trip | server core busy | syscalls/round trip |"
  echo "|---|---|---|---|---|---|---|---|"
  for s in "${SERVERS[@]}"; do
    read -r label _ _ <<<"$s"
    key="$label,$c" f="$FLOOR,$c"
    if [[ ${STATUS[$key]} != ok* ]]; then
      echo "| $label | ${STATUS[$key]} | | | | | | |"
      continue
    fi
    printf '| %s | %s | %s (%s) | %s (%s) | %s | %s | %s | %s |\n' "$label" \
      "$(cell "${RTPS[$key]}" "${RTPS[$f]:-}" '%.0f')" \
      "$(fmt_lat "${P50[$key]}")" "$(ratio "${P50[$key]}" "${P50[$f]:-}")" \
      "$(fmt_lat "${P99[$key]}")" "$(ratio "${P99[$key]}" "${P99[$f]:-}")" \
      "$(cell "$(awk -v k="${RSS[$key]}" 'BEGIN { printf "%.1f", k / 1024 }')" \
        "$(awk -v k="${RSS[$f]:-0}" 'BEGIN { printf "%.1f", k / 1024 }')" '%s MB')" \
      "$(cell "${CPU[$key]}" "${CPU[$f]:-}" '%.2f')" "${BUSY[$key]}" \
      "$(cell "${SYS[$key]:-}" "${SYS[$f]:-}" '%s')"
  done
  echo
  echo "Syscalls per round trip under strace (${STRACE_SECS}s of the same load, the five most frequent):"
  echo
  for s in "${SERVERS[@]}"; do
    read -r label _ _ <<<"$s"
    [[ -n ${SYSB[$label,$c]:-} ]] && echo "- $label: ${SYSB[$label,$c]}"
  done
  echo
done
echo "CPU us/round trip: the server's utime+stime (/proc/PID/stat) over the load run divided"
echo "by the round trips completed; server core busy = CPU per round trip x round trips/s."
echo "The load generator is one thread on one core doing the same syscalls as the server,"
echo "so round trips/s is often capped by it: compare CPU per round trip."
