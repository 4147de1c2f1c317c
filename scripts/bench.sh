#!/usr/bin/env bash
# Runs the whole benchmark suite: Confab and the Node `ws` peer side by side, server and
# load generator pinned to different cores, the cluster (1, 2 and 3 nodes sharing a
# throwaway PostgreSQL and Redis), then the web client's own check in Chromium
# (bench/client/keystroke.mjs). Takes about six minutes on a quiet machine.
# Usage: scripts/bench.sh [confab-bench suite flags, e.g. --duration-secs 5]
# Writes every figure to bench/results/{suite,client}-<date>.json (not committed) and redraws
# docs/bench-suite.svg (Confab and Node `ws` side by side) from the suite's figures; the
# tables and the method are in docs/PERFORMANCE.md.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONFAB_ROOT"

ensure_cargo
ensure_bench_peer_deps
ensure_client_tools
ensure_chromium
# The cluster scenario starts its own PostgreSQL and Redis from these binaries.
ensure_postgres
ensure_redis
command -v taskset >/dev/null 2>&1 || die "taskset not found (Debian package util-linux)"
say "building the server and the bench (release)"
cargo build --release -p confab-server -p confab-bench
say "building the web client (release)"
trunk build --release --dist dist
mkdir -p bench/results
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
target/release/confab-bench suite --json "bench/results/suite-$stamp.json" "$@"
case " $* " in
*" --smoke "*) say "a smoke run: docs/bench-suite.svg left as it is (smoke figures mean nothing)" ;;
*)
	say "the side-by-side chart: docs/bench-suite.svg"
	target/release/confab-bench chart --json "bench/results/suite-$stamp.json" --out docs/bench-suite.svg \
		--caption "Suite run of $stamp, scripts/bench.sh at $(git rev-parse --short HEAD)"
	;;
esac
say "the web client in Chromium: 5,000 messages, 3 people typing"
node bench/client/keystroke.mjs --server-bin target/release/confab-server --static-dir dist \
	--json "bench/results/client-$stamp.json"
