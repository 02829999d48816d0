#!/usr/bin/env bash
# PSPL's ablation (Lin et al., Fig. on EDSR-baseline x2): train the same model with and
# without PSPL and report the epoch at which each first reaches a target validation
# PSNR, with both curves (convergence.md / .csv / .png).
#
#   experiments/pspl_convergence.sh [hydra overrides for both runs...]
#
# Environment: EPOCHS (default 10), TARGET (dB; default: the highest PSNR both reach),
# BATCHES_PER_EPOCH (PSPL's unit of t; default the authors' 1000 batches),
# EXPERIMENT (default sr_edsr_x2). DIV2K: data=sr_folder data.source.root=... trainer=gpu.
set -euo pipefail
PY=${PYTHON:-python}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
EXP=${EXPERIMENT:-sr_edsr_x2}
OUT=${OUT:-logs/pspl_convergence/$(date +%Y-%m-%d_%H-%M-%S)_$$}
# the same model in both runs: the PSPL experiments use the PSPL authors' models (full
# EDSR, DRRN B1U25), the plain ones EDSR-baseline / DL-Net's DRRN; the ablation compares
# one model with and without PSPL (MODEL=<model config> to choose another)
case "$EXP" in
  sr_edsr_*) DEFAULT_MODEL=sr_edsr_baseline ;;
  sr_drrn_*) DEFAULT_MODEL=sr_drrn ;;
  *) DEFAULT_MODEL= ;;
esac
MODEL=${MODEL:-$DEFAULT_MODEL}
COMMON=(trainer.max_epochs="${EPOCHS:-10}" logger=csv ${MODEL:+model="$MODEL"} "$@")
"$PY" -m lightrestore experiment="$EXP" task_name=pspl_convergence hydra.run.dir="$OUT/l1" "${COMMON[@]}"
"$PY" -m lightrestore experiment="${EXP}_pspl" task_name=pspl_convergence hydra.run.dir="$OUT/pspl" \
    loss.batches_per_epoch="${BATCHES_PER_EPOCH:-1000}" "${COMMON[@]}"
"$PY" -m lightrestore.convergence "$OUT/l1" "$OUT/pspl" --out "$OUT" ${TARGET:+--target "$TARGET"}
