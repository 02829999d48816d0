#!/usr/bin/env bash
# LIRA's four stages, chained by checkpoints (lira.txt §3):
#   1. fork        experiment=lira_fork        each expert on its own distortion
#   2. join        experiment=lira_join        the base network on moderate blended data,
#                                              experts from 1 (init_from)
#   3. replay_gan  experiment=lira_replay_gan  the memory-replay generator, its cycle
#                                              through the frozen base network of 2
#   4. incremental experiment=lira_incremental a new expert for the new distortion, pseudo
#                                              samples from 3; old data never read
# Run it again after an interruption and it resumes at the first unfinished stage: a
# finished stage (results.json + checkpoints/last.ckpt) is skipped, an interrupted one
# resumes from its last.ckpt (resume=true), optimiser and sampler state included.
#
#   [NEW=haze|darkness] [METHOD=<experiment>] [UNTIL=<stage>] [WARMUP=<epochs>] [DRY_RUN=1] \
#       experiments/lira_pipeline.sh [hydra overrides...]
#
# NEW: the new distortion of stage 4 (default haze: task=blended_haze; darkness:
#   task=blended_darkness, run as task_name lira_incremental_darkness).
# METHOD: stage 4's experiment (default lira_incremental; a baseline such as lira_finetune).
# UNTIL: stop after this stage (fork, join, replay_gan; experiments/lira_table4.sh uses it).
# WARMUP: stage 4's warm-up epochs (method.warmup_epochs; the paper's 5 by default).
# Overrides go to every stage (trainer.max_epochs=..., model.width=..., trainer=gpu,
# data=div2k data.source.root=...); paths.log_dir=X (or paths.root_dir=X) moves the runs,
# and the script looks for them there. DRY_RUN=1 prints the commands instead.
# Prints where each stage's results are and writes the report of the four runs.
set -euo pipefail
NEW=${NEW:-haze}
case "$NEW" in
    haze | darkness) ;;
    *) echo "$0: NEW must be haze or darkness (got '$NEW')" >&2; exit 2 ;;
esac
METHOD=${METHOD:-lira_incremental}
UNTIL=${UNTIL:-incremental}
case "$UNTIL" in
    fork | join | replay_gan | incremental) ;;
    *) echo "$0: UNTIL must be fork, join, replay_gan or incremental (got '$UNTIL')" >&2; exit 2 ;;
esac
if [ -n "${WARMUP:-}" ] && ! [[ "$WARMUP" =~ ^[0-9]+$ ]]; then
    echo "$0: WARMUP must be a number of epochs (got '$WARMUP')" >&2
    exit 2
fi
DRY=${DRY_RUN:-0}
[ "$DRY" = 0 ] && DRY=
# shellcheck source=experiments/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

stage() {  # stage <task_name> <experiment> [overrides...]: train, resume, or skip it
    local name=$1 experiment=$2 done
    shift 2
    done=$(finished_run "$name")
    if [ -n "$done" ]; then
        echo "stage $name: finished in $done (skipped)" >&2
        return
    fi
    local resume=()
    if [ -n "$(unfinished_run "$name")" ]; then
        echo "stage $name: resuming the interrupted run" >&2
        resume=(resume=true)
    else
        echo "stage $name: training, experiment=$experiment" >&2
    fi
    run "$PY" -m lightrestore experiment="$experiment" task_name="$name" \
        ${resume[@]+"${resume[@]}"} "$@"
}

runs=()
stage lira_fork lira_fork "$@"
runs+=(lira_fork)
if [ "$UNTIL" != fork ]; then
    ckpt=$(last_checkpoint lira_fork)  # an assignment: set -e stops here when there is none
    stage lira_join lira_join init_from="$(hydra_value "$ckpt")" "$@"
    runs+=(lira_join)
fi
if [ "$UNTIL" != fork ] && [ "$UNTIL" != join ]; then
    ckpt=$(last_checkpoint lira_join)
    stage lira_replay_gan lira_replay_gan init_from="$(hydra_value "$ckpt")" "$@"
    runs+=(lira_replay_gan)
fi
if [ "$UNTIL" = incremental ]; then
    inc_name=$METHOD
    task=(task=blended_haze)
    if [ "$NEW" = darkness ]; then
        inc_name=${METHOD}_darkness
        task=(task=blended_darkness)
    fi
    warm=()
    [ -n "${WARMUP:-}" ] && warm=(method.warmup_epochs="$WARMUP")
    ckpt=$(last_checkpoint lira_replay_gan)
    stage "$inc_name" "$METHOD" init_from="$(hydra_value "$ckpt")" \
        "${task[@]}" ${warm[@]+"${warm[@]}"} "$@"
    runs+=("$inc_name")
fi
if [ -z "$DRY" ]; then
    dirs=()
    for name in "${runs[@]}"; do
        d=$(finished_run "$name")
        echo "stage $name: $d/results.md" >&2
        dirs+=("$d")
    done
    last=${dirs[${#dirs[@]}-1]}
    run "$PY" -m lightrestore.report "${dirs[@]}" --out "$last" --title "LIRA pipeline (new: $NEW)"
fi
