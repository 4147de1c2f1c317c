#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for a while each and reports what they did.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
#   targets: decode_client handle_message search_query (default: all)
#   FUZZ_JOBS=N runs N fuzzing processes per target (libFuzzer -fork=N; default 1).
# Needs a nightly toolchain (`cargo +nightly`); without one it says so and skips (exit 0).
# New inputs go to fuzz/work/<target>/ (kept between runs, not committed); the seeds in
# fuzz/corpus/<target>/ are only read. A crash stops the run with a non-zero exit and
# leaves the input in fuzz/artifacts/<target>/. Results: docs/RELIABILITY.md.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONFAB_ROOT"

CARGO_FUZZ_VERSION="0.13.2"
ALL_TARGETS=(decode_client handle_message search_query)

seconds="${1:-60}"
[ "$#" -gt 0 ] && shift
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${ALL_TARGETS[@]}")
case "$seconds" in
'' | *[!0-9]*) die "SECONDS must be a whole number, got '$seconds'" ;;
esac
jobs="${FUZZ_JOBS:-1}"
for target in "${targets[@]}"; do
	case " ${ALL_TARGETS[*]} " in
	*" $target "*) ;;
	*) die "unknown fuzz target '$target' (known: ${ALL_TARGETS[*]})" ;;
	esac
done

ensure_cargo
if ! cargo +nightly --version >/dev/null 2>&1; then
	say "SKIPPED fuzzing: no nightly toolchain here ('cargo +nightly' fails); cargo-fuzz needs one"
	exit 0
fi
if [ "$(cargo fuzz --version 2>/dev/null | awk '{ print $NF }')" != "$CARGO_FUZZ_VERSION" ]; then
	say "cargo-fuzz $CARGO_FUZZ_VERSION: installing"
	cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# Per-target libFuzzer options. handle_message applies up to 64 frames per input to a
# real hub; small inputs keep it fast, and long strings are decode_client's business.
# search_query takes queries (at most 256 characters, so 1 KiB covers every length a
# query may have and a little past it) and its own dictionary.
extra_args() {
	case "$1" in
	handle_message) echo "-max_len=512 -dict=fuzz/protocol.dict" ;;
	search_query) echo "-max_len=1100 -dict=fuzz/search.dict" ;;
	*) echo "-dict=fuzz/protocol.dict" ;;
	esac
}

summary=""
for target in "${targets[@]}"; do
	args=(-max_total_time="$seconds" -print_final_stats=1)
	read -r -a more <<<"$(extra_args "$target")"
	args+=("${more[@]}")
	[ "$jobs" -gt 1 ] && args+=(-fork="$jobs")
	mkdir -p "fuzz/work/$target"
	log="fuzz/work/$target.log"
	say "fuzzing $target for ${seconds}s: cargo +nightly fuzz run -s none $target fuzz/work/$target fuzz/corpus/$target -- ${args[*]}"
	# No sanitizer: the project forbids unsafe code, so AddressSanitizer would find
	# little and halve the speed; debug assertions and overflow checks stay on.
	set +e
	cargo +nightly fuzz run -s none "$target" "fuzz/work/$target" "fuzz/corpus/$target" \
		-- "${args[@]}" 2>&1 | tee "$log" | grep -E '^#[0-9]+.*(pulse|DONE)|^Done|crash|panicked' | tail -n 5
	rc=${PIPESTATUS[0]}
	set -e
	# No stats line at all when the target did not even build.
	stats="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
	if [ "$rc" -ne 0 ]; then
		[ -n "$stats" ] || tail -n 30 "$log" >&2
		printf '%s\n' "$summary" >&2
		die "$target FAILED (exit $rc): see $log and fuzz/artifacts/$target/"
	fi
	summary+="$(printf '%s: no crash in %ss; last stats: %s' "$target" "$seconds" "$stats")"$'\n'
done
printf '\n%s' "$summary"
