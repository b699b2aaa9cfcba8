# bash completion for kimifix(1)                        -*- shell-script -*-
# Installed as share/bash-completion/completions/kimifix (loaded on demand
# by bash-completion), or source it from ~/.bashrc. Works with and without
# bash-completion's helpers. Rule names come from `kimifix check --names`
# (the rules in effect: built-ins and your rules file).

_kimifix_words()
{
    local IFS=$' \t\n'
    COMPREPLY+=($(compgen -W "$1" -- "$2"))
}

_kimifix_files()
{
    local IFS=$'\n'
    COMPREPLY+=($(compgen -f -- "$1"))
    compopt -o filenames 2>/dev/null
}

_kimifix()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local subs="check explain relay doctor shell off status log help"
    local modes="auto inprocess relay proxy off"
    local shells="bash zsh fish"
    COMPREPLY=()

    # The wrapper's options come first: skip them to find the subcommand
    # or the command to run.
    local i=1 w
    while [ "$i" -lt "$COMP_CWORD" ]; do
        w=${COMP_WORDS[i]}
        case $w in
        -f | --rules | --mode) i=$((i + 2)) ;;
        --) i=$((i + 1)); break ;;
        -*) i=$((i + 1)) ;;
        *) break ;;
        esac
    done
    if [ "$i" -ge "$COMP_CWORD" ]; then
        case $prev in
        -f | --rules) _kimifix_files "$cur"; return ;;
        --mode) _kimifix_words "$modes" "$cur"; return ;;
        esac
        case $cur in
        -*) _kimifix_words "-f --rules -v --verbose -q --quiet --mode -- --help --version" "$cur" ;;
        *)
            _kimifix_words "$subs" "$cur"
            [ "$i" -gt 1 ] && COMPREPLY=()   # after options: a command, not a subcommand
            local IFS=$'\n'
            COMPREPLY+=($(compgen -c -- "$cur"))
            ;;
        esac
        return
    fi

    local sub=${COMP_WORDS[i]}
    case $sub in
    check)
        case $prev in
        --rule)
            COMPREPLY=()
            _kimifix_words "$(command kimifix check --names 2>/dev/null)" "$cur"
            return ;;
        esac
        case $cur in
        -*) _kimifix_words "--names --rule --help" "$cur" ;;
        *) _kimifix_files "$cur" ;;
        esac ;;
    explain)
        case $prev in
        -f) _kimifix_files "$cur"; return ;;
        --carrier) _kimifix_words "relay inprocess" "$cur"; return ;;
        -H) _kimifix_words "Authorization: x-api-key: X-Msh-Platform: User-Agent: Content-Type:" "$cur"; return ;;
        esac
        case $cur in
        -*) _kimifix_words "-f --carrier -H --help" "$cur" ;;
        http*) _kimifix_words "https://api.kimi.com/coding/v1/ https://api.moonshot.ai/v1/ https://api.moonshot.cn/v1/" "$cur" ;;
        *) _kimifix_words "GET POST PUT DELETE https://" "$cur" ;;
        esac ;;
    relay)
        if [ "$COMP_CWORD" -eq $((i + 1)) ]; then
            _kimifix_words "start stop status run" "$cur"
        else
            case ${COMP_WORDS[i+1]} in
            start | run) _kimifix_words "--port --idle -v" "$cur" ;;
            esac
        fi ;;
    doctor)
        case $prev in
        -f | --rules) _kimifix_files "$cur"; return ;;
        esac
        case $cur in
        -*) _kimifix_words "--json -f --rules --help" "$cur" ;;
        *) local IFS=$'\n'; COMPREPLY=($(compgen -c -- "$cur")) ;;
        esac ;;
    shell)
        case $prev in
        -f | --rules) _kimifix_files "$cur"; return ;;
        --mode) _kimifix_words "$modes" "$cur"; return ;;
        esac
        case $cur in
        -*) _kimifix_words "-f --rules -v -q --mode --help" "$cur" ;;
        *) _kimifix_words "$shells" "$cur" ;;
        esac ;;
    off) [ "$COMP_CWORD" -eq $((i + 1)) ] && _kimifix_words "$shells" "$cur" ;;
    log)
        case $prev in
        -n | --lines) ;;
        *) _kimifix_words "-f --follow -n --lines --help" "$cur" ;;
        esac ;;
    status | help) ;;
    *)
        # kimifix CMD ARGS...: complete CMD's own arguments.
        if declare -F _command_offset >/dev/null; then
            _command_offset "$i"
        else
            _kimifix_files "$cur"
        fi ;;
    esac
}
complete -F _kimifix kimifix
