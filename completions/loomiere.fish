# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_loomiere_global_optspecs
    string join \n h/help V/version
end

function __fish_loomiere_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_loomiere_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_loomiere_using_subcommand
    set -l cmd (__fish_loomiere_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c loomiere -n "__fish_loomiere_needs_command" -s h -l help -d 'Print help'
complete -c loomiere -n "__fish_loomiere_needs_command" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "inspect" -d 'Show a file\'s boxes (MP4) or tags (FLV), its tracks and keyframes'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "cut" -d 'Write a clip from START to END without re-encoding'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "index" -d 'Inject or refresh an FLV\'s onMetaData keyframe index (MP4: faststart; fragmented MP4: defragment)'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "bench" -d 'Load a loopback streaming server with simulated viewers and report latency, stalls, errors'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "serve" -d 'Serve a directory over HTTP/1.1 with seeking, ranges, throttling and a player page'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "demo" -d 'Make sample media (ffmpeg) for `loomiere serve` to show'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "man" -d 'Print the man page (roff) to stdout'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "serve-cgi" -d 'Answer one CGI request (or, with --inetd, one HTTP connection on stdin/stdout)'
complete -c loomiere -n "__fish_loomiere_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c loomiere -n "__fish_loomiere_using_subcommand inspect" -l segments -d 'Also show the HLS/DASH segment layout (MP4) for a target segment duration in seconds' -r -f
complete -c loomiere -n "__fish_loomiere_using_subcommand inspect" -l json -d 'Print JSON for scripts instead of tables'
complete -c loomiere -n "__fish_loomiere_using_subcommand inspect" -l keyframes -d 'Also list every keyframe: presentation time and byte offset'
complete -c loomiere -n "__fish_loomiere_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c loomiere -n "__fish_loomiere_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_using_subcommand cut" -s s -l start -d 'Where to start: seconds (30.5, 1:02:03.5) or, for FLV, a byte offset (123456b)' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand cut" -s e -l end -d 'Where to end, in seconds' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand cut" -s o -l output -d 'Output file (replaced atomically), FIFO or character device (streamed into), or - for stdout. Symbolic links and other special files are refused' -r -F
complete -c loomiere -n "__fish_loomiere_using_subcommand cut" -l exact -d 'Start exactly at START: keep the keyframe before it but hide the frames before START with an edit list'
complete -c loomiere -n "__fish_loomiere_using_subcommand cut" -l co64 -d 'Always write 64-bit chunk offsets (co64)'
complete -c loomiere -n "__fish_loomiere_using_subcommand cut" -l dry-run -d 'Print the plan (pieces and total length) instead of writing it'
complete -c loomiere -n "__fish_loomiere_using_subcommand cut" -s h -l help -d 'Print help'
complete -c loomiere -n "__fish_loomiere_using_subcommand cut" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_using_subcommand index" -s o -l output -d 'Write here instead of replacing FILE: a file (replaced atomically), a FIFO or character device (streamed into), or - for stdout' -r -F
complete -c loomiere -n "__fish_loomiere_using_subcommand index" -l check -d 'Only check whether FILE already has a correct index (exit 0 if so, 1 if not)'
complete -c loomiere -n "__fish_loomiere_using_subcommand index" -s h -l help -d 'Print help'
complete -c loomiere -n "__fish_loomiere_using_subcommand index" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -s n -l viewers -d 'Simulated viewers (concurrent streams)' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -s d -l duration -d 'Run time in seconds; streams still playing at the end are cut' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l ramp -d 'Start the viewers evenly over this many seconds' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l seek -d 'Where viewers seek with start= (default: random, or fixed when --start is given); a start already in the URL is replaced' -r -f -a "random\t'Uniformly random within the media (its duration comes from the server\'s X-Content-Duration or the file\'s index)'
fixed\t'Always --start seconds'"
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l start -d 'The start time for --seek fixed, in seconds (0: the URL as written)' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l bitrate -d 'Playback rate in kbit/s for answers whose duration is unknown' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l read-ahead -d 'Seconds a paced viewer buffers ahead of playback' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l timeout -d 'Connect timeout and longest wait for data, in seconds' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l threads -d 'Runtime worker threads (1: a single-threaded runtime). Default: CPUs, at most 4' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l watch -d 'Seconds each viewer watches before leaving: all, retention (many leave in the first minute, a tail stays to the end; see docs/bench.md), S, or A..B (uniform)' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l max-error-rate -d 'Fail (exit status 1) when more than this percentage of requests fail' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l variant -d 'HLS/DASH targets (URLs ending in .m3u8 or .mpd): play the Nth variant of a multivariant playlist, or the Nth Representation of an MPD (1 = the first)' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l seed -d 'Seed for seek positions and watch times (the same seed draws the same viewers)' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l cacert -d 'https:// targets: trust the CA certificates in FILE (PEM), like curl --cacert. Default: the system CA bundle' -r -F
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l playback-rate -d 'Read at the media\'s playback rate, like a player (the default)'
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l fast -d 'Read as fast as the server sends'
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -l json -d 'Print the report as JSON'
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c loomiere -n "__fish_loomiere_using_subcommand bench" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_using_subcommand serve" -s l -l listen -d 'Address to listen on (not used when systemd passes the sockets: LISTEN_FDS)' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand serve" -s c -l config -d 'Configuration file (TOML; see docs). Also LOOMIERE_CONFIG. Re-read when it changes and on SIGHUP' -r -F
complete -c loomiere -n "__fish_loomiere_using_subcommand serve" -l threads -d 'Runtime worker threads (1: single-threaded). Default: one per CPU' -r
complete -c loomiere -n "__fish_loomiere_using_subcommand serve" -s h -l help -d 'Print help'
complete -c loomiere -n "__fish_loomiere_using_subcommand serve" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_using_subcommand demo" -s h -l help -d 'Print help'
complete -c loomiere -n "__fish_loomiere_using_subcommand demo" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_using_subcommand completions" -s h -l help -d 'Print help'
complete -c loomiere -n "__fish_loomiere_using_subcommand completions" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_using_subcommand man" -s h -l help -d 'Print help'
complete -c loomiere -n "__fish_loomiere_using_subcommand man" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_using_subcommand serve-cgi" -l config -d 'Configuration file (default: $LOOMIERE_CONFIG, else /etc/loomiere/stream.conf, else the CGI DOCUMENT_ROOT with default settings)' -r -F
complete -c loomiere -n "__fish_loomiere_using_subcommand serve-cgi" -l inetd -d 'Serve one HTTP/1.x connection on stdin/stdout (tcpsvd, xinetd, inetd) instead of CGI'
complete -c loomiere -n "__fish_loomiere_using_subcommand serve-cgi" -s h -l help -d 'Print help'
complete -c loomiere -n "__fish_loomiere_using_subcommand serve-cgi" -s V -l version -d 'Print version'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "inspect" -d 'Show a file\'s boxes (MP4) or tags (FLV), its tracks and keyframes'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "cut" -d 'Write a clip from START to END without re-encoding'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "index" -d 'Inject or refresh an FLV\'s onMetaData keyframe index (MP4: faststart; fragmented MP4: defragment)'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "bench" -d 'Load a loopback streaming server with simulated viewers and report latency, stalls, errors'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "serve" -d 'Serve a directory over HTTP/1.1 with seeking, ranges, throttling and a player page'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "demo" -d 'Make sample media (ffmpeg) for `loomiere serve` to show'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "man" -d 'Print the man page (roff) to stdout'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "serve-cgi" -d 'Answer one CGI request (or, with --inetd, one HTTP connection on stdin/stdout)'
complete -c loomiere -n "__fish_loomiere_using_subcommand help; and not __fish_seen_subcommand_from inspect cut index bench serve demo completions man serve-cgi help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
