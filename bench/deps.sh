#!/bin/sh
# bench/deps.sh: Debian packages `make bench` needs beyond the build and
# test dependencies (scripts/deps/*.list). Kept apart so that `make check`
# never pulls nginx or mitmproxy. Idempotent: installs only what is missing.
set -eu
pkgs="nginx mitmproxy valgrind linux-perf python3-requests libcurl4-openssl-dev libssl-dev nghttp2-client strace libhttp-parser-dev"
missing=
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "bench/deps.sh: installing$missing"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The nginx package may start a system nginx on port 80; the bench runs its own.
