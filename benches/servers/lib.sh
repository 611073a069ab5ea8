# Helpers shared by the server benchmarks (run.sh, echo.sh, redis.sh,
# all.sh). Source it after `cd` to the repository root:
#
#   source benches/servers/lib.sh
#
# It sets WORK (a temporary directory, removed on exit), TICKS, EXAMPLES,
# PIN_SERVER / PIN_LOAD (taskset prefixes: server on core 0, load on core 1)
# and an EXIT trap that stops the server in SERVER_PID (by PID, never by
# name). Every helper that waits is bounded in time.

TARGET_DIR=${CARGO_TARGET_DIR:-target}
EXAMPLES="$TARGET_DIR/release/examples"
TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d)
SERVER_PID=

log() { echo "== $*" >&2; }

lib_cleanup() {
  if [[ -n "$SERVER_PID" ]]; then stop_server "$SERVER_PID"; fi
  rm -rf "$WORK"
}
trap lib_cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ------------------------------------------------------------------
APT_UPDATED=
# ensure_tool COMMAND PACKAGE...: apt-get install the packages when COMMAND
# is not on the PATH (apt-get update once per script).
ensure_tool() {
  local cmd=$1
  shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  log "$cmd not found: apt-get install -y $*"
  if [[ -z $APT_UPDATED ]]; then
    timeout 300 apt-get update >&2 || log "apt-get update failed"
    APT_UPDATED=1
  fi
  timeout 600 apt-get install -y "$@" >&2 || log "apt-get install $* failed"
  command -v "$cmd" >/dev/null 2>&1
}

# Server on core 0, load generator on core 1; without a second core, no
# pinning (the figures are then much less meaningful).
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null 2>&1; then
  PIN_SERVER=(taskset -c 0)
  PIN_LOAD=(taskset -c 1)
else
  log "fewer than 2 cores (or no taskset): running unpinned"
  PIN_SERVER=()
  PIN_LOAD=()
fi

# PRIO=rt: run the server and its load generator under SCHED_FIFO as well
# (chrt -f 10), so that other work on a shared machine (a neighbour's
# compile) cannot preempt them: the CPU figures then describe the servers
# rather than the neighbours' cache pollution and preemptions (on this 2-core
# VM, at load 5-9, one unprioritised run swings by +-20%; under SCHED_FIFO
# a redis.sh round by +-3% and a run.sh round by +-10%). Needs root or CAP_SYS_NICE, else it falls back to normal
# priority. The kernel's RT throttling (95% of each second by default)
# still leaves the rest of the machine some time.
PRIO_NOTE=""
if [[ ${PRIO:-} == rt ]]; then
  if chrt -f 10 true 2>/dev/null; then
    PIN_SERVER=(chrt -f 10 "${PIN_SERVER[@]}")
    PIN_LOAD=(chrt -f 10 "${PIN_LOAD[@]}")
    PRIO_NOTE=", both SCHED_FIFO (PRIO=rt)"
  else
    log "PRIO=rt: chrt -f not permitted here; running at normal priority"
  fi
fi

# build_examples NAME...: cargo build --release each example; BUILT[NAME]
# is 1 or 0 (a server that does not build is skipped, not fatal).
declare -A BUILT
build_examples() {
  local name
  for name in "$@"; do
    log "building example $name (release)"
    if timeout 900 cargo build --release --quiet --example "$name" >"$WORK/build-$name.log" 2>&1; then
      BUILT[$name]=1
    else
      BUILT[$name]=0
      log "example $name does not build: skipped (first lines of the error below)"
      head -n 5 "$WORK/build-$name.log" | sed 's/^/   | /' >&2
    fi
  done
}

# --- process accounting -----------------------------------------------------
cpu_ticks() { # pid -> utime+stime in clock ticks (fields 14, 15 of stat)
  # The command name (field 2) may hold spaces: count fields after ") ".
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) }
  awk '{ print $12 + $13 }' <<<"$stat"
}

