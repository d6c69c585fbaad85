#!/usr/bin/env bash
# deps.sh installs what `make test` needs on a fresh Debian machine, each
# only when it is missing:
#   - redis-server: the Redis backend's tests start their own servers on
#     free ports;
#   - Node.js with npm (Debian packages nodejs and npm), and the official
#     TypeScript MCP SDK (npm ci in TS_CLIENT_DIR): the legacy-loop test
#     runs that SDK's client as the agent;
#   - Debian's chromium and playwright-core (npm ci in BROWSER_TEST_DIR) for
#     the dashboard's browser test, which needs Node.js 20+.
# The browser test skips, saying so, only when chromium is not installed;
# every other test fails without what it needs, so this script stops with an
# error naming it instead of letting `make test` fail later.
# Usage: scripts/deps.sh CHROMIUM BROWSER_TEST_DIR TS_CLIENT_DIR
set -u
chromium=${1:-/usr/bin/chromium}
browser_dir=${2:-server/testdata/browser}
ts_dir=${3:-server/testdata/tsclient}

can_apt() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }

# apt_install installs the Debian packages given, reporting each failure.
apt_install() {
	echo "deps: installing $* with apt-get"
	apt-get update -qq || echo "deps: apt-get update failed"
	for pkg in "$@"; do
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null ||
			echo "deps: apt-get could not install $pkg"
	done
}

# fail stops with a message on stderr.
fail() {
	echo "deps: $*" >&2
	exit 1
}

need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
[ -x "$chromium" ] || need="$need chromium"
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
	if can_apt; then
		apt_install $need
	else
		echo "deps: missing$need and cannot install here (needs apt-get as root)"
	fi
fi
command -v redis-server >/dev/null 2>&1 || fail "redis-server is required by the Redis backend's tests"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	fail "Node.js with npm is required (the legacy-loop test runs the TypeScript MCP SDK client, and the browser test playwright-core): install Node.js 20+ with npm, or those tests will fail"
fi

# npm_ci installs a test's npm packages unless marker shows they are there.
npm_ci() {
	local dir=$1 marker=$2 what=$3
	[ -f "$dir/node_modules/$marker/package.json" ] && return 0
	echo "deps: installing $marker for $what (npm ci in $dir)"
	(cd "$dir" && npm ci --no-audit --no-fund) ||
		fail "npm ci in $dir failed; $what will fail until $marker is installed there"
}

npm_ci "$ts_dir" @modelcontextprotocol/sdk "the TypeScript client test"

if [ ! -x "$chromium" ]; then
	echo "deps: chromium is not installed at $chromium: the browser test will skip"
	exit 0
fi
version=$(node --version 2>/dev/null)
major=${version#v}
major=${major%%.*}
case "$major" in
'' | *[!0-9]*) major=0 ;;
esac
if [ "$major" -lt 20 ]; then
	fail "node ${version:-of unknown version} is older than 20, which playwright-core needs: install Node.js 20+ (e.g. from NodeSource), or the browser test will fail"
fi
npm_ci "$browser_dir" playwright-core "the browser test"
