#!/usr/bin/env bash
# Fairness benchmark (issue 17): does a busy connection starve the others?
#
#   bash benches/servers/fairness.sh                       # about 5 minutes
#   KINDS=http bash benches/servers/fairness.sh            # HTTP only, 2 minutes
#   ROUNDS=1 DURATION=3 bash benches/servers/fairness.sh   # about 1.5 minutes
#
# For each number of flooders (FLOODERS, default "1 4") and each server of
# the sets in KINDS (default "echo redis http")
#   echo:  examples/echo_server (callbacks), examples/echo_server_async,
#          benches/servers/mio_echo (raw mio), benches/servers/tokio_echo
#          (tokio current-thread: the anchor)
#   redis: examples/mini_redis, redis-server (the anchor; --save ''
#          --appendonly no; apt-get installed when missing)
#   http:  examples/http_hello (callbacks), examples/http_hello_async,
#          benches/servers/mio_http_hello (raw mio),
#          benches/servers/tokio_http_hello (tokio current-thread: the anchor)
# start it pinned to core 0, wait until it answers, and run the load tool
# (benches/servers/fair_load.rs) pinned to core 1:
#   fair_load 127.0.0.1:PORT echo|redis|http N DURATION SIZE INTERVAL_MS TIMEOUT_MS WARMUP_MS
# N flooder connections write SIZE-byte chunks (default 16384) as fast as
# the socket takes and read and discard what comes back (pipelined PINGs for
# redis, pipelined `GET /` requests for http), while one probe connection
# sends a small message (a PING, a GET), waits for the reply (for http: one
# whole response, head and Content-Length body), and repeats every
# INTERVAL_MS; the probe's round trips give p50/p99/max. A probe unanswered
# after TIMEOUT_MS counts as TIMEOUT_MS and is reported as missed. The
# server is stopped by its PID after each run.
#
# The servers take turns (every server for N=1, then for N=4, then the next
# round), ROUNDS times; the tables show the median of each figure over the
# rounds and each p99's ratio to the anchor's (tokio_echo for echo,
# redis-server for redis, tokio_http_hello for http), and the issue's
# targets: the probe's p99 within 2x of the anchor's for echo_server_async,
# mini_redis and http_hello_async.
#
# Run time (bounded): each run takes WARMUP_MS + DURATION + about 0.5-1 s to
# start and stop the server, at most TIMEOUT_MS more when probes go
# unanswered, and is killed at DURATION + 40 s. With the defaults: 3 rounds
# x 2 flooder counts x 10 servers x ~5-5.5 s = about 5 minutes (at most
# about 8 if every server misses probes), plus building the examples
# (KINDS=http: 4 servers, about 2 minutes).
#
# Machine note: 2 cores, shared; the load generator (core 1) shares the
# machine with the server (core 0) and whatever else runs there.
# Loopback only. Prints progress on stderr and Markdown on stdout.
#
# Environment: KINDS (server sets, default "echo redis http"), ROUNDS
# (default 3), DURATION (s of probing per run, default 4), FLOODERS
# (default "1 4"), SIZE (bytes per flooder write, default 16384),
# INTERVAL_MS (default 10), TIMEOUT_MS (default 3000), WARMUP_MS (default
# 500), REDIS_MODE (redis: RESP PINGs, the default; redis-inline),
# ECHO_PORT (first of four, default 7031), MINI_PORT (default 6396),
# REDIS_PORT (default 6397), HTTP_PORT (first of four, default 7041), PRIO
# (rt: see lib.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

