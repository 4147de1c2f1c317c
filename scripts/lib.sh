# shellcheck shell=bash
# Helpers sourced by scripts/run.sh and scripts/test.sh: one `ensure_*` function per tool.
# Each checks first and installs only what is missing or at the wrong version, so a warm
# run costs a few version checks. Works on a fresh machine as root (CI) or as a user
# with sudo. Facts behind the pins: shared/TOOLCHAIN.md.

CONFAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONFAB_ROOT

TRUNK_VERSION="0.21.14"
WASM_TARGET="wasm32-unknown-unknown"
CHROMIUM_BIN="/usr/bin/chromium"

# Progress and errors go to stderr so they never mix with a command's real output.
say() { printf '==> %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

ensure_cargo() {
	if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
		# shellcheck source=/dev/null
		. "$HOME/.cargo/env"
	fi
	case ":$PATH:" in
	*":$HOME/.cargo/bin:"*) ;;
	*) export PATH="$HOME/.cargo/bin:$PATH" ;; # where `cargo install` puts binaries
	esac
	command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup first"
}

ensure_wasm_target() {
	ensure_cargo
	if rustup target list --installed | grep -qx "$WASM_TARGET"; then
		say "rust target $WASM_TARGET: ok"
	else
		say "rust target $WASM_TARGET: installing"
		rustup target add "$WASM_TARGET"
	fi
}

# Prints the version of a tool's `--version` output (its last word, without a leading v),
# or nothing when the tool is not on PATH.
tool_version() {
	command -v "$1" >/dev/null 2>&1 || return 0
	"$1" --version 2>/dev/null | head -n 1 | awk '{ sub(/^v/, "", $NF); print $NF }'
}

# ensure_cargo_tool BIN VERSION CRATE [extra `cargo install` flags...]
ensure_cargo_tool() {
	local bin=$1 want=$2 crate=$3
	shift 3
	local have
	have="$(tool_version "$bin")"
	if [ "$have" = "$want" ]; then
		say "$bin $want: ok"
		return 0
	fi
	say "$bin: have '${have:-none}', want $want: cargo install $crate $want (takes minutes)"
	cargo install "$@" "$crate" --version "$want"
	have="$(tool_version "$bin")"
	[ "$have" = "$want" ] || die "$bin is '${have:-missing}' after installing $want: is ~/.cargo/bin first on PATH?"
}

ensure_trunk() {
	ensure_cargo
	ensure_cargo_tool trunk "$TRUNK_VERSION" trunk --locked
}

# The version of the `wasm-bindgen` crate in Cargo.lock: the CLI must match it exactly.
locked_wasm_bindgen_version() {
	awk '/^name = "wasm-bindgen"$/ { found = 1; next }
	     found && /^version = / { gsub(/"/, "", $3); print $3; exit }' "$CONFAB_ROOT/Cargo.lock"
}

ensure_wasm_bindgen() {
	ensure_cargo
	local want
	want="$(locked_wasm_bindgen_version)"
	[ -n "$want" ] || die "no wasm-bindgen in Cargo.lock"
	# Not --locked: the CLI's own lock file pins a crate release the registry lacks.
	ensure_cargo_tool wasm-bindgen "$want" wasm-bindgen-cli
}

# npm_ci_if_stale DIR: `npm ci` in DIR unless its node_modules was installed from the
# same package.json, package-lock.json and Node version (recorded in a stamp file).
npm_ci_if_stale() {
	local dir="$CONFAB_ROOT/$1"
	command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20 and npm"
	local stamp="$dir/node_modules/.confab-stamp" want
	want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) node-$(node --version)"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		say "$1/node_modules: ok"
		return 0
	fi
	say "$1/node_modules: missing or stale: npm ci"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	printf '%s\n' "$want" >"$stamp"
}

ensure_wasm_opt() {
	npm_ci_if_stale tools
	case ":$PATH:" in
	*":$CONFAB_ROOT/tools/node_modules/.bin:"*) ;;
	*) export PATH="$CONFAB_ROOT/tools/node_modules/.bin:$PATH" ;;
	esac
	wasm-opt --version | grep -q 'version_123' || die "wasm-opt is not version_123: $(wasm-opt --version)"
	say "wasm-opt version_123: ok"
}

ensure_chromium() {
	if [ -x "$CHROMIUM_BIN" ]; then
		say "chromium: ok"
		return 0
	fi
	say "chromium: installing Debian's package"
	export DEBIAN_FRONTEND=noninteractive
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
	[ -x "$CHROMIUM_BIN" ] || die "$CHROMIUM_BIN is still missing after apt-get install chromium"
}

# Colour emoji for the README's picture (scripts/screenshot.sh): Debian's Chromium finds no
# emoji in the DejaVu and Liberation fonts and would draw empty boxes.
ensure_emoji_font() {
	if fc-list 2>/dev/null | grep -qi 'Noto Color Emoji'; then
		say "emoji font: ok"
		return 0
	fi
	say "emoji font: installing Debian's fonts-noto-color-emoji"
	apt_install fonts-noto-color-emoji fontconfig
}

