#!/usr/bin/env bash
# The Golf Optimizer's two phases, chained: phase f trains F alone (experiment=golf_f), then
# phase g freezes F and trains G through T unrolled steps (experiment=golf_g, init_from=
# phase f's last.ckpt). Run it again after an interruption and it resumes at the first
# unfinished phase: a finished phase (results.json) is skipped, an interrupted one resumes
# from its last.ckpt (resume=true), sampler and optimiser state included.
#
#   [DRY_RUN=1] experiments/golf.sh [embedded|gopro] [hydra overrides...]
#
# embedded (default): synthetic camera-shake blur on the embedded photos (task=motion_blur);
# gopro: the GoPro pairs, e.g. experiments/golf.sh gopro data.source.root=/data/GOPRO_Large.
# The paper's loss needs VGG-11-BN weights: loss.perceptual.weights=<vgg11_bn-8dd8db1b.pth>,
# or loss=mse. Extra overrides go to both phases (trainer.max_epochs=..., trainer=gpu, ...);
# paths.log_dir=X (or paths.root_dir=X) moves the runs, and the script looks for them there.
# Prints the results of both phases (PSNR after F and after each step of G, per level).
set -euo pipefail
data=embedded
case "${1:-}" in
    embedded | gopro) data=$1; shift ;;
esac
DRY=${DRY_RUN:-0}
[ "$DRY" = 0 ] && DRY=
# shellcheck source=experiments/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

prefix=golf
[ "$data" = gopro ] && prefix=golf_gopro

phase() {  # phase <f|g> [extra overrides...]: train it, resume it, or skip it when finished
    local name=${prefix}_$1 done
    shift
    done=$(finished_run "$name")
    if [ -n "$done" ]; then
        echo "phase ${name#"${prefix}"_}: finished in $done (skipped)" >&2
        return
    fi
    local resume=()
    if [ -n "$(unfinished_run "$name")" ]; then
        echo "phase ${name#"${prefix}"_}: resuming the interrupted run" >&2
        resume=(resume=true)
    else
        echo "phase ${name#"${prefix}"_}: training, experiment=$name" >&2
    fi
    run "$PY" -m lightrestore experiment="$name" ${resume[@]+"${resume[@]}"} "$@"
}

phase f "$@"
f_run=$(finished_run "${prefix}_f")
f_ckpt=$(last_checkpoint "${prefix}_f")
phase g init_from="$(hydra_value "$f_ckpt")" "$@"
if [ -z "$DRY" ]; then
    g_run=$(finished_run "${prefix}_g")
    echo "phase f: $f_run/results.md" >&2
    echo "phase g: $g_run/results.md" >&2
    run "$PY" -m lightrestore.report "$f_run" "$g_run" --out "$g_run" --title "Golf Optimizer ($data)"
fi
