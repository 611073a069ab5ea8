#!/usr/bin/env bash
# Layer check (issue 24, item 7): the loop core imports nothing from the
# layers above it, and the ground floor imports no layer at all (DESIGN.md,
# "Layers" and "Module map").
#
#   scripts/check_layers.sh              # check src/ of this repository
#   scripts/check_layers.sh --root DIR   # check DIR/src instead
#   scripts/check_layers.sh --self-test  # check the checker on a tiny tree
#
# Two rules:
#   1. The loop core (src/event_loop/, reactor, timers/, microtasks,
#      immediate, pool/, remote, fault) and the ground floor name nothing
#      in crate::{promise, task, process, net, fs, stdio}.
#   2. The ground floor (src/error*, src/sys*, inline_fn, introspect,
#      trace) names no crate module outside the ground floor.
# fault.rs (the test-only fault shim) is loop core, not ground floor: it
# wraps the reactor. inline_fn, introspect and trace import nothing from
# the crate, so they are ground floor.
#
# "Names" means any path in code, not only `use` lines: `use` statements
# (`pub use` re-exports and `use crate::{..}` groups included, expanded
# path by path), and paths written in place (`crate::task::Tasks` as a
# field's type). `super::` and `self::` are resolved against the file's
# module (inline `mod x { .. }` blocks included), and the crate root's own
# re-exports are followed (`crate::spawn` is `crate::task::spawn`).
# Comments (`//`, `///`, `//!`, `/* */`) and string literals are skipped:
# a doc link is not an import. (Known blind spot: a path written on the
# same line as the `mod x {` that opens its inline module is resolved
# against the enclosing module; rustfmt never writes code that way.)
#
# Prints file:line, the rule broken and the offending path, then a summary;
# exits 1 if anything was found, 0 when clean. Needs bash, find and awk.
set -euo pipefail

UPPER="promise task process net fs stdio"
GROUND_RE='^src/(error(\.rs|/.*)|sys(\.rs|/.*)|inline_fn\.rs|introspect\.rs|trace\.rs)$'
CORE_RE='^src/(event_loop/.*|reactor\.rs|timers(\.rs|/.*)|microtasks\.rs|immediate\.rs|pool(\.rs|/.*)|remote\.rs|fault\.rs)$'

