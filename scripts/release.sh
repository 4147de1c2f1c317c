#!/usr/bin/env bash
# Builds the one file to deploy: the release web client (trunk), then the release server
# with that client inside it (the `embed-client` feature: compressed once here, served
# from memory). Prints the binary's path and size. Copy it anywhere and run it: it needs
# no other file (see README.md, "Deploying").
# Usage: scripts/release.sh
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONFAB_ROOT"

build_client
say "building the server with the client inside: cargo build --release -p confab-server --features embed-client"
cargo build --release -p confab-server --features embed-client

target_dir="${CARGO_TARGET_DIR:-$CONFAB_ROOT/target}"
binary="$target_dir/release/confab-server"
[ -x "$binary" ] || die "no binary at $binary after the build"
bytes="$(stat -c %s "$binary")"
say "done"
printf '%s\n' "$binary"
printf '%s bytes (%s MiB)\n' "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
