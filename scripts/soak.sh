#!/usr/bin/env bash
# T49, the mixed soak (tests/rel_soak.rs): one loop with churning echo
# connections, timers, fs ops, child processes and promise chains, sampled
# for growth. Run before a release.
#
#   scripts/soak.sh            # 60 s
#   scripts/soak.sh 600        # the reliability catalogue's 10 minutes
#   SAMPLE=5 scripts/soak.sh 30
#
# Builds in release mode, then runs the soak under a hard timeout (the
# duration plus two minutes), so it always stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
sample="${SAMPLE:-10}"
cargo test --release --test rel_soak --no-run
REL_B_SOAK_SECS="$secs" REL_B_SOAK_SAMPLE="$sample" \
  timeout --kill-after=10 "$((secs + 120))" \
  cargo test --release --test rel_soak -- --ignored --nocapture