KINDS=${KINDS:-"echo redis http"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
FLOODERS=${FLOODERS:-"1 4"}
SIZE=${SIZE:-16384}
INTERVAL_MS=${INTERVAL_MS:-10}
TIMEOUT_MS=${TIMEOUT_MS:-3000}
WARMUP_MS=${WARMUP_MS:-500}
REDIS_MODE=${REDIS_MODE:-redis}
ECHO_PORT=${ECHO_PORT:-7031}
MINI_PORT=${MINI_PORT:-6396}
REDIS_PORT=${REDIS_PORT:-6397}
HTTP_PORT=${HTTP_PORT:-7041}
source benches/servers/lib.sh
T0=$(date +%s)

command -v cargo >/dev/null 2>&1 || { echo "cargo not found: this benchmark needs a Rust toolchain" >&2; exit 1; }
has_kind() { [[ " $KINDS " == *" $1 "* ]]; }
for k in $KINDS; do
  [[ $k == echo || $k == redis || $k == http ]] || { echo "KINDS: unknown set '$k' (echo, redis, http)" >&2; exit 2; }
done

# label kind port example (kind: echo, redis or http; redis-server has no
# example)
ALL_SERVERS=(
  "evloop echo $ECHO_PORT echo_server"
  "evloop-async echo $((ECHO_PORT + 1)) echo_server_async"
  "mio echo $((ECHO_PORT + 2)) mio_echo"
  "tokio echo $((ECHO_PORT + 3)) tokio_echo"
  "mini_redis redis $MINI_PORT mini_redis"
  "redis-server redis $REDIS_PORT -"
  "http_hello http $HTTP_PORT http_hello"
  "http_hello_async http $((HTTP_PORT + 1)) http_hello_async"
  "mio_http_hello http $((HTTP_PORT + 2)) mio_http_hello"
  "tokio_http_hello http $((HTTP_PORT + 3)) tokio_http_hello"
)
SERVERS=()
TO_BUILD=(fair_load)
for s in "${ALL_SERVERS[@]}"; do
  read -r _ kind _ name <<<"$s"
  has_kind "$kind" || continue
  SERVERS+=("$s")
  [[ $name != - ]] && TO_BUILD+=("$name")
done
[[ ${#SERVERS[@]} -gt 0 ]] || { echo "KINDS selects no server" >&2; exit 2; }
anchor() { # kind -> the anchor's label
  case $1 in echo) echo tokio ;; redis) echo redis-server ;; http) echo tokio_http_hello ;; esac
}

HAVE_REDIS=0
if has_kind redis; then
  HAVE_REDIS=1
  ensure_tool redis-server redis-server || { log "no redis-server: its rows are skipped"; HAVE_REDIS=0; }
fi
build_examples "${TO_BUILD[@]}"
[[ ${BUILT[fair_load]} == 1 ]] || { echo "the load tool does not build" >&2; exit 1; }
BUILT[-]=$HAVE_REDIS

redis_answers() { # port -> 0 if a RESP PING gets +PONG
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "*1\r\n\$4\r\nPING\r\n" >&3
    head -c 5 <&3' _ "$1" 2>/dev/null | grep -q '^+PONG'
}

kv() { # key file -> value of key=value in fair_load's first line
  head -n 1 "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

declare -A STATUS R_P50 R_P99 R_MAX R_PROBES R_IN MISSED
for ((round = 1; round <= ROUNDS; round++)); do
  for n in $FLOODERS; do
    for s in "${SERVERS[@]}"; do
      read -r label kind port name <<<"$s"
      key="$label,$n"
      if [[ ${BUILT[$name]} != 1 ]]; then
        STATUS[$key]="skipped: ${name/#-/redis-server} is not available"
        continue
      fi
      case $kind in
        echo) ready=echo_answers mode=echo cmd=("$EXAMPLES/$name" "127.0.0.1:$port") ;;
        http) ready=http_answers mode=http cmd=("$EXAMPLES/$name" "127.0.0.1:$port") ;;
        redis)
          ready=redis_answers mode=$REDIS_MODE
          redis_cmd "$label" # sets port and cmd
          ;;
      esac
      if ! start_server "$label" "$ready" "$port" -- "${cmd[@]}"; then
        STATUS[$key]="failed: did not answer on port $port (or port busy)"
        continue
      fi
      out="$WORK/load-$label-$n-$round.txt"
      log "[$(($(date +%s) - T0)) s] round $round of $ROUNDS, $label, $n flooder(s): fair_load $mode for ${DURATION}s"
      if ! timeout $((DURATION + 40)) "${PIN_LOAD[@]}" "$EXAMPLES/fair_load" "127.0.0.1:$port" "$mode" \
        "$n" "$DURATION" "$SIZE" "$INTERVAL_MS" "$TIMEOUT_MS" "$WARMUP_MS" >"$out" 2>&1; then
        log "$label, $n flooder(s): fair_load failed: $(tail -n 2 "$out" | tr '\n' ' ')"
        STATUS[$key]="a round failed: $(tail -n 1 "$out")"
      fi
      stop_server "$SERVER_PID"
      p99=$(kv p99_us "$out")
      [[ -n $p99 && $p99 != nan ]] || continue
      R_P50[$key]+="$(kv p50_us "$out") "
      R_P99[$key]+="$p99 "
      R_MAX[$key]+="$(kv max_us "$out") "
      R_PROBES[$key]+="$(kv probes "$out") "
      R_IN[$key]+="$(kv flood_in_mb_s "$out") "
      MISSED[$key]=$((${MISSED[$key]:-0} + $(kv missed "$out")))
      log "$label, $n flooder(s): $(head -n 1 "$out")"
      grep '^missed' "$out" | head -n 5 | sed 's/^/   | /' >&2 || true
    done
  done
