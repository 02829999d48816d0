#!/usr/bin/env bash
# LIRA's Table 4: old-task and new-task PSNR/SSIM on the mild / moderate / severe groups
# for LIRA and the lifelong baselines, all on the same budget and from the same replay-GAN
# checkpoint.
#
#   [NEW=haze|darkness] [METHODS=a,b,...] [WARMUP=<epochs>] [DRY_RUN=1] \
#       experiments/lira_table4.sh [hydra overrides...]
#
#   1. experiments/lira_pipeline.sh UNTIL=replay_gan: fork, join and replay GAN (finished
#      stages are reused, an interrupted one resumes);
#   2. one multirun over experiment=<METHODS> (default lira_incremental, lira_finetune,
#      lira_setting_a, lira_lwf, lira_ewc, lira_pnn, lira_joint), each with
#      init_from=<the replay GAN's last.ckpt>, task_name=lira_table4_<NEW>;
#   3. python -m lightrestore.report <that multirun>: summary.md gets the "Old and new
#      task" table (rows: methods; columns: group x old/new; cells PSNR/SSIM) and
#      summary_lifelong.csv.
# Overrides go to every run (trainer.max_epochs=..., model.width=..., trainer=gpu, ...);
# paths.log_dir=X (or paths.root_dir=X) moves the runs, and the script looks for them there.
set -euo pipefail
NEW=${NEW:-haze}
case "$NEW" in
    haze | darkness) ;;
    *) echo "$0: NEW must be haze or darkness (got '$NEW')" >&2; exit 2 ;;
esac
METHODS=${METHODS:-lira_incremental,lira_finetune,lira_setting_a,lira_lwf,lira_ewc,lira_pnn,lira_joint}
if ! [[ "$METHODS" =~ ^lira_[a-z_]+(,lira_[a-z_]+)*$ ]]; then
    echo "$0: METHODS must be a comma-separated list of lira_* experiments (got '$METHODS')" >&2
    exit 2
fi
DRY=${DRY_RUN:-0}
[ "$DRY" = 0 ] && DRY=
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=experiments/_common.sh
source "$here/_common.sh"

echo "step 1: the stages before the new task (experiments/lira_pipeline.sh UNTIL=replay_gan)" >&2
UNTIL=replay_gan DRY_RUN=${DRY_RUN:-0} PYTHON="$PY" bash "$here/lira_pipeline.sh" "$@"
gan_ckpt=$(last_checkpoint lira_replay_gan)
task=blended_$NEW
name=lira_table4_$NEW
warm=()
[ -n "${WARMUP:-}" ] && warm=(method.warmup_epochs="$WARMUP")
echo "step 2: $METHODS on task=$task, from $gan_ckpt" >&2
# model= and method= name what every one of these experiments uses, so that overrides of
# their keys (model.width=..., method.warmup_epochs=...) are valid before the sweep picks
# an experiment; the joint baseline mixes real old samples in through its own experiment
# file (task.degradation.old_fraction=0.5)
run "$PY" -m lightrestore -m experiment="$METHODS" model=lira_base method=lira_incremental \
    task="$task" task_name="$name" \
    init_from="$(hydra_value "$gan_ckpt")" ${warm[@]+"${warm[@]}"} "$@"
sweep=$(newest_multirun "$name")
echo "step 3: the report of $sweep" >&2
run "$PY" -m lightrestore.report "$sweep" --out "$sweep" --title "LIRA Table 4 (new distortion: $NEW)"
