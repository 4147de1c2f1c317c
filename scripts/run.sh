#!/usr/bin/env bash
# Runs Confab: builds the web client (release) and starts the server, which serves it and
# the chat socket on one port and prints the URL to open.
# Usage: scripts/run.sh [confab-server flags, e.g. --listen 0.0.0.0:9000]
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CONFAB_ROOT"

build_client
say "starting the server"
exec cargo run --release -p confab-server -- --static-dir dist "$@"
