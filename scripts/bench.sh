#!/usr/bin/env bash
# Runs the whole benchmark suite: Confab and the Node `ws` peer side by side, server and
# load generator pinned to different cores. Takes about three minutes on a quiet machine.
# Usage: scripts/bench.sh [confab-bench suite flags, e.g. --duration-secs 5]
# Writes every figure to bench/results/suite-<date>.json (not committed); the tables
# and the method are in docs/PERFORMANCE.md.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONFAB_ROOT"

ensure_cargo
ensure_bench_peer_deps
command -v taskset >/dev/null 2>&1 || die "taskset not found (Debian package util-linux)"
say "building the server and the bench (release)"
cargo build --release -p confab-server -p confab-bench
mkdir -p bench/results
out="bench/results/suite-$(date -u +%Y%m%dT%H%M%SZ).json"
target/release/confab-bench suite --json "$out" "$@"
