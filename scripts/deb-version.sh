#!/bin/sh
# deb-version.sh: the Debian version of the package built from this tree,
# from `git describe`:
#   at a tag vX.Y.Z            X.Y.Z-1
#   N commits after vX.Y.Z     X.Y.Z+gitN.gHASH-1   (sorts after the release)
#   no tag yet                 BASE~gitN.gHASH-1     (before the release of BASE,
#                              the version src/cli/main.c prints; N = commits)
#   no git                     BASE-1
# "-1": the Debian revision (the package is not native: changelog.Debian.gz).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
base=$(sed -n 's/^#define KF_VERSION "\(.*\)"$/\1/p' "$top/src/cli/main.c")
if d=$(git -C "$top" describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
    # vX.Y.Z-N-gHASH
    n=${d%-g*}; n=${n##*-}; tag=${d%-*-g*}; h=${d##*-}
    if [ "$n" = 0 ]; then echo "${tag#v}-1"; else echo "${tag#v}+git$n.$h-1"; fi
elif h=$(git -C "$top" rev-parse --short=7 HEAD 2>/dev/null); then
    echo "$base~git$(git -C "$top" rev-list --count HEAD).g$h-1"
else
    echo "$base-1"
fi
