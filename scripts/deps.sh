#!/usr/bin/env bash
# deps.sh installs what `make test` needs on a fresh Debian machine, each
# only when it is missing: redis-server (the Redis backend's tests start their
# own servers on free ports), and for the dashboard's browser test Debian's
# chromium, Node.js 20+ with npm (Debian packages nodejs and npm) and
# playwright-core from npm. The browser test skips, saying so, only when
# chromium is not installed; with chromium installed it needs node and
# playwright-core, and fails without them, so this script stops with an
# error instead of letting `make test` fail later.
# Usage: scripts/deps.sh CHROMIUM BROWSER_TEST_DIR
set -u
chromium=${1:-/usr/bin/chromium}
browser_dir=${2:-server/testdata/browser}
playwright="$browser_dir/node_modules/playwright-core/package.json"

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

need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
[ -x "$chromium" ] || need="$need chromium"
if [ -n "$need" ]; then
	if can_apt; then
		apt_install $need
	else
		echo "deps: missing$need and cannot install here (needs apt-get as root)"
	fi
fi
if ! command -v redis-server >/dev/null 2>&1; then
	echo "deps: redis-server is required by the Redis backend's tests" >&2
	exit 1
fi
if [ ! -x "$chromium" ]; then
	echo "deps: chromium is not installed at $chromium: the browser test will skip"
	exit 0
fi
if [ -f "$playwright" ]; then
	exit 0
fi

# Chromium is here, so the browser test will run: it needs node and
# playwright-core, which npm installs.
need=""
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
	if can_apt; then
		apt_install $need
	else
		echo "deps: chromium is installed, so the browser test will run, but it needs$need and they cannot be installed here (needs apt-get as root): install Node.js 20+ with npm, or the browser test will fail" >&2
		exit 1
	fi
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "deps: chromium is installed, so the browser test will run, but node or npm is still missing after apt-get: install Node.js 20+ with npm, or the browser test will fail" >&2
	exit 1
fi
version=$(node --version 2>/dev/null)
major=${version#v}
major=${major%%.*}
case "$major" in
'' | *[!0-9]*) major=0 ;;
esac
if [ "$major" -lt 20 ]; then
	echo "deps: node ${version:-of unknown version} is older than 20, which playwright-core needs: install Node.js 20+ (e.g. from NodeSource), or the browser test will fail" >&2
	exit 1
fi
echo "deps: installing playwright-core for the browser test (npm ci in $browser_dir)"
if ! (cd "$browser_dir" && npm ci --no-audit --no-fund); then
	echo "deps: npm ci in $browser_dir failed; the browser test will fail until playwright-core is installed there" >&2
	exit 1
fi
