#!/usr/bin/env bash
# DL-Net's tables for one study (Tables 2/3/9: method x test setting, cells l1 / l2 / PSNR):
# the runs, then one summary (summary.md with a "Test settings" table, summary.csv and
# summary_settings.csv) in the multirun folder.
#
#   [EPOCHS=E] [REFERENCE=<ckpt>] [DRY_RUN=1] \
#       experiments/dlnet_tables.sh <inpaint|interp|sr_vdsr|sr_drrn|sr_idn> [hydra overrides...]
#
# inpaint / interp:
#   1. the single-setting reference, experiment=dlnet_<task>_default
#      (task_name=dlnet_tables_<task>_reference); skipped when a finished reference run
#      (results.json and checkpoints/last.ckpt under <log_dir>/<that task_name>/runs/*) exists
#      (the newest is used) or when REFERENCE=<ckpt> gives one;
#   2. a multirun over experiment=dlnet_<task>_joint,dlnet_<task>,dlnet_<task>_naive,
#      dlnet_<task>_multitask, each fine-tuned from the reference (init_from=<its ckpt>, as
#      the paper does), task_name=dlnet_tables_<task>;
#   3. python -m lightrestore.report <reference run> <multirun> --out <multirun>.
# sr_<backbone>: a multirun over experiment=dlnet_sr_<backbone>_x2,_x3,_x4 and method.k=1,5
#   (K=1: the backbone trained jointly; K=5: DL-Net), task_name=dlnet_tables_sr_<backbone>,
#   then the report of that multirun (one table per scale, settings u in {0, 1.3, 2.6}).
# Budget: EPOCHS (default 2) = trainer.max_epochs of every run (the paper trains far longer).
# Extra overrides go to every run, e.g. data=folder data.source.root=/data/celeba trainer=gpu;
# paths.log_dir=X (or paths.root_dir=X) moves the runs, and the script looks for them there.
# DRY_RUN=1 prints the commands ("+ " first) instead of running them.
set -euo pipefail
usage="usage: $0 <inpaint|interp|sr_vdsr|sr_drrn|sr_idn> [hydra overrides...]"
study=${1:?$usage}
shift
case "$study" in
    inpaint | interp | sr_vdsr | sr_drrn | sr_idn) ;;
    *) echo "$0: unknown study '$study'; $usage" >&2; exit 2 ;;
esac
EPOCHS=${EPOCHS:-2}
if ! [[ "$EPOCHS" =~ ^[1-9][0-9]*$ ]]; then
    echo "$0: EPOCHS must be a positive integer (got '$EPOCHS')" >&2
    exit 2
fi
DRY=${DRY_RUN:-0}
[ "$DRY" = 0 ] && DRY=
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

finished_reference() {  # the newest finished run under <log_dir>/<task_name>/runs/ ('' if none)
    local d last=  # in the order of the folder names, <date>_<time>_<pid>: the last is the newest
    for d in "$log_dir/$1"/runs/*/; do
        d=${d%/}
        [ -f "$d/results.json" ] && [ -f "$d/checkpoints/last.ckpt" ] && last=$d
    done
    echo "$last"
}

epochs=(trainer.max_epochs="$EPOCHS")
case "$study" in
    inpaint | interp)
        task=$study
        ref_name=dlnet_tables_${task}_reference
        if [ -n "${REFERENCE:-}" ]; then
            if [ ! -f "$REFERENCE" ]; then
                echo "$0: REFERENCE=$REFERENCE is not a file (give the reference's .ckpt)" >&2
                exit 2
            fi
            ref_ckpt=$REFERENCE
            echo "step 1: the reference is REFERENCE=$ref_ckpt (not trained)" >&2
        elif ref_run=$(finished_reference "$ref_name") && [ -n "$ref_run" ]; then
            ref_ckpt=$ref_run/checkpoints/last.ckpt
            echo "step 1: a finished reference run exists, $ref_run (not trained again)" >&2
        else
            echo "step 1: training the single-setting reference, experiment=dlnet_${task}_default" >&2
            run "$PY" -m lightrestore experiment=dlnet_"$task"_default task_name="$ref_name" \
                "${epochs[@]}" "$@"
            if [ -n "$DRY" ]; then
                ref_ckpt="$log_dir/$ref_name/runs/NEW_RUN/checkpoints/last.ckpt"
            else
                ref_run=$(finished_reference "$ref_name")
                if [ -z "$ref_run" ]; then
                    echo "$0: the reference run left no results.json and checkpoints/last.ckpt under $log_dir/$ref_name/runs" >&2
                    exit 1
                fi
                ref_ckpt=$ref_run/checkpoints/last.ckpt
            fi
        fi
        if [ -f "$ref_ckpt" ]; then  # absolute: the jobs may run elsewhere (a launcher)
            ref_ckpt=$(cd "$(dirname "$ref_ckpt")" && pwd)/$(basename "$ref_ckpt")
        fi
        # the reference's run folder, when the checkpoint sits in one (<run>/checkpoints/x.ckpt)
        ref_dir=$(dirname "$(dirname "$ref_ckpt")")
        report_dirs=()
        if [ -n "$DRY" ] || [ -f "$ref_dir/results.json" ]; then
            report_dirs+=("$ref_dir")
        else
            echo "$0: $ref_dir holds no results.json: the reference is left out of the tables" >&2
        fi
        echo "step 2: fine-tuning every method from the reference" >&2
        name=dlnet_tables_$task
        init_from=$(hydra_value "$ref_ckpt")
        run "$PY" -m lightrestore -m \
            experiment=dlnet_"$task"_joint,dlnet_"$task",dlnet_"$task"_naive,dlnet_"$task"_multitask \
            init_from="$init_from" task_name="$name" "${epochs[@]}" "$@"
        ;;
    sr_*)
        backbone=${study#sr_}
        name=dlnet_tables_$study
        echo "multirun: $backbone at x2, x3, x4, K=1 (joint) and K=5 (DL-Net)" >&2
        run "$PY" -m lightrestore -m \
            experiment=dlnet_sr_"$backbone"_x2,dlnet_sr_"$backbone"_x3,dlnet_sr_"$backbone"_x4 \
            method.k=1,5 task_name="$name" "${epochs[@]}" "$@"
        report_dirs=()
        ;;
esac
sweep=$(newest_multirun "$name")
echo "step 3: the tables" >&2
run "$PY" -m lightrestore.report ${report_dirs[@]+"${report_dirs[@]}"} "$sweep" --out "$sweep" \
    --title "DL-Net $study"
echo "summary: $sweep/summary.md"
