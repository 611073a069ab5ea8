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
# MINI_PORT (default 6390), REDIS_PORT (default 6391), PRIO (rt: server and
# load under SCHED_FIFO, see lib.sh; recommended on a shared machine).
# Installs redis-server and redis-tools with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUESTS=${REQUESTS:-200000}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-50}
MINI_PORT=${MINI_PORT:-6390}
REDIS_PORT=${REDIS_PORT:-6391}
source benches/servers/lib.sh

ensure_tool redis-server redis-server redis-tools || { echo "redis-server is needed" >&2; exit 1; }
ensure_tool redis-benchmark redis-tools || { echo "redis-benchmark is needed" >&2; exit 1; }
ensure_tool redis-cli redis-tools || { echo "redis-cli is needed" >&2; exit 1; }

log "building example mini_redis (release)"
timeout 900 cargo build --release --quiet --example mini_redis

answers() { timeout 2 redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; }

# --- run --------------------------------------------------------------------
SERVERS=(mini_redis redis-server)
DEPTHS=(1 16)
TESTS=(ping set get)
# Per round: OPS_S[server,TEST_NAME,depth,round], CPU_*[server,test,depth,round].
declare -A OPS_S P50 P99 RSS CPU_TICK CPU_NS STATUS

run_server() { # server round
  local server=$1 round=$2 port cmd depth t t0 t1 n0 n1 out name rps tests_run ops
  redis_cmd "$server"
  log "round $round, $server: starting on 127.0.0.1:$port"
  if ! start_server "$server" answers "$port" -- "${cmd[@]}"; then
    STATUS[$server]="failed: did not answer on port $port (or port busy)"
    return
  fi
  for depth in "${DEPTHS[@]}"; do
    for t in "${TESTS[@]}"; do
      log "round $round, $server: redis-benchmark -t $t -n $REQUESTS -c $CLIENTS -P $depth"
      t0=$(cpu_ticks "$SERVER_PID")
      n0=$(sched_ns "$SERVER_PID")
      out="$WORK/$server-$t-$depth.csv"
      if ! timeout 300 "${PIN_LOAD[@]}" redis-benchmark -p "$port" -t "$t" -n "$REQUESTS" \
        -c "$CLIENTS" -P "$depth" --csv >"$out" 2>"$WORK/bench.err"; then
        log "redis-benchmark failed or timed out:"
        sed 's/^/   | /' "$WORK/bench.err" >&2 || true
        STATUS[$server]="failed: redis-benchmark -t $t -P $depth"
        continue
      fi
      t1=$(cpu_ticks "$SERVER_PID")
      n1=$(sched_ns "$SERVER_PID")
      # One line per test run ("ping" is PING_INLINE and PING_MBULK).
      while IFS=, read -r name rps _ _ p50 _ p99 _; do
        name=${name//\"/} rps=${rps//\"/} p50=${p50//\"/} p99=${p99//\"/}
        [[ $name == test || -z $name ]] && continue
        OPS_S[$server,$name,$depth,$round]=$rps
        P50[$server,$name,$depth,$round]=$p50
        P99[$server,$name,$depth,$round]=$p99
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
  RSS[$server,$round]=$(peak_rss_kb "$SERVER_PID")
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

rss_med() { # server -> median peak RSS over the rounds, MB
  local vals=() r
  for ((r = 1; r <= ROUNDS; r++)); do vals+=("${RSS[$1,$r]:-}"); done
  awk -v k="$(median "${vals[@]}")" 'BEGIN { printf "%.1f", k / 1024 }'
}

echo "\`redis-benchmark -n $REQUESTS -c $CLIENTS\`, server on core 0, load on core 1 ($(nproc) cores$PRIO_NOTE),"
echo "median of $ROUNDS round(s). Each mini_redis cell: the figure (its ratio to redis-server of this run)."
for s in "${SERVERS[@]}"; do
  [[ -n ${STATUS[$s]:-} ]] && echo "$s: ${STATUS[$s]}"
done
echo
echo "| test | -P | mini_redis ops/s | redis ops/s | mini p50 | redis p50 | mini p99 | redis p99 | mini CPU us/op | redis CPU us/op | (ticks ratio) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
row() { # label test depth
  local label=$1 t=$2 d=$3 mo ro m5 r5 m9 r9 mc rc mt rt
  mo=$(med OPS_S "mini_redis,$label,$d") ro=$(med OPS_S "redis-server,$label,$d")
  m5=$(med P50 "mini_redis,$label,$d") r5=$(med P50 "redis-server,$label,$d")
  m9=$(med P99 "mini_redis,$label,$d") r9=$(med P99 "redis-server,$label,$d")
  mc=$(med CPU_NS "mini_redis,$t,$d") rc=$(med CPU_NS "redis-server,$t,$d")
  mt=$(med CPU_TICK "mini_redis,$t,$d") rt=$(med CPU_TICK "redis-server,$t,$d")
  printf '| %s | %s | %s | %.0f | %s | %s ms | %s | %s ms | %s | %s | %s |\n' "$label" "$d" \
    "$(cell "$mo" "$ro" '%.0f')" "$ro" "$(cell "$m5" "$r5" '%s ms')" "$r5" \
    "$(cell "$m9" "$r9" '%s ms')" "$r9" "$(cell "$mc" "$rc" '%s')" "$rc" "$(ratio "$mt" "$rt")"
}
for d in "${DEPTHS[@]}"; do
  row PING_INLINE ping "$d"
  row PING_MBULK ping "$d"
  row SET set "$d"
  row GET get "$d"
done
echo
echo "Peak RSS (VmHWM, median over rounds): mini_redis $(rss_med mini_redis) MB, redis-server $(rss_med redis-server) MB" \
  "($(ratio "$(rss_med mini_redis)" "$(rss_med redis-server)"))."
echo
echo "ops/s and latency: as redis-benchmark reports them. CPU us/op: the server's time on CPU"
echo "(/proc/PID/task/*/schedstat, all threads) over the run divided by the operations; the two"
echo "ping rows share one run, hence one figure. (ticks ratio): the same ratio from utime+stime"
echo "in /proc/PID/stat, 10 ms granularity, as a cross-check."
