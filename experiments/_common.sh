# Shared by the experiment scripts (sourced, not run): the Python to use, where the runs
# go (honouring paths.root_dir= / paths.log_dir= among the script's arguments), DRY_RUN,
# and finding runs. Expects the script's arguments in "$@" and DRY set ('' or 1).
PY=${PYTHON:-python}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then  # the current folder's venv, else the repository's
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python
    elif [ -x "$repo/.venv/bin/python" ]; then PY=$repo/.venv/bin/python; fi
fi

# where the runs go (conf/paths/default.yaml: <root_dir>/logs, root_dir from
# LIGHTRESTORE_ROOT else the working directory), honouring the user's overrides
root_dir=${LIGHTRESTORE_ROOT:-.}
log_dir=
for arg in "$@"; do
    case "$arg" in
        paths.root_dir=* | +paths.root_dir=* | ++paths.root_dir=*) root_dir=${arg#*paths.root_dir=} ;;
        paths.log_dir=* | +paths.log_dir=* | ++paths.log_dir=*) log_dir=${arg#*paths.log_dir=} ;;
    esac
done
unquote() {  # a Hydra value as written on the command line, without its quotes
    local v=$1
    if [[ "$v" =~ ^\'(.*)\'$ || "$v" =~ ^\"(.*)\"$ ]]; then v=${BASH_REMATCH[1]}; fi
    printf '%s' "$v"
}
root_dir=$(unquote "$root_dir")
log_dir=${log_dir:-$root_dir/logs}
log_dir=$(unquote "$log_dir")

hydra_value() {  # a path as a Hydra override value: quoted unless plainly safe
    if [[ "$1" =~ ^[A-Za-z0-9/._+@%-]+$ ]]; then
        printf '%s' "$1"
    elif [[ "$1" == *"'"* ]]; then
        echo "$0: cannot pass a path holding a quote to Hydra: $1" >&2
        exit 2
    else
        printf "'%s'" "$1"
    fi
}

run() {  # run a command, or print it under DRY_RUN (quoted for the shell where needed)
    if [ -n "$DRY" ]; then
        local arg line='+'
        for arg in "$@"; do
            if [[ "$arg" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then line+=" $arg"
            else line+=" '${arg//\'/\'\\\'\'}'"; fi
        done
        printf '%s\n' "$line"
    else
        "$@"
    fi
}

newest_multirun() {  # the newest folder under <log_dir>/<task_name>/multiruns/
    local base="$log_dir/$1/multiruns"
    if [ -n "$DRY" ]; then
        echo "$base/NEWEST"
        return
    fi
    local found=  # folder names are <date>_<time>_<pid>: the last in order is the newest
    if [ -d "$base" ]; then
        found=$(find "$base" -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort | tail -n 1)
    fi
    if [ -z "$found" ]; then
        echo "$0: no multirun folder under $base" >&2
        exit 1
    fi
    echo "$found"
}

finished_run() {  # the newest finished run under <log_dir>/<task_name>/runs/ ('' if none)
    local d last=  # in the order of the folder names, <date>_<time>_<pid>: the last is the newest
    for d in "$log_dir/$1"/runs/*/; do
        d=${d%/}
        [ -f "$d/results.json" ] && [ -f "$d/checkpoints/last.ckpt" ] && last=$d
    done
    echo "$last"
}


unfinished_run() {  # the newest run under <log_dir>/<task_name>/runs/ with a last.ckpt and no results
    local d last=
    for d in "$log_dir/$1"/runs/*/; do
        d=${d%/}
        [ ! -f "$d/results.json" ] && [ -f "$d/checkpoints/last.ckpt" ] && last=$d
    done
    echo "$last"
}

last_checkpoint() {  # last_checkpoint <task_name>: the last.ckpt of its newest finished run
    local found  # (a placeholder under DRY_RUN when there is none yet)
    found=$(finished_run "$1")
    if [ -n "$found" ]; then
        echo "$(cd "$found/checkpoints" && pwd)/last.ckpt"
    elif [ -n "$DRY" ]; then
        echo "$log_dir/$1/runs/NEW_RUN/checkpoints/last.ckpt"
    else
        echo "$0: $1 left no finished run (results.json, checkpoints/last.ckpt) under $log_dir/$1/runs" >&2
        exit 1
    fi
}
