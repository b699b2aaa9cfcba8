#!/bin/sh
# deps.sh: install the Debian packages kimifix needs to build and test.
# Idempotent and quick when everything is present: it asks dpkg first and
# only runs apt-get for what is missing. Package lists: scripts/deps/*.list
# (one package per line, '#' comments). Set KIMIFIX_NO_DEPS=1 to skip.
set -eu
[ "${KIMIFIX_NO_DEPS:-0}" = 1 ] && exit 0
here=$(dirname "$0")
want=$(cat "$here"/deps/*.list | sed 's/#.*//' | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
missing=""
for p in $want; do
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$st" in ii*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# An old or empty package list cannot find new names: update once, then install.
$sudo apt-get update -qq >&2 || true
$sudo apt-get install -y -qq --no-install-recommends $missing >&2
