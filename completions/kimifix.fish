# fish completion for kimifix(1). Installed in
# share/fish/vendor_completions.d/. Rule names come from
# `kimifix check --names` (the rules in effect).

set -l subs check explain relay doctor shell off status log help
function __kimifix_no_sub
    set -l words (commandline -opc)
    set -e words[1]
    while set -q words[1]
        switch $words[1]
            case -f --rules --mode
                set -e words[1..2]
            case '-*'
                set -e words[1]
            case '*'
                return 1
        end
    end
    return 0
end

complete -c kimifix -f
complete -c kimifix -n __kimifix_no_sub -a "$subs" -d subcommand
complete -c kimifix -n __kimifix_no_sub -a "(__fish_complete_command)"
complete -c kimifix -n __kimifix_no_sub -s f -l rules -r -F -d 'rules file'
complete -c kimifix -n __kimifix_no_sub -s v -l verbose -d 'log to standard error'
complete -c kimifix -n __kimifix_no_sub -s q -l quiet -d 'no log'
complete -c kimifix -n __kimifix_no_sub -l mode -x -a 'auto inprocess relay proxy off' -d 'carrier mode'

complete -c kimifix -n '__fish_seen_subcommand_from check' -l names -d "the effective rules' names"
complete -c kimifix -n '__fish_seen_subcommand_from check' -l rule -x -a '(kimifix check --names 2>/dev/null)' -d 'one rule'
complete -c kimifix -n '__fish_seen_subcommand_from check' -F
complete -c kimifix -n '__fish_seen_subcommand_from explain' -l carrier -x -a 'relay inprocess'
complete -c kimifix -n '__fish_seen_subcommand_from explain' -s H -x -d 'request header'
complete -c kimifix -n '__fish_seen_subcommand_from explain' -a 'GET POST PUT DELETE'
complete -c kimifix -n '__fish_seen_subcommand_from relay; and not __fish_seen_subcommand_from start stop status run' -a 'start stop status run'
complete -c kimifix -n '__fish_seen_subcommand_from doctor' -l json -d 'JSON output'
complete -c kimifix -n '__fish_seen_subcommand_from doctor' -a '(__fish_complete_command)'
complete -c kimifix -n '__fish_seen_subcommand_from shell off' -a 'bash zsh fish'
complete -c kimifix -n '__fish_seen_subcommand_from log' -s f -l follow -d 'follow the log'
complete -c kimifix -n '__fish_seen_subcommand_from log' -s n -l lines -x -d 'number of lines'
