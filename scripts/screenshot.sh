#!/usr/bin/env bash
# Refreshes docs/screenshot.png, the picture at the top of the README: builds the client and
# the server, then runs the browser test that stages the conversation and photographs it
# (e2e/tests/screenshot.spec.ts) with CONFAB_UPDATE_SCREENSHOT=1, which makes it copy the
# picture into docs/. The same test runs in scripts/test.sh without touching docs/.
# Usage: scripts/screenshot.sh
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONFAB_ROOT"

ensure_chromium
ensure_e2e_deps
ensure_emoji_font
ensure_pngquant
build_client
say "building the server (debug, as the browser tests use it)"
cargo build -p confab-server
target_dir="${CARGO_TARGET_DIR:-$CONFAB_ROOT/target}"
(cd e2e && CONFAB_UPDATE_SCREENSHOT=1 \
	CONFAB_SERVER_BIN="$target_dir/debug/confab-server" CONFAB_STATIC_DIR="$CONFAB_ROOT/dist" \
	npx --no-install playwright test tests/screenshot.spec.ts)
# Chromium's PNG is several times larger than it needs to be for a page of flat colours:
# 256 colours (dithered) are indistinguishable here and keep the README light.
# (Exit 98 or 99: the result would be larger or worse than asked; the original stays.)
rc=0
pngquant --force --skip-if-larger --strip --quality 80-100 --output docs/screenshot.png docs/screenshot.png || rc=$?
case "$rc" in
0 | 98 | 99) ;;
*) die "pngquant failed (exit $rc)" ;;
esac
say "docs/screenshot.png: $(wc -c <docs/screenshot.png) bytes"
