#!/usr/bin/env bash
# Runs every test of Confab, in order, stopping at the first failure:
# tools, formatting, the docs' Markdown, the release client build, lints (native and wasm),
# Rust tests, the server binary, a seconds-long smoke of every benchmark scenario, then
# the browser tests (Playwright + Debian's Chromium).
# The client is built first because the server is built with it inside (the
# `embed-client` feature, as scripts/release.sh ships it): the lints, the tests
# (server/tests/embedded_client.rs) and the browser tests (e2e/tests/nginx.spec.ts run
# the binary alone) all see the binary that is deployed.
# The browser tests include the development flow (the server on its default port 9000 and
# `trunk serve` on 8080, as the README shows it): stop a local server or `trunk serve`
# first, or that test fails and says which port is taken.
# Usage: scripts/test.sh [extra args for `npx playwright test`]
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONFAB_ROOT"

TOTAL_STEPS=11
step_no=0
current_step=""
summary=""

now() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

run_start="$(now)"
on_exit() {
	local rc=$?
	if [ "$rc" -ne 0 ] && [ -n "$current_step" ]; then
		printf '\n%s' "$summary" >&2
		printf 'FAILED: step %d/%d "%s" (exit %d) after %ss in total\n' \
			"$step_no" "$TOTAL_STEPS" "$current_step" "$rc" "$(elapsed_since "$run_start")" >&2
	fi
}
trap on_exit EXIT

# step NAME COMMAND...: runs one step in this shell (so tools put on PATH stay there);
# with `set -e` a failing command ends the script and on_exit names the step.
step() {
	current_step=$1
	shift
	step_no=$((step_no + 1))
	printf '\n=== [%d/%d] %s\n' "$step_no" "$TOTAL_STEPS" "$current_step"
	local start
	start="$(now)"
	"$@"
	local took
	took="$(elapsed_since "$start")"
	printf -- '--- [%d/%d] %s: ok (%ss)\n' "$step_no" "$TOTAL_STEPS" "$current_step" "$took"
	summary+="$(printf '  %6ss  %s' "$took" "$current_step")"$'\n'
}

# Every bench scenario for a second against the debug server: proves the load generator
# and the server still speak the same protocol (the cluster scenario starts its own
# PostgreSQL and Redis, installed by ensure_all_tools). Figures from it mean nothing.
bench_smoke() {
	local target_dir="${CARGO_TARGET_DIR:-$CONFAB_ROOT/target}"
	cargo run -q -p confab-bench -- suite --smoke --server-bin "$target_dir/debug/confab-server"
	node bench/client/keystroke.mjs --smoke --server-bin "$target_dir/debug/confab-server" --static-dir dist
}

# Every Markdown file of the project, parsed as CommonMark: a code fence that does not
# close where it was meant to turns the rest of a page into code (tools/check-markdown.mjs).
check_markdown() {
	local files
	mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.md')
	node tools/check-markdown.mjs "${files[@]}"
}

ensure_all_tools() {
	ensure_client_tools
	ensure_chromium
	ensure_e2e_deps
	ensure_bench_peer_deps
	ensure_postgres
	ensure_redis
	ensure_nginx
	ensure_systemd_analyze
	ensure_strace
}

playwright() {
	local target_dir="${CARGO_TARGET_DIR:-$CONFAB_ROOT/target}"
	export CONFAB_SERVER_BIN="${CONFAB_SERVER_BIN:-$target_dir/debug/confab-server}"
	export CONFAB_STATIC_DIR="${CONFAB_STATIC_DIR:-$CONFAB_ROOT/dist}"
	local report="$CONFAB_ROOT/e2e/test-results/summary.json" rc=0
	rm -f "$report"
	(cd e2e && PLAYWRIGHT_JSON_OUTPUT_NAME="$report" npx --no-install playwright test --reporter=list,json "$@") || rc=$?
	# One plain closing line with the counts, from Playwright's JSON report.
	if [ -f "$report" ]; then
		# shellcheck disable=SC2016 # a JavaScript template, not shell
		node -e 'const s = require(process.argv[1]).stats;
			const skipped = s.skipped ? `, ${s.skipped} skipped` : "";
			console.log(`e2e: ${s.expected + s.flaky} passed, ${s.unexpected} failed${skipped}`);' "$report"
	fi
	return "$rc"
}

step "ensure tools" ensure_all_tools
step "cargo fmt --check" cargo fmt --all -- --check
step "markdown renders as written (CommonMark)" check_markdown
# The server with the client inside (build.rs reads dist/): one build serves the lints,
# the tests and the browser tests.
EMBED=(--features confab-server/embed-client)
step "trunk build --release" trunk build --release --dist dist
step "clippy (native)" cargo clippy --workspace --all-targets "${EMBED[@]}" -- -D warnings
step "clippy (wasm client)" cargo clippy -p confab-web --target "$WASM_TARGET" -- -D warnings
# The fuzz targets live outside the workspace (cargo-fuzz needs nightly to run them), so
# nothing else would notice when a change to the server stops them compiling.
step "fuzz targets compile" cargo check --manifest-path fuzz/Cargo.toml --bins
step "cargo test" cargo test --workspace "${EMBED[@]}"
step "build server (debug, client inside, for e2e)" cargo build -p confab-server "${EMBED[@]}"
step "bench smoke (does it work, not how fast)" bench_smoke
step "browser tests (playwright)" playwright "$@"
current_step=""

printf '\nAll steps passed in %ss:\n%s' "$(elapsed_since "$run_start")" "$summary"
