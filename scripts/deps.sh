#!/usr/bin/env bash
# deps.sh installs what `make test` needs on a fresh Debian machine, each
# only when it is missing: redis-server (the Redis backend's tests start their
# own servers on free ports) and Debian's chromium plus playwright-core from
# npm (the dashboard's browser test, which skips, saying so, without them).
# Usage: scripts/deps.sh CHROMIUM BROWSER_TEST_DIR
set -u
chromium=${1:-/usr/bin/chromium}
browser_dir=${2:-server/testdata/browser}

need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
[ -x "$chromium" ] || need="$need chromium"
if [ -n "$need" ]; then
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		echo "deps: installing$need with apt-get"
		apt-get update -qq || echo "deps: apt-get update failed"
		for pkg in $need; do
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null ||
				echo "deps: apt-get could not install $pkg"
		done
	else
		echo "deps: missing$need and cannot install here (needs apt-get as root)"
	fi
fi
if ! command -v redis-server >/dev/null 2>&1; then
	echo "deps: redis-server is required by the Redis backend's tests" >&2
	exit 1
fi
if [ -x "$chromium" ] && [ ! -f "$browser_dir/node_modules/playwright-core/package.json" ]; then
	echo "deps: installing playwright-core for the browser test"
	(cd "$browser_dir" && npm ci --no-audit --no-fund) || echo "deps: npm ci failed; the browser test will skip"
fi