# Shrinks the README's picture (scripts/screenshot.sh).
ensure_pngquant() {
	if command -v pngquant >/dev/null 2>&1; then
		say "pngquant: ok"
		return 0
	fi
	say "pngquant: installing Debian's package"
	apt_install pngquant
}

ensure_e2e_deps() {
	npm_ci_if_stale e2e
}

# The Node `ws` server the benchmarks measure Confab against, and the Playwright driver of
# the client benchmark (bench/client).
ensure_bench_peer_deps() {
	npm_ci_if_stale bench/peers/node-ws
	npm_ci_if_stale bench/client
}

# Everything `trunk build --release` needs: rustc's wasm target, trunk, and local
# wasm-bindgen and wasm-opt so trunk never tries to download them.
ensure_client_tools() {
	ensure_cargo
	ensure_wasm_target
	ensure_trunk
	ensure_wasm_bindgen
	ensure_wasm_opt
}

# The release web client into dist/, with what it needs to build (what every script that
# serves or ships the client runs first).
build_client() {
	ensure_client_tools
	say "building the web client: trunk build --release --dist dist"
	trunk build --release --dist dist
}

# apt_install PKG...: Debian packages, for tools not installed yet (never upgrades).
apt_install() {
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# The directory of PostgreSQL's server binaries (initdb, postgres): PATH first, then
# Debian's versioned directories (the newest), which Debian keeps off PATH. The Rust test
# harness (server/tests/common/services.rs) looks in the same places.
postgres_bin_dir() {
	local initdb dir candidates=()
	if initdb="$(command -v initdb 2>/dev/null)"; then
		candidates+=("$(dirname "$(readlink -f "$initdb")")")
	fi
	mapfile -t -O "${#candidates[@]}" candidates < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
	for dir in "${candidates[@]}"; do
		if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
			printf '%s\n' "$dir"
			return 0
		fi
	done
	return 0 # found nothing: prints nothing
}

# PostgreSQL for the cluster tests: they start their own throwaway servers (initdb in a
# temporary directory, their own port), so only the binaries are needed; a service the
# package may have started is never used. As root, initdb refuses to run and the tests run
# it as the `postgres` user, which Debian's package creates.
ensure_postgres() {
	local dir
	dir="$(postgres_bin_dir)"
	if [ -z "$dir" ]; then
		say "postgresql: installing Debian's package"
		apt_install postgresql
		dir="$(postgres_bin_dir)"
		[ -n "$dir" ] || die "no initdb on PATH nor in /usr/lib/postgresql/*/bin after apt-get install postgresql"
	fi
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		die "running as root, the tests need a 'postgres' user to run initdb as (Debian's postgresql package creates it)"
	fi
	say "postgresql $("$dir/postgres" --version | awk '{ print $3 }') ($dir): ok"
}

# Redis for the cluster tests, which start their own servers on their own ports: only the
# binary is needed; a service the package may have started is never used.
ensure_redis() {
	if ! command -v redis-server >/dev/null 2>&1; then
		say "redis-server: installing Debian's package"
		apt_install redis-server
		command -v redis-server >/dev/null 2>&1 || die "redis-server is still missing after apt-get install redis-server"
	fi
	# `redis-server --version` says "Redis server v=7.0.15 sha=... build=...".
	say "redis-server $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p'): ok"
}

# nginx for the reverse-proxy browser test (e2e/tests/nginx.spec.ts), which starts its own
# nginx on free ports with a temporary prefix: only the binary is needed; a service the
# package may have started is never used. openssl makes that test's certificate.
ensure_nginx() {
	local nginx
	nginx="$(command -v nginx 2>/dev/null || true)"
	[ -n "$nginx" ] || [ ! -x /usr/sbin/nginx ] || nginx=/usr/sbin/nginx # off PATH for users
	if [ -z "$nginx" ] || ! command -v openssl >/dev/null 2>&1; then
		say "nginx, openssl: installing Debian's packages"
		apt_install nginx openssl
		nginx="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"
		[ -x "$nginx" ] || die "nginx is still missing after apt-get install nginx"
	fi
	# `nginx -v` says "nginx version: nginx/1.22.1" on stderr.
	say "nginx $("$nginx" -v 2>&1 | sed -n 's|.*nginx/||p'): ok"
}

# systemd-analyze, with which server/tests/deploy_files.rs checks deploy/confab.service
# (it only reads the file: no running systemd is needed).
ensure_systemd_analyze() {
	if ! command -v systemd-analyze >/dev/null 2>&1; then
		say "systemd-analyze: installing Debian's systemd package"
		apt_install systemd
		command -v systemd-analyze >/dev/null 2>&1 || die "systemd-analyze is still missing after apt-get install systemd"
	fi
	say "systemd-analyze $(systemd-analyze --version | awk 'NR == 1 { print $2 }'): ok"
}

# strace, with which server/tests/deploy_files.rs checks that the systemd unit's system
# call filter allows everything the server does.
ensure_strace() {
	if ! command -v strace >/dev/null 2>&1; then
		say "strace: installing Debian's package"
		apt_install strace
		command -v strace >/dev/null 2>&1 || die "strace is still missing after apt-get install strace"
	fi
	say "$(strace -V | head -n 1): ok"
}