check() {
  local root=$1
  if [[ ! -f "$root/src/lib.rs" ]]; then
    echo "check_layers: no $root/src/lib.rs" >&2
    return 2
  fi
  local files=()
  local f rel
  while IFS= read -r f; do
    rel=${f#"$root"/}
    if [[ $rel =~ $GROUND_RE || $rel =~ $CORE_RE ]]; then
      files+=("$rel")
    fi
  done < <(find "$root/src" -name '*.rs' -type f | LC_ALL=C sort)
  (
    cd "$root"
    awk -v upper="$UPPER" -v ground_re="$GROUND_RE" -f <(awk_program) src/lib.rs "${files[@]}"
  )
}

awk_program() {
  cat <<'AWK'
# ---- the lexer: code text of one line, comments and literals removed ----
# State carried across lines: block-comment depth, and whether we are
# inside a (raw) string. Strings become "" so the code keeps its shape.
function strip(line,    out, i, n, c, c2, j, h) {
  out = ""; n = length(line); i = 1
  while (i <= n) {
    c = substr(line, i, 1); c2 = substr(line, i, 2)
    if (blk > 0) {
      if (c2 == "*/") { blk--; i += 2; continue }
      if (c2 == "/*") { blk++; i += 2; continue }
      i++; continue
    }
    if (instr) {
      if (!rawh && c == "\\") { i += 2; continue }
      if (c == "\"" && (rawh == 0 || substr(line, i + 1, rawh - 1) == hashes(rawh - 1))) {
        instr = 0; i += (rawh > 0 ? rawh : 1); out = out "\""; continue
      }
      i++; continue
    }
    if (c2 == "//") break
    if (c2 == "/*") { blk = 1; i += 2; continue }
    if (c == "\"") {
      # r"..", r#".."#, br".." : count the hashes before the quote.
      rawh = 0
      if (match(out, /(^|[^A-Za-z0-9_])b?r#*$/)) {
        h = out; sub(/.*r/, "", h); rawh = length(h) + 1
        sub(/b?r#*$/, "", out)
      }
      instr = 1; out = out "\""; i++; continue
    }
    if (c == "'") {
      if (substr(line, i + 1, 1) == "\\") {
        j = index(substr(line, i + 2), "'")
        if (j > 0) { out = out "' '"; i = i + 2 + j; continue }
      } else if (substr(line, i + 2, 1) == "'") {
        out = out "' '"; i += 3; continue
      }
    }
    out = out c; i++
  }
  return out
}
function hashes(k,    s) { s = ""; while (k-- > 0) s = s "#"; return s }

# ---- resolving a path to crate-absolute segments ----
# seg[1..ns] is the path as written; the file's module is modp ("a::b").
# Sets abs[1..na]; returns 0 for a path outside the crate (std, mio, ..).
function resolve(path,    seg, ns, k, m, nm, i, first) {
  gsub(/[ \t]/, "", path)
  sub(/^::/, "", path)
  ns = split(path, seg, "::")
  na = 0
  first = seg[1]
  if (first == "crate" || first == "$crate") {
    for (i = 2; i <= ns; i++) abs[++na] = seg[i]
  } else if (first == "self" || first == "super") {
    nm = (modp == "" ? 0 : split(modp, m, "::"))
    k = 1
    if (first == "super") {
      while (k <= ns && seg[k] == "super") { nm--; k++ }
      if (nm < 0) return 0
    } else {
      k = 2
    }
    for (i = 1; i <= nm; i++) abs[++na] = m[i]
    for (i = k; i <= ns; i++) abs[++na] = seg[i]
  } else if (modp == "" && (first in crate_mods)) {
    # In the crate root, `task::spawn` is crate::task::spawn.
    for (i = 1; i <= ns; i++) abs[++na] = seg[i]
  } else {
    return 0
  }
  # Follow the crate root's re-exports once (crate::spawn -> task::spawn).
  if (na >= 1 && !(abs[1] in crate_mods) && (abs[1] in reexport)) {
    nm = split(reexport[abs[1]], m, "::")
    for (i = na; i >= 2; i--) abs[i + nm - 1] = abs[i]
    for (i = 1; i <= nm; i++) abs[i] = m[i]
    na += nm - 1
  }
  return 1
}

# ---- expanding a use tree: `crate::{a::{b, c}, d as e}` -> paths ----
# Calls emit(path, alias, line) for each leaf.
function expand(stmt, line0,    s, i, n, c, cur, sp, stk, curline, alias) {
  s = stmt
  sub(/^[ \t\n]*(#\[[^]]*\][ \t\n]*)*(pub(\([^)]*\))?[ \t\n]+)?use[ \t\n]+/, "", s)
  sub(/;[ \t\n]*$/, "", s)
  sp = 0; stk[0] = ""; cur = ""; curline = line0; n = length(s)
  for (i = 1; i <= n; i++) {
    c = substr(s, i, 1)
    if (c == "\n") { line0++; continue }
    if (c == " " || c == "\t") { cur = cur " "; continue }
    if (cur ~ /^ *$/ && c != "{" && c != "}" && c != ",") curline = line0
    if (c == "{") { sp++; stk[sp] = stk[sp - 1] squash(cur); cur = ""; continue }
    if (c == "," || c == "}") {
      leaf(stk[sp], cur, curline)
      cur = ""
      if (c == "}") sp--
      continue
    }
    cur = cur c
  }
  leaf(stk[sp], cur, curline)
}
function squash(s) { gsub(/[ \t]/, "", s); return s }
function leaf(prefix, cur, line,    alias, p) {
  alias = ""
  if (match(cur, / as +[A-Za-z_][A-Za-z0-9_]* *$/)) {
    alias = substr(cur, RSTART, RLENGTH); sub(/^ as +/, "", alias); sub(/ *$/, "", alias)
    cur = substr(cur, 1, RSTART - 1)
  }
  cur = squash(cur)
  if (cur == "") return
  p = prefix cur
  sub(/::self$/, "", p)
  emit(p, alias, line)
}

# In src/lib.rs: learn the crate's modules and the root's re-exports.
# Elsewhere: check the path.
function emit(p, alias, line,    last, n, parts) {
  if (pass == "lib") {
    if (p ~ /\*$/) return
    n = split(p, parts, "::")
    last = (alias != "" ? alias : parts[n])
    sub(/^crate::/, "", p); sub(/^self::/, "", p)
    split(p, parts, "::")
    if (parts[1] in crate_mods) reexport[last] = p
    return
  }
  check_path(p, line)
}

function check_path(p, line,    top, what, res, i, key) {
  if (!resolve(p)) return
  if (na == 0) return
  top = abs[1]
  if (!(top in crate_mods)) return
  what = ""
  if (top in upper_set) {
    what = (is_ground ? "ground floor" : "loop core") " -> " top
  } else if (is_ground && !(top in ground_mods)) {
    what = "ground floor -> " top " (not ground floor)"
  }
  if (what == "") return
  key = FILENAME ":" line ":" p
  if (key in seen) return
  seen[key] = 1
  res = "crate"
  for (i = 1; i <= na; i++) res = res "::" abs[i]
  if (res != p) p = p " (= " res ")"
  printf "%s:%d: %s: %s   [%s]\n", FILENAME, line, what, p, trim(raw[line])
  bad++
  badfile[FILENAME] = 1
}
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }

BEGIN {
  split(upper, u, " ")
  for (k in u) upper_set[u[k]] = 1
  ground_mods["error"] = 1; ground_mods["sys"] = 1; ground_mods["inline_fn"] = 1
  ground_mods["introspect"] = 1; ground_mods["trace"] = 1
}

FNR == 1 {
  if (FILENAME == "src/lib.rs") pass = "lib"; else { pass = "check"; nfiles++ }
  blk = 0; instr = 0; rawh = 0; inuse = 0; depth = 0; nmods = 0
  delete raw
  # The file's module path: src/a/b.rs -> a::b, src/a/mod.rs -> a.
  fmod = FILENAME
  sub(/^src\//, "", fmod); sub(/\.rs$/, "", fmod); sub(/\/mod$/, "", fmod)
  if (fmod == "lib") fmod = ""
  gsub(/\//, "::", fmod)
  is_ground = (FILENAME ~ ground_re)
  if (pass == "check") { if (is_ground) nground++; else ncore++ }
}

{
  raw[FNR] = $0
  t = strip($0)
  if (pass == "lib" && match(t, /^[ \t]*(pub(\([^)]*\))?[ \t]+)?mod[ \t]+[A-Za-z_][A-Za-z0-9_]*/)) {
    m = substr(t, RSTART, RLENGTH); sub(/.*mod[ \t]+/, "", m); crate_mods[m] = 1
  }
  # The module this line is in: the file's, plus inline `mod x {` blocks.
  modp = fmod
  for (k = 1; k <= nmods; k++) modp = (modp == "" ? "" : modp "::") modname[k]

  # A use statement, possibly over several lines.
  if (!inuse && t ~ /^[ \t]*(#\[[^]]*\][ \t]*)*(pub(\([^)]*\))?[ \t]+)?use[ \t]/) { inuse = 1; ustmt = ""; uline = FNR }
  if (inuse) {
    ustmt = ustmt (ustmt == "" ? "" : "\n") t
    if (index(t, ";")) { inuse = 0; expand(ustmt, uline) }
  } else if (pass == "check") {
    # Paths written in place: crate::x::y, super::x, self::x, $crate::x.
    s = t; off = 0
    while (match(s, /(^|[^A-Za-z0-9_$:])(\$?crate|super|self)(::[A-Za-z_][A-Za-z0-9_]*)+/)) {
      p = substr(s, RSTART, RLENGTH); sub(/^[^A-Za-z$]/, "", p)
      check_path(p, FNR)
      s = substr(s, RSTART + RLENGTH)
    }
  }

  # Braces, for inline modules (after the line's paths were resolved).
  n = length(t)
  for (i = 1; i <= n; i++) {
    c = substr(t, i, 1)
    if (c == "{") {
      depth++
      pre = substr(t, 1, i - 1)
      if (match(pre, /(^|[^A-Za-z0-9_])mod[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*$/)) {
        m = substr(pre, RSTART, RLENGTH); sub(/.*mod[ \t]+/, "", m); sub(/[ \t]*$/, "", m)
        modname[++nmods] = m; moddepth[nmods] = depth
      }
    } else if (c == "}") {
      if (nmods > 0 && moddepth[nmods] == depth) nmods--
      depth--
    }
  }
}

END {
  nbad = 0
  for (f in badfile) nbad++
  if (bad > 0) {
    printf "check_layers: %d violation(s) in %d file(s) (%d loop-core and %d ground-floor files checked)\n", bad, nbad, ncore, nground
    exit 1
  }
  printf "check_layers: clean (%d loop-core and %d ground-floor files import nothing from the layers above them)\n", ncore, nground
}
AWK
}

self_test() {
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/src/timers" "$tmp/src/promise" "$tmp/src/task"
  cat >"$tmp/src/lib.rs" <<'EOF'
mod error;
mod reactor;
pub mod promise;
pub mod task;
pub mod timers;
pub use task::{block_on, spawn as go};
EOF
  # Clean: upper layers only in comments and strings, core paths, std.
  cat >"$tmp/src/reactor.rs" <<'EOF'
//! See [`crate::promise::Promise`] and crate::task.
use std::fs;
use crate::{error::Error, timers::{self, Timer}};
/// Unlike [`crate::spawn`], ...
pub fn f() -> &'static str {
    let _ = '{'; // crate::process::x
    /* crate::net::TcpStream
       crate::fs::read_file */
    "crate::stdio::stdout() {"
}
mod tests {
    use super::*;
}
EOF
  # Violating, one of each kind, on lines 2 to 8.
  cat >"$tmp/src/timers/mod.rs" <<'EOF'
mod store;
use crate::promise::Promise;
pub use crate::promise::delay;
use crate::{
    error::Error,
    task::{Tasks, Waker},
};
struct S { tasks: crate::task::Tasks, b: fn() = crate::go }
EOF
  cat >"$tmp/src/timers/store.rs" <<'EOF'
use super::super::promise::Promise;
EOF
  cat >"$tmp/src/error.rs" <<'EOF'
use crate::reactor::Reactor;
EOF
  local out rc=0
  out=$(check "$tmp") || rc=$?
  printf '%s\n' "$out" | sed "s|^|  |"
  local flagged expect
  flagged=$(printf '%s\n' "$out" | grep -E '^src/' | cut -d: -f1,2 | tr '\n' ' ')
  expect="src/error.rs:1 src/timers/mod.rs:2 src/timers/mod.rs:3 src/timers/mod.rs:6 src/timers/mod.rs:6 src/timers/mod.rs:8 src/timers/mod.rs:8 src/timers/store.rs:1 "
  if [[ $rc -ne 1 || $flagged != "$expect" ]]; then
    echo "check_layers self-test FAILED: exit $rc, flagged: $flagged" >&2
    echo "                            expected exit 1, flagged: $expect" >&2
    return 1
  fi
  echo "check_layers self-test: ok (the violating files flagged line by line, the clean one not)"
}

case "${1:-}" in
  --self-test) self_test ;;
  --root) check "${2:?--root needs a directory}" ;;
  "") check "$(cd "$(dirname "$0")/.." && pwd)" ;;
  *) echo "usage: $0 [--self-test | --root DIR]" >&2; exit 2 ;;
esac
