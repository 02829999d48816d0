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
# shellcheck source=experiments/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

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
        elif ref_run=$(finished_run "$ref_name") && [ -n "$ref_run" ]; then
            ref_ckpt=$ref_run/checkpoints/last.ckpt
            echo "step 1: a finished reference run exists, $ref_run (not trained again)" >&2
        else
            echo "step 1: training the single-setting reference, experiment=dlnet_${task}_default" >&2
            run "$PY" -m lightrestore experiment=dlnet_"$task"_default task_name="$ref_name" \
                "${epochs[@]}" "$@"
            if [ -n "$DRY" ]; then
                ref_ckpt="$log_dir/$ref_name/runs/NEW_RUN/checkpoints/last.ckpt"
            else
                ref_run=$(finished_run "$ref_name")
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
