#!/usr/bin/env bash
# Looks at the pictures as a person would (issue 23): opens the timeline
# page and compare's SVG in headless Chromium and checks that they render.
#
# 1. A known small program (tests/trace.rs's render_program: 3 timers, 2
#    immediates, a pool job, a microtask) traced to a page: after its
#    script ran, the page must say it drew exactly the expected boxes, and
#    (opened with #selftest) that hover, wheel zoom and drag pan work.
# 2. examples/kitchen.rs traced to a page: the loop thread, the pool
#    threads and the second kitchen's process each get a lane.
# 3. compare --svg on a small run: the SVG parses and holds 42 bars
#    (2 workloads x 3 charts x 7 models).
# Screenshots of all three are written to target/render-check/ (look at
# them). Without Chromium (`chromium`, `chromium-browser` or $CHROMIUM)
# this says so loudly and exits 0: .ci/run installs it where it can.
set -euo pipefail
cd "$(dirname "$0")/.."

browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
if [ -z "$browser" ]; then
  echo "WARNING: render check NOT run: no Chromium (install chromium, or set CHROMIUM)" >&2
  exit 0
fi
out=$PWD/target/render-check
mkdir -p "$out"
rm -f "$out"/*.html "$out"/*.png "$out"/*.svg

# Headless, offline, a fresh profile each time, bounded in time.
chrome() {
  local profile rc=0
  profile=$(mktemp -d)
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update \
    --disable-sync --hide-scrollbars --user-data-dir="$profile" "$@" 2>/dev/null || rc=$?
  rm -rf "$profile"
  return $rc
}
fail() {
  echo "render check FAILED: $*" >&2
  exit 1
}
# The <body> tag of a page after its script ran.
body_of() {
  chrome --dump-dom "file://$1" | grep -o '<body[^>]*>' || true
}
# An attribute of that tag.
attr() {
  sed -n "s/.* $1=\"\\([^\"]*\\)\".*/\\1/p" <<<"$2"
}
screenshot() { # FILE PNG WIDTH HEIGHT
  chrome --screenshot="$2" --window-size="$3,$4" "file://$1" >/dev/null || true
  [ -s "$2" ] && [ "$(wc -c <"$2")" -gt 5000 ] || fail "no screenshot of $1 in $2"
}

# ---- 1. the known program ----
exe=$(cargo test --quiet --no-run --test trace --message-format=json |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$exe" ] || fail "no tests/trace.rs binary"
EVLOOP_WORKER=render EVLOOP_TRACE="$out/small.html" "$exe"
body=$(body_of "$out/small.html")
[ "$(attr data-rendered "$body")" = yes ] || fail "small.html did not render: $body"
# 9 boxes: main, 3 timer, 2 immediate,
# 1 pending (the pool job's completion), 1 microtask checkpoint on the loop
# thread, and the pool job on a pool thread (see render_program).
[ "$(attr data-boxes "$body")" = 9 ] || fail "small.html: expected 9 boxes: $body"
[ "$(attr data-drawn-boxes "$body")" = 9 ] || fail "small.html: expected 9 boxes drawn: $body"
[ "$(attr data-lanes "$body")" = 2 ] || fail "small.html: expected 2 lanes (loop, pool): $body"
counts=$(attr data-counts "$body" | sed 's/&quot;/"/g')
for want in '"callback:timer":3' '"callback:immediate":2' '"callback:main":1' \
  '"callback:pending":1' '"checkpoint:microtasks":1' '"pool:work":1'; do
  grep -qF "$want" <<<"$counts" || fail "small.html: no $want in $counts"
done
# The mouse: hover shows a box's details, the wheel zooms, a drag pans
# (the page simulates them itself when opened with #selftest).
body=$(body_of "$out/small.html#selftest")
[ "$(attr data-selftest "$body")" = "hover zoom pan" ] || fail "small.html#selftest: $body"
screenshot "$out/small.html" "$out/small.png" 1400 260
echo "render check: small.html drew 9 boxes in 2 lanes ($out/small.png)"

# ---- 2. the kitchen: threads and a worker process ----
(cd "$out" && EVLOOP_TRACE=kitchen.html cargo run --quiet --example kitchen >/dev/null)
body=$(body_of "$out/kitchen.html")
procs=$(attr data-processes "$body")
lanes=$(attr data-lanes "$body")
[ "${procs:-0}" -ge 2 ] || fail "kitchen.html: expected the worker process's lane: $body"
[ "${lanes:-0}" -ge 4 ] || fail "kitchen.html: expected loop and pool lanes: $body"
grep -qF '&quot;pool:work&quot;:3' <<<"$body" || fail "kitchen.html: expected 3 pool jobs: $body"
screenshot "$out/kitchen.html" "$out/kitchen.png" 1400 440
echo "render check: kitchen.html has $procs processes and $lanes lanes ($out/kitchen.png)"

# ---- 3. compare's chart ----
cargo run --quiet --example compare -- --requests 20 --delay-ms 10 --space 50000 --chunks 4 \
  --svg "$out/compare.svg" >/dev/null 2>&1 || fail "compare --svg failed"
dom=$(chrome --dump-dom "file://$out/compare.svg")
grep -q parsererror <<<"$dom" && fail "compare.svg does not parse: $dom"
bars=$(grep -o 'class="bar"' <<<"$dom" | wc -l)
[ "$bars" -eq 42 ] || fail "compare.svg: expected 42 bars, found $bars"
width=$(sed -n 's/^<svg[^>]* width="\([0-9]*\)".*/\1/p' "$out/compare.svg")
height=$(sed -n 's/^<svg[^>]* height="\([0-9]*\)".*/\1/p' "$out/compare.svg")
screenshot "$out/compare.svg" "$out/compare.png" "${width:-1200}" "${height:-600}"
echo "render check: compare.svg has $bars bars ($out/compare.png)"
