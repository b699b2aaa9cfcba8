#!/bin/zsh -f
# zcomp.zsh FPATH_DIR 'WORDS...': the candidates zsh's completion system
# offers for the command line WORDS (then TAB), one per line. It drives a
# real interactive zsh in a pseudo-terminal (zsh/zpty) with compinit and
# the completion functions of FPATH_DIR first in $fpath; compadd is wrapped
# to print what would be added (the technique of zsh-capture-completion).
# Exit 2 when zsh never answers (callers add a hang guard).
zmodload zsh/zpty || exit 2
dir=$1 cmdline=$2
zpty z zsh -f -i
init=$(mktemp)
trap 'rm -f $init; zpty -d z 2>/dev/null' EXIT
cat >$init <<INIT
PROMPT=
fpath=($dir \$fpath)
autoload -U compinit
compinit -u -D
bindkey '^M' undefined
bindkey '^J' undefined
bindkey '^I' complete-word
null-line () { echo -E - \$'\0' }
compprefuncs=( null-line )
comppostfuncs=( null-line exit )
zstyle ':completion:*' list-grouped false
zstyle ':completion:*' insert-tab false
compadd () {
    if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
        builtin compadd "\$@"
        return \$?
    fi
    typeset -a __hits
    builtin compadd -A __hits "\$@"
    (( \$#__hits )) || return
    print -rl -- "\$IPREFIX\${^__hits[@]}"
}
echo ok
INIT
zpty -w z "source $init"
local line
repeat 8; do
    zpty -r z line || exit 2
    [[ $line == ok* ]] && break
done
[[ $line == ok* ]] || exit 2
zpty -w z "$cmdline"$'\t'
integer tog=0
while zpty -r z line; do
    line=${${line%$'\n'}%$'\r'}
    if [[ $line == *$'\0' ]]; then
        (( tog++ )) && exit 0 || continue
    fi
    (( tog )) && print -r -- "$line"
done
exit 2