done

# --- tables (Markdown) --------------------------------------------------------
declare -A P50 P99 MAX PROBES IN
for s in "${SERVERS[@]}"; do
  read -r label _ _ _ <<<"$s"
  for n in $FLOODERS; do
    key="$label,$n"
    [[ -z ${R_P99[$key]:-} ]] && continue
    P50[$key]=$(median "${R_P50[$key]}")
    P99[$key]=$(median "${R_P99[$key]}")
    MAX[$key]=$(median "${R_MAX[$key]}")
    PROBES[$key]=$(median "${R_PROBES[$key]}")
    IN[$key]=$(median "${R_IN[$key]}")
    log "$label, $n flooder(s): p99 us by round: ${R_P99[$key]}-> median ${P99[$key]}"
  done
done

echo "\`fair_load\`: N flooders writing ${SIZE}-byte chunks (bytes for echo, pipelined PINGs for redis,"
echo "pipelined \`GET /\` requests for http) as fast as the socket takes and reading what comes back,"
echo "one probe (a message, a PING, a GET) every ${INTERVAL_MS} ms (timeout ${TIMEOUT_MS} ms) for ${DURATION} s after a"
echo "${WARMUP_MS} ms warm-up; server on core 0, load on core 1 ($(nproc) cores, shared$PRIO_NOTE);"
echo "median of $ROUNDS round(s), servers alternating. p99 (x): its ratio to the anchor's p99 for the"
echo "same N (tokio for echo, redis-server for redis, tokio_http_hello for http). flood in: MB/s the"
echo "flooders got back. missed: probes unanswered within the timeout, all rounds (counted at the timeout)."
for key in "${!STATUS[@]}"; do
  echo "- $key: ${STATUS[$key]}"
done
echo
echo "| server | N | probes | p50 | p99 (x anchor) | max | flood in MB/s | missed |"
echo "|---|---|---|---|---|---|---|---|"
row() { # label anchor n
  local key="$1,$3" akey="$2,$3"
  if [[ -z ${P99[$key]:-} ]]; then
    echo "| $1 | $3 | n/a | | | | | |"
    return
  fi
  printf '| %s | %s | %.0f | %s | %s (%s) | %s | %s | %s |\n' "$1" "$3" "${PROBES[$key]}" \
    "$(fmt_lat "${P50[$key]}")" "$(fmt_lat "${P99[$key]}")" "$(ratio "${P99[$key]}" "${P99[$akey]:-}")" \
    "$(fmt_lat "${MAX[$key]}")" "${IN[$key]}" "${MISSED[$key]:-0}"
}
for n in $FLOODERS; do
  for s in "${SERVERS[@]}"; do
    read -r label kind _ _ <<<"$s"
    row "$label" "$(anchor "$kind")" "$n"
  done
done
echo
target() { # label anchor n -> "figure: met / not met"
  local key="$1,$3" akey="$2,$3"
  if [[ -z ${P99[$key]:-} || -z ${P99[$akey]:-} ]]; then echo "n/a"; return; fi
  awk -v a="${P99[$key]}" -v b="${P99[$akey]}" 'BEGIN {
    r = a / b
    printf "%.2f ms vs %.2f ms = %.2fx: %s", a / 1000, b / 1000, r, (r <= 2 ? "met" : "**not met**") }'
}
echo "| target (issue 17) |$(for n in $FLOODERS; do printf ' N=%s |' "$n"; done)"
echo "|---|$(for n in $FLOODERS; do printf -- '---|'; done)"
target_row() { # text label anchor
  echo "| $1 |$(for n in $FLOODERS; do printf ' %s |' "$(target "$2" "$3" "$n")"; done)"
}
has_kind echo && target_row "echo_server_async p99 <= 2x tokio_echo's" evloop-async tokio
has_kind redis && target_row "mini_redis p99 <= 2x redis-server's" mini_redis redis-server
has_kind http && target_row "http_hello_async p99 <= 2x tokio_http_hello's" http_hello_async tokio_http_hello
log "done in $(($(date +%s) - T0)) s"