sched_ns() { # pid -> nanoseconds on CPU, all threads
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
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

# start_server LABEL READY_FN PORT -- COMMAND...: start COMMAND pinned to
# core 0 (stdout and stderr to $WORK/server-LABEL.log), wait up to ~10 s
# until `READY_FN PORT` succeeds. Sets SERVER_PID; returns 1 (server
# stopped) when the port was busy or the server never answered. The
# command is prefixed with the array PIN_SERVER (a caller may declare a
# local one, e.g. valgrind); START_TRIES and START_PAUSE (default 100 x
# 0.1 s) set the wait.
start_server() {
  local label=$1 ready=$2 port=$3 i
  local tries=${START_TRIES:-100} pause=${START_PAUSE:-0.1}
  shift 4
  if "$ready" "$port"; then
    log "port $port already answers: is another server running? skipping $label"
    return 1
  fi
  log "$label: starting $* (core 0)"
  "${PIN_SERVER[@]}" "$@" >"$WORK/server-$label.log" 2>&1 &
  SERVER_PID=$!
  for ((i = 0; i < tries; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if "$ready" "$port"; then return 0; fi
    sleep "$pause"
  done
  log "$label did not answer on port $port; its output:"
  sed 's/^/   | /' "$WORK/server-$label.log" >&2 || true
  stop_server "$SERVER_PID"
  return 1
}

# Readiness probes (bounded by timeout 2).
http_answers() { # port -> 0 if an HTTP 200 comes back
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
    head -c 15 <&3' _ "$1" 2>/dev/null | grep -q '^HTTP/1.1 200'
}
echo_answers() { # port -> 0 if a byte written comes back
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "ping\n" >&3
    head -c 4 <&3' _ "$1" 2>/dev/null | grep -q '^ping'
}

# --- syscalls ---------------------------------------------------------------
STRACE_SECS=${STRACE_SECS:-3}
# strace_run PID OUT LOAD_COMMAND...: attach `strace -c -f` to PID, run
# the load command (stdout to OUT), detach. Prints "TOTAL BREAKDOWN" where
# TOTAL is the number of syscalls the server made and BREAKDOWN the five
# most frequent as name=count,... Prints nothing if strace is unusable.
strace_run() {
  local pid=$1 out=$2 spid i
  shift 2
  command -v strace >/dev/null 2>&1 || return 0
  timeout $((STRACE_SECS + 60)) strace -c -f -p "$pid" -o "$WORK/strace.txt" 2>"$WORK/strace.err" &
  spid=$!
  sleep 0.5 # attach to every thread before the load starts
  if ! kill -0 "$spid" 2>/dev/null; then
    log "strace could not attach:"
    sed 's/^/   | /' "$WORK/strace.err" >&2
    return 0
  fi
  timeout $((STRACE_SECS + 30)) "$@" >"$out" 2>&1 || log "load under strace failed: $(tail -n 2 "$out")"
  kill -INT "$spid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  wait "$spid" 2>/dev/null || true
  awk '
    $NF == "total" { total = $4; next }
    $1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ { n[$NF] = $4 }
    END {
      if (total == "") exit
      printf "%s ", total
      k = 0
      while (k < 5) {
        best = ""; for (s in n) if (best == "" || n[s] > n[best]) best = s
        if (best == "") break
        printf "%s%s=%s", (k ? "," : ""), best, n[best]; delete n[best]; k++
      }
      print ""
    }' "$WORK/strace.txt"
}

# per_req_breakdown "name=count,..." REQUESTS -> "name 1.00, name 0.20, ..."
per_req_breakdown() {
  awk -v b="$1" -v n="$2" 'BEGIN {
    k = split(b, parts, ",")
    for (i = 1; i <= k; i++) {
      split(parts[i], kv, "=")
      if (n > 0) printf "%s%s %.2f", (i > 1 ? ", " : ""), kv[1], kv[2] / n
    }
  }'
}

# --- formatting ---------------------------------------------------------------
to_us() { # wrk latency ("812.00us", "1.23ms", "2.01s") -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000;
    else if (v ~ /m$/) print n * 60e6; else if (v ~ /s$/) print n * 1e6; else print n }'
}

fmt_lat() { # microseconds -> short human form
  awk -v u="$1" 'BEGIN { if (u == "" || u == "nan") print "n/a"; else if (u >= 1000) printf "%.2f ms", u / 1000; else printf "%.0f us", u }'
}

ratio() { # a b -> "1.23x", or "n/a"
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "" || b == "" || a == "nan" || b == "nan" || b + 0 == 0) print "n/a"; else printf "%.2fx", a / b }'
}

# cell VALUE FLOOR_VALUE PRINTF_FORMAT -> "value (ratio)"
cell() {
  if [[ -z $1 || $1 == nan ]]; then echo "n/a"; return; fi
  printf "$3 (%s)" "$1" "$(ratio "$1" "$2")"
}

per_op_us() { # ticks requests -> CPU microseconds per request
  awk -v t="$1" -v hz="$TICKS" -v n="$2" 'BEGIN { if (n > 0) printf "%.3f", t / hz * 1e6 / n; else print "nan" }'
}

# The median of each figure over the rounds (the middle one; the mean of
# the two middle ones for an even count).
median() {
  tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# redis_cmd LABEL: sets the caller's `port` and `cmd` for mini_redis (LABEL
# mini_redis, on $MINI_PORT) or redis-server (any other LABEL, on
# $REDIS_PORT: no persistence, in the foreground, logging to stdout).
redis_cmd() {
  if [[ $1 == mini_redis ]]; then
    port=$MINI_PORT
    cmd=("$EXAMPLES/mini_redis" "127.0.0.1:$port")
  else
    port=$REDIS_PORT
    cmd=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no
      --daemonize no --logfile '')
  fi
}
