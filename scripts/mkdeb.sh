#!/bin/sh
# mkdeb.sh BUILD MAKE: build BUILD/kimifix_VERSION_ARCH.deb with dpkg-deb
# from the install tree (`make install DESTDIR=...` with Debian's layout),
# and print its path on the last line. Used by `make deb`.
#
#   /usr/bin/kimifix
#   /usr/lib/MULTIARCH/libkimifix.so           the bare name LD_PRELOAD finds
#   /usr/lib/MULTIARCH/kimifix/kimifix-relay   private
#   /usr/share/man/man{1,5}/*.gz               gzip -9n
#   /usr/share/bash-completion/completions/kimifix, zsh vendor-completions,
#   fish vendor_completions.d
#   /usr/share/doc/kimifix/{copyright (machine-readable), changelog.Debian.gz,
#   README.md.gz, docs}
#   DEBIAN/{control, md5sums, triggers}
#
# Depends: computed by dpkg-shlibdeps from the binaries (the shim needs
# only libc6; the relay libssl3). Binaries are stripped as dh_strip does.
# Timestamps come from the last commit (SOURCE_DATE_EPOCH), so the same
# commit gives the same package.
set -eu
B=$(cd "$1" && pwd)
MAKE=${2:-make}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

version=$(sh scripts/deb-version.sh)
arch=$(dpkg --print-architecture)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || cc -dumpmachine)
maint=${DEB_MAINTAINER:-$(git log -1 --format='%an <%ae>' 2>/dev/null || echo 'kimifix authors <kimifix@localhost>')}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

work=$B/deb
root=$work/root
rm -rf "$work"
mkdir -p "$root/DEBIAN" "$work/src/debian"

$MAKE --no-print-directory install B="$B" DESTDIR="$root" PREFIX=/usr LIBDIR="/usr/lib/$ma" \
    ZSHCOMPDIR=/usr/share/zsh/vendor-completions >/dev/null

# As dh_strip: debug symbols out, the dynamic symbols (the shim's hooks) kept.
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/lib/$ma/libkimifix.so"
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/kimifix" \
    "$root/usr/lib/$ma/kimifix/kimifix-relay"

gzip -9n "$root/usr/share/man/man1/kimifix.1" "$root/usr/share/man/man5/kimifix.rules.5"

doc=$root/usr/share/doc/kimifix
install -d "$doc/docs"
install -m 0644 README.md "$doc/README.md"
install -m 0644 docs/*.md "$doc/docs/"
# Policy 12.3: documentation over 4 kB is compressed.
find "$doc" -name '*.md' -size +4k -exec gzip -9n {} +

# copyright, machine-readable (DEP-5): the MIT licence is "Expat" in Debian.
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: kimifix"
    echo
    echo "Files: *"
    echo "Copyright: $(sed -n 's/^Copyright (c) //p' LICENSE)"
    echo "License: Expat"
    sed -n '/^Permission is hereby granted/,$p' LICENSE | sed 's/^$/./; s/^/ /'
} >"$doc/copyright"

when=$(date -R -u -d "@$SOURCE_DATE_EPOCH")
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
{
    echo "kimifix ($version) unstable; urgency=medium"
    echo
    echo "  * Built from git commit $commit with make deb."
    echo
    echo " -- $maint  $when"
} >"$work/changelog.Debian"
gzip -9n -c "$work/changelog.Debian" >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz" "$doc/copyright"

# Depends from the binaries (dpkg-shlibdeps wants a debian/control).
printf 'Source: kimifix\n\nPackage: kimifix\nArchitecture: any\n' >"$work/src/debian/control"
deps=$(cd "$work/src" && dpkg-shlibdeps -O -e"$root/usr/bin/kimifix" -e"$root/usr/lib/$ma/libkimifix.so" \
    -e"$root/usr/lib/$ma/kimifix/kimifix-relay" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { echo "mkdeb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -k -s --apparent-size "$root/usr" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: kimifix
Version: $version
Architecture: $arch
Maintainer: $maint
Installed-Size: $size
Depends: $deps
Section: net
Priority: optional
Description: fix AI coding clients' requests to Moonshot's Kimi in flight
 Some AI coding clients send requests that Moonshot's Kimi endpoints
 reject: an Anthropic SDK given the base URL .../coding/v1 posts to
 /coding/v1/v1/messages, kimi-code sends a platform header the coding
 endpoint refuses, sk-kimi- keys are sent to the legacy host. kimifix fixes
 such requests inside the unmodified client, by rules, with built-in rules
 for the known bugs:
 .
  * libkimifix.so, an LD_PRELOAD library that interposes libcurl, OpenSSL
    and GnuTLS write paths and libc sockets (LD_PRELOAD=libkimifix.so CMD);
  * kimifix CMD, a wrapper like torsocks, and kimifix shell for a whole
    shell session;
  * a local TLS relay for clients with their own TLS (official Node
    builds, Bun, Go), with a per-user, name-constrained CA.
 .
 Only the request line and headers of HTTP/1.x requests change; bodies
 never do.
EOF
# The shared library in a directory the loader caches.
echo "activate-noawait ldconfig" >"$root/DEBIAN/triggers"
(cd "$root" && find usr -type f | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums" "$root/DEBIAN/triggers"
find "$root" -type d -exec chmod 0755 {} +

deb=$B/kimifix_${version}_$arch.deb
rm -f "$B"/kimifix_*_"$arch".deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
